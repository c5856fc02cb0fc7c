"""Search an Airflow home for a secret: every file's bytes, and every cell of the metadata DB.

Values Airflow encrypts with its Fernet key (trigger kwargs, connection passwords and extras,
variables) are decrypted before searching, and zlib-compressed blobs (compressed serialized
DAGs) are inflated, so a secret cannot hide in either form.
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

#: Tables the audit must find and read; a rename in a new Airflow would otherwise go unnoticed.
REQUIRED_TABLES = (
    "xcom",
    "trigger",
    "task_instance",
    "rendered_task_instance_fields",
    "connection",
    "log",
)


@dataclass
class AuditReport:
    """Where each needle was found: ``file:<relative path>`` or ``db:<table>.<column>``."""

    files_scanned: int = 0
    db_rows_scanned: Counter[str] = field(default_factory=Counter)
    hits: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, needle: str, place: str, count: int = 1) -> None:
        self.hits.setdefault(needle, Counter())[place] += count

    def places(self, needle: str) -> dict[str, int]:
        return dict(self.hits.get(needle, Counter()))


def _variants(value: Any, fernet: Fernet) -> list[bytes]:
    """The cell's bytes, plus what decryption or decompression turns them into."""
    if value is None or isinstance(value, int | float):
        return []
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    out = [raw]
    if raw.startswith(b"gAAAAA"):  # a Fernet token
        with contextlib.suppress(InvalidToken, ValueError):
            out.append(fernet.decrypt(raw))
    if raw[:1] == b"\x78":  # a zlib stream
        with contextlib.suppress(zlib.error):
            out.append(zlib.decompress(raw))
    return out


def audit(home: Path, fernet_key: str, needles: dict[str, str]) -> AuditReport:
    """Search ``home`` for each of ``needles`` (name -> text); run with Airflow stopped."""
    report = AuditReport()
    encoded = {name: text.encode() for name, text in needles.items()}
    fernet = Fernet(fernet_key.encode())
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        report.files_scanned += 1
        for name, needle in encoded.items():
            if count := data.count(needle):
                report.add(name, f"file:{path.relative_to(home)}", count)
    db_path = home / "airflow.db"
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        missing = set(REQUIRED_TABLES) - set(tables)
        assert not missing, f"metadata DB lacks tables {missing}; has {sorted(tables)}"
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')  # names from sqlite_master
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                report.db_rows_scanned[table] += 1
                for column, value in zip(columns, row, strict=True):
                    for variant in _variants(value, fernet):
                        for name, needle in encoded.items():
                            if needle in variant:
                                report.add(name, f"db:{table}.{column}")
    finally:
        db.close()
    return report


def snapshot_triggers(home: Path, fernet_key: str) -> list[dict[str, Any]]:
    """The ``trigger`` table now, kwargs decrypted (read while Airflow runs: rows go once used)."""
    fernet = Fernet(fernet_key.encode())
    db = sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT id, classpath, kwargs FROM trigger").fetchall()
    finally:
        db.close()
    result = []
    for trigger_id, classpath, kwargs in rows:
        text = kwargs if kwargs.startswith("{") else fernet.decrypt(kwargs.encode()).decode()
        result.append({"id": trigger_id, "classpath": classpath, "kwargs": text})
    return result
