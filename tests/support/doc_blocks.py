"""Run Python blocks of the docs, each in a fresh namespace, and report how each went.

Used by tests/integration/test_docs_blocks.py in a subprocess (one Airflow import for all blocks):
``python support/doc_blocks.py <blocks.json>`` prints a JSON line
``{"<block id>": null | "<error>"}``.
"""

from __future__ import annotations

import json
import sys
import traceback


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        blocks: dict[str, str] = json.load(handle)
    outcome: dict[str, str | None] = {}
    for block_id, code in blocks.items():
        try:
            exec(compile(code, block_id, "exec"), {"__name__": "__doc_block__"})
        except BaseException:  # report every failure, SystemExit included
            outcome[block_id] = traceback.format_exc(limit=-3)
        else:
            outcome[block_id] = None
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1])
