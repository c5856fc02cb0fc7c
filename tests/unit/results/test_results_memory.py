"""Reading and writing results holds constant memory: peak RSS growth while 50,000 lines
(about 100 MB) stream through, with or without an ``output_type``, is far below the file's
size; a hostile server (a line repeated forever, endless blank lines, a gzip bomb of blank
lines) ends the read with an error before it costs memory. Measured in a fresh subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import SUPPORT_DIR

PROBE = SUPPORT_DIR / "memory_probe.py"
LINES = 50_000
RESPONSE_CHARS = 1_500
MAX_GROWTH = 64 * 1024 * 1024


def _probe(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


@pytest.mark.parametrize("mode", ["iter", "aiter", "write", "structured"])
def test_peak_rss_growth_is_bounded(mode: str, tmp_path: Path) -> None:
    """``structured``: written with a JSON schema ``output_type``, every succeeded answer
    validated into ``parsed.jsonl`` beside ``results.jsonl``."""
    measured = _probe(mode, str(LINES), str(RESPONSE_CHARS), str(tmp_path))
    assert measured["count"] == (LINES - 100 if mode == "structured" else LINES)
    if mode == "write":
        stored = next((tmp_path / "big").iterdir()) / "results.jsonl"
        assert stored.stat().st_size == measured["bytes"] > 90 * 1024 * 1024
    if mode == "structured":
        stored = next((tmp_path / "big").iterdir()) / "parsed.jsonl"
        assert stored.stat().st_size == measured["bytes"] > 70 * 1024 * 1024
    assert measured["growth"] < MAX_GROWTH, f"{measured['growth'] / 2**20:.1f} MiB"


@pytest.mark.parametrize("kind", ["repeat", "blank", "gzip"])
def test_a_hostile_stream_ends_before_it_costs_memory(kind: str) -> None:
    measured = _probe("hostile", kind)
    assert measured["error"] == "OverlongResultsError", measured
    assert measured["growth"] < MAX_GROWTH, f"{measured['growth'] / 2**20:.1f} MiB"
