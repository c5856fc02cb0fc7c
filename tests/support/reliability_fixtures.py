"""Helpers shared by the reliability suite: running triggers, free ports, and the secrets audit.

Imported by the test modules of ``tests/reliability`` as ``import reliability_fixtures``
(pytest puts this folder on ``sys.path``; ``tests/`` is there too, for ``helpers``).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import socket
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import API_KEY

#: A second recognizable key, used where a test needs a *wrong* key (the 401 case). It is
#: audited too: a wrong key is still a secret of whoever typed it.
WRONG_API_KEY = "sk-ant-api03-WRONGKEY-2b8e6d4f0a1c3e5b7d9f-DO-NOT-LEAK"
AUDITED_KEYS = (API_KEY, WRONG_API_KEY)
#: Everything after this prefix is secret; the prefix itself is public and common to all keys.
PUBLIC_KEY_PREFIX = "sk-ant-api03-"
#: A leak is any run of this many consecutive characters of a key that includes at least one
#: character after the public prefix, so a key cut short by truncation still counts.
LEAK_WINDOW = 16

#: Hang guard for one trigger run: no case in the matrix needs more than a few seconds.
RUN_TIMEOUT = 25.0


def key_fragments(key: str, window: int = LEAK_WINDOW) -> list[str]:
    """Every ``window``-long substring of ``key`` that reaches past the public prefix."""
    fragments = {key}
    for start in range(0, len(key) - window + 1):
        if start + window > len(PUBLIC_KEY_PREFIX):
            fragments.add(key[start : start + window])
    return sorted(fragments, key=len, reverse=True)


_FRAGMENTS = [(key, key_fragments(key)) for key in AUDITED_KEYS]


def find_secrets(text: str | bytes, where: str) -> list[str]:
    """Human-readable hits of any audited key (or a 16+ char piece of one) in ``text``."""
    if isinstance(text, bytes):
        haystacks = [text.decode("utf-8", "replace"), text.decode("latin-1")]
    else:
        haystacks = [text]
    hits = []
    for key, fragments in _FRAGMENTS:
        for haystack in haystacks:
            found = next((f for f in fragments if f in haystack), None)
            if found is not None:
                at = haystack.find(found)
                context = haystack[max(0, at - 40) : at + len(found) + 20]
                hits.append(f"{where}: {'key' if found == key else 'key fragment'} in {context!r}")
                break
    return hits


def textual_forms(obj: Any) -> list[tuple[str, str | bytes]]:
    """``str``, ``repr``, JSON (if possible) and pickle of ``obj``: every form it may be kept in."""
    forms: list[tuple[str, str | bytes]] = [("str", str(obj)), ("repr", repr(obj))]
    with suppress(TypeError, ValueError):
        forms.append(("json", json.dumps(obj, default=repr)))
    try:
        forms.append(("pickle", pickle.dumps(obj)))
    except Exception as exc:  # pragma: no cover - only for objects that cannot be pickled
        forms.append(("pickle-error", repr(exc)))
    if isinstance(obj, BaseException):
        for name, value in vars(obj).items():
            forms.append((f"attr {name}", repr(value)))
        if obj.__cause__ is not None:
            forms.append(("cause", repr(obj.__cause__)))
    return forms


@dataclass
class SecretsAudit:
    """Collects what was searched and what was found; a test asserts ``hits == []``."""

    hits: list[str] = field(default_factory=list)
    searched: int = 0

    def text(self, text: str | bytes, where: str) -> None:
        self.searched += 1
        self.hits.extend(find_secrets(text, where))

    def obj(self, obj: Any, where: str) -> None:
        for form, text in textual_forms(obj):
            self.text(text, f"{where} [{form}]")

    def log_records(self, records: Iterable[Any], where: str) -> None:
        for record in records:
            self.text(record.getMessage(), f"{where}: log {record.name}")
            self.text(repr(record.args), f"{where}: log args {record.name}")
            if record.exc_text:
                self.text(record.exc_text, f"{where}: log exc_text {record.name}")

    def sqlite(self, path: Path, where: str, skip_tables: frozenset[str] = frozenset()) -> int:
        """Every cell of every table (except ``skip_tables``); returns the rows searched."""
        rows_seen = 0
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = [
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                if table in skip_tables:
                    continue
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    rows_seen += 1
                    for cell in row:
                        if isinstance(cell, str | bytes):
                            self.searched += 1
                            self.hits.extend(find_secrets(cell, f"{where} table {table}"))
        return rows_seen

    def files(self, root: Path, where: str, skip: Iterable[Path] = ()) -> list[str]:
        """Search every file under ``root`` (raw bytes); returns their relative names."""
        skipped = {p.resolve() for p in skip}
        names = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.resolve() not in skipped:
                names.append(str(path.relative_to(root)))
                self.text(path.read_bytes(), f"{where} {names[-1]}")
        return names


# ---- triggers ------------------------------------------------------------------------------


async def run_trigger(trigger: Any, timeout: float = RUN_TIMEOUT) -> list[dict[str, Any]]:
    """Run ``trigger.run()`` to its end; the payloads of every event it yielded, in order.

    Fails (``TimeoutError``) if the trigger does not finish within ``timeout`` seconds.
    """

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout)


class LoopLagMonitor:
    """Measures how late a 10 ms tick runs: a blocking call in a trigger shows up as lag."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick = tick
        self.max_lag = 0.0
        self.worst_at = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        began = time.monotonic()
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.tick)
            lag = time.monotonic() - start - self.tick
            if lag > self.max_lag:
                self.max_lag = lag
                self.worst_at = start - began
            self.ticks += 1

    def __enter__(self) -> LoopLagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
