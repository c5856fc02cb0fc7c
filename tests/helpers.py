"""Helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

TESTS_DIR = Path(__file__).parent
DAGS_DIR = TESTS_DIR / "dags"
#: Recognizable so the secrets audits can search for it everywhere.
API_KEY = "sk-ant-api03-TESTKEY-7f3c9a1e5b2d4c6f8a0b-DO-NOT-LEAK"


#: Tests send requests far faster than the default budget (tier 1: 50 a minute) allows; those
#: about the budget set ``max_requests_per_minute`` themselves.
UNTHROTTLED = 1_000_000


def connection_json(base_url: str, api_key: str = API_KEY, **extra: object) -> str:
    extra.setdefault("max_requests_per_minute", UNTHROTTLED)
    return json.dumps(
        {"conn_type": "anthropic_batches", "password": api_key, "host": base_url, "extra": extra}
    )


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def assert_no_secret_in_records(records: list[logging.LogRecord], *secrets: str) -> None:
    """Fail if any secret appears in a record's message, arguments or formatted form."""
    assert records, "the log audit saw no records at all"
    formatter = logging.Formatter()
    for record in records:
        for text in (record.getMessage(), repr(record.args), formatter.format(record)):
            for secret in secrets:
                assert secret not in text, f"a secret is in a log record from {record.name}"
