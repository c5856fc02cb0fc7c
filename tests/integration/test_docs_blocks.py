"""Every Python block in docs/*.md and README.md runs, against the embedded fake API.

Blocks run in one subprocess (each in a fresh namespace) with ``AIRFLOW_HOME`` in a temporary
directory and the connection ``anthropic_default`` pointing at a fake that holds an ended batch
with the docs' placeholder id ``msgbatch_...``. A block that defines a DAG runs as the DAG
processor would parse it. A block that cannot run says why on a line
``# doc-test: skip (<reason>)``: it is skipped with that reason, which pytest reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import API_KEY, connection_json

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"#\s*doc-test:\s*skip\s*\((?P<reason>[^)]+)\)")
PLACEHOLDER_ID = "msgbatch_..."


def doc_blocks() -> dict[str, str]:
    """``{"<file>:<line>": code}`` for every fenced Python block, in document order."""
    blocks: dict[str, str] = {}
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            blocks[f"{path.relative_to(ROOT)}:{line}"] = match.group(1)
    return blocks


BLOCKS = doc_blocks()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    from airflow_provider_batches.testing import FakeBatchesServer

    home = tmp_path_factory.mktemp("doc-airflow-home")
    runnable = {key: code for key, code in BLOCKS.items() if not SKIP.search(code)}
    listing = home / "blocks.json"
    listing.write_text(json.dumps(runnable), encoding="utf-8")
    with FakeBatchesServer(api_key=API_KEY) as fake:
        fake.create_batch(num_requests=3, ends_after=0.0, batch_id=PLACEHOLDER_ID)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_ANTHROPIC_DEFAULT": connection_json(fake.base_url, max_retries=2),
        }
        result = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "support" / "doc_blocks.py"), str(listing)],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    outcome: dict[str, str | None] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def test_the_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 10, sorted(BLOCKS)


@pytest.mark.parametrize("block_id", sorted(BLOCKS))
def test_doc_block_runs(block_id: str, outcomes: dict[str, str | None]) -> None:
    skip = SKIP.search(BLOCKS[block_id])
    if skip:
        pytest.skip(f"{block_id}: {skip['reason']}")
    error = outcomes[block_id]
    assert error is None, f"{block_id} failed:\n{error}"
