"""Helpers shared by test modules (import as ``from helpers import ...``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TESTS_DIR.parent
SUPPORT_DIR = TESTS_DIR / "support"
DAGS_DIR = TESTS_DIR / "dags"
#: Recognizable so the secrets audits can search for it everywhere.
API_KEY = "sk-ant-api03-TESTKEY-7f3c9a1e5b2d4c6f8a0b-DO-NOT-LEAK"


#: Tests send requests far faster than the default budget (tier 1: 50 a minute) allows; those
#: about the budget set ``max_requests_per_minute`` themselves (``None``: no such extra).
UNTHROTTLED = 1_000_000


def connection_json(base_url: str, api_key: str = API_KEY, **extra: object) -> str:
    extra.setdefault("max_requests_per_minute", UNTHROTTLED)
    extra = {name: value for name, value in extra.items() if value is not None}
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


class SimulatedClock:
    """Stands in for ``time`` and ``asyncio.sleep`` in a module under test: sleeping advances
    the clock at once, so waits measured in minutes run in milliseconds and every time-based
    decision is exact (no wall-clock bounds in the test).

    ``limit``: simulated seconds after which a sleep fails the test (a wait that never ends).
    """

    def __init__(self, start: float, limit: float = 10 * 24 * 3600.0) -> None:
        self.now = start
        self.started = start
        self.limit = limit
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        import asyncio

        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds
        if self.now - self.started > self.limit:
            raise AssertionError(f"still waiting {self.now - self.started:.0f} simulated s in")
        if self.on_sleep is not None:
            self.on_sleep()
        await asyncio.sleep(0)

    def install(self, module: object, monkeypatch: Any) -> None:
        """Make ``module``'s ``time.time``/``time.monotonic``/``asyncio.sleep`` this clock (the
        rest of ``time`` and ``asyncio`` stays real: ``wait_for`` still times out in real time,
        so a poll is never cut short by the simulated clock)."""
        import asyncio

        monkeypatch.setattr(
            module, "time", _Overlay(time, time=self.time, monotonic=self.monotonic)
        )
        monkeypatch.setattr(module, "asyncio", _Overlay(asyncio, sleep=self.sleep))


class _Overlay:
    """A module with some attributes replaced; every other attribute is the module's own."""

    def __init__(self, module: object, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


class TriggerSpy:
    """Records every ``MessageBatchTrigger.run`` entered in this process (``dag.test()`` runs a
    deferred task's trigger in-line): which batch, how many API requests for it the fake had
    seen when the trigger started, and the events it yielded. Proof that a task really deferred,
    which no count a poking sensor also reaches can give."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.runs: list[dict[str, Any]] = []

    def install(self, monkeypatch: Any) -> TriggerSpy:
        from airflow_provider_batches.triggers.batch import MessageBatchTrigger

        real_run = MessageBatchTrigger.run
        spy = self

        async def run(trigger: Any) -> Any:
            record: dict[str, Any] = {
                "batch_id": trigger.batch_id,
                "requests_before": spy.fake.request_count(trigger.batch_id),
                "events": [],
            }
            spy.runs.append(record)
            async for event in real_run(trigger):
                record["events"].append(event.payload)
                yield event

        monkeypatch.setattr(MessageBatchTrigger, "run", run)
        return self

    def runs_for(self, batch_id: str) -> list[dict[str, Any]]:
        return [run for run in self.runs if run["batch_id"] == batch_id]


#: For a test whose harness, not the provider, differs on Airflow 3.0: it reads log text that
#: 3.0 routes elsewhere, or patches a name that exists from 3.1 on. The code path it checks is
#: the one tested on 3.1 to 3.3.
harness_needs_airflow_31 = pytest.mark.skipif(
    # Read from the metadata: importing Airflow here would fix AIRFLOW_HOME before conftest.py
    # sets it.
    tuple(int(part) for part in version("apache-airflow").split(".")[:2]) < (3, 1),
    reason="the test reads log text or patches names that Airflow 3.0 does not have",
)
