"""docs/reliability.md lists exactly the mutants ``make mutants`` runs, each with its tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_reliability_doc_shows_the_current_mutants_table() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mutants.py"), "--table"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table.count("\n") > 50
    doc = (ROOT / "docs" / "reliability.md").read_text()
    assert table in doc, (
        "docs/reliability.md's mutants table is stale: replace it with the output of "
        "`python scripts/mutants.py --table`"
    )
