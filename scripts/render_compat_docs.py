"""Rewrite the feature table in docs/compatibility.md from FEATURES in _compat.py."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_batches._compat import render_feature_table

PAGE = Path(__file__).resolve().parent.parent / "docs" / "compatibility.md"
BLOCK = re.compile(r"(<!-- features:start -->\n).*?(<!-- features:end -->)", re.S)


def main() -> None:
    page = PAGE.read_text()
    if not BLOCK.search(page):
        raise SystemExit(f"{PAGE}: the <!-- features:start/end --> markers are missing.")
    PAGE.write_text(BLOCK.sub(lambda m: m.group(1) + render_feature_table() + m.group(2), page))


if __name__ == "__main__":
    main()
