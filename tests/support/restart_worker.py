"""A stand-in triggerer process for test_restart.py (run as a script, not collected).

    python restart_worker.py SPECS_JSON EVENTS_JSONL

``SPECS_JSON`` holds a list of ``[classpath, kwargs]`` pairs exactly as
``BaseTrigger.serialize()`` returned them. Each trigger is rebuilt from its kwargs, all run
concurrently in one event loop, and every event is appended to ``EVENTS_JSONL`` as one JSON
line (one ``write``, then ``fsync``) before the next one, so a SIGKILL can lose nothing that
was reported. The process exits 0 once every trigger has yielded.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def rebuild(classpath: str, kwargs: dict[str, Any]) -> Any:
    module_name, _, class_name = classpath.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


async def main(specs: list[tuple[str, dict[str, Any]]], events_path: str) -> None:
    fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(index: int, kwargs: dict[str, Any], payload: dict[str, Any]) -> None:
        line = {"pid": os.getpid(), "trigger": index, "kwargs": kwargs, "payload": payload}
        os.write(fd, (json.dumps(line) + "\n").encode())
        os.fsync(fd)

    async def run(index: int, classpath: str, kwargs: dict[str, Any]) -> None:
        async for event in rebuild(classpath, kwargs).run():
            record(index, kwargs, event.payload)

    print(f"worker {os.getpid()} running {len(specs)} triggers", flush=True)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(run(i, path, kwargs) for i, (path, kwargs) in enumerate(specs))),
            timeout=120,
        )
    finally:
        os.close(fd)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]))
