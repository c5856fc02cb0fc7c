"""MessageBatchTrigger.run() for real, against the fake API over loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from helpers import API_KEY, SimulatedClock

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix

FAST = {"poll_interval": 0.05}


async def _events(trigger: MessageBatchTrigger, timeout: float = 20) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout)


@pytest.fixture
def conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    set_connection("batches_fast", fake.base_url, max_retries=1, timeout=2)
    # A process's first connection lookup imports Airflow's connection and secrets machinery
    # (slow on older releases): pay it here, so a test's batch clock times polls, not imports.
    asyncio.run(MessageBatchHook("batches_fast").asettings())
    return "batches_fast"


async def test_success_event_carries_the_final_batch(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(
        num_requests=5, ends_after=0.3, outcomes={"succeeded": 4, "errored": 1}
    )

    events = await _events(MessageBatchTrigger(batch["id"], conn, **FAST))

    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["batch_id"] == batch["id"]
    assert event["batch"] == fake.get_batch(batch["id"])
    assert event["batch"]["request_counts"] == {
        "processing": 0,
        "succeeded": 4,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    json.dumps(event)  # JSON-safe, as the triggerer stores it
    assert fake.request_count(batch["id"]) >= 2


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (401, "AuthenticationError", "authentication_error"),
        (403, "PermissionDeniedError", "permission_error"),
        (404, "NotFoundError", "not_found_error"),
        (400, "BadRequestError", "invalid_request_error"),
    ],
)
async def test_permanent_errors_end_the_wait_at_once(
    fake: FakeBatchesServer, conn: str, status: int, error_class: str, error_type: str
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    fake.inject_fault(Fault(kind="status", status=status, times=-1, batch_id=batch["id"]))

    events = await _events(MessageBatchTrigger(batch["id"], conn, **FAST))

    assert [e["status"] for e in events] == ["error"]
    error = events[0]["error"]
    assert error["error_class"] == error_class
    assert error["status_code"] == status
    assert error["error_type"] == error_type
    assert error["request_id"].startswith("req_")
    assert error["retryable"] is False
    assert batch["id"] in events[0]["message"]
    assert fake.request_count(batch["id"]) == 1


async def test_unknown_batch_is_a_not_found_error(fake: FakeBatchesServer, conn: str) -> None:
    events = await _events(MessageBatchTrigger("msgbatch_missing", conn, **FAST))

    assert events[0]["status"] == "error"
    assert events[0]["error"]["status_code"] == 404
    assert events[0]["batch"] is None


async def test_rate_limit_then_success(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=0)
    fake.inject_fault(Fault(kind="status", status=429, headers={"retry-after-ms": "20"}, times=3))

    events = await _events(MessageBatchTrigger(batch["id"], conn, **FAST))

    assert events[0]["status"] == "success"
    # max_retries=1: poll 1 = 429, 429 (hook gives up); poll 2 = 429, then 200.
    assert fake.request_count(batch["id"]) == 4


async def test_transient_errors_beyond_tolerance_end_with_error(
    fake: FakeBatchesServer, conn: str
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    fake.inject_fault(Fault(kind="status", status=503, headers={"retry-after-ms": "5"}, times=-1))

    trigger = MessageBatchTrigger(batch["id"], conn, max_consecutive_errors=3, **FAST)
    events = await _events(trigger)

    assert events[0]["status"] == "error"
    assert events[0]["error"]["status_code"] == 503
    assert events[0]["error"]["retryable"] is True
    assert "3 consecutive failed polls" in events[0]["message"]
    assert fake.request_count(batch["id"]) == 3 * 2  # 3 polls, each sent twice


async def test_deadline_gives_timeout_with_last_batch(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=None)

    events = await _events(
        MessageBatchTrigger(batch["id"], conn, deadline=time.time() + 0.4, **FAST)
    )

    assert events[0]["status"] == "timeout"
    assert events[0]["reason"] == "deadline"
    assert events[0]["batch"] == fake.get_batch(batch["id"])
    assert events[0]["batch"]["processing_status"] == "in_progress"


async def test_the_last_batch_in_a_timeout_keeps_fields_this_provider_does_not_know(
    fake: FakeBatchesServer, conn: str
) -> None:
    """A wait keeps the last batch as JSON between polls; what it reports is still the batch
    as the API sent it, new fields and all."""
    batch = fake.create_batch(num_requests=2, ends_after=None)
    answered = {
        **fake.get_batch(batch["id"]),
        "priority_tier": "flex",
        "usage_hint": {"input_tokens": 12, "tags": ["a", "b"]},
    }
    fake.inject_fault(Fault(kind="body", body=answered, batch_id=batch["id"], times=-1))

    events = await _events(
        MessageBatchTrigger(batch["id"], conn, deadline=time.time() + 0.4, **FAST)
    )

    assert [(e["status"], e["reason"]) for e in events] == [("timeout", "deadline")]
    assert events[0]["batch"] == answered


async def test_expired_batch_ends_with_expired_counts(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=4, ends_after=None, expires_after=0.3)

    events = await _events(MessageBatchTrigger(batch["id"], conn, **FAST))

    assert events[0]["status"] == "success"
    assert events[0]["batch"]["request_counts"]["expired"] == 4


async def test_stops_after_expiry_grace_when_api_never_reports_ended(
    fake: FakeBatchesServer, conn: str
) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=None, expires_after=0.1)
    fake.set_status_override(batch["id"], "in_progress")

    events = await _events(MessageBatchTrigger(batch["id"], conn, expiry_grace=0.3, **FAST))

    assert events[0]["status"] == "timeout"
    assert events[0]["reason"] == "expired"


async def test_unknown_status_keeps_waiting(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    fake.set_status_override(batch["id"], "paused_for_review")
    trigger = MessageBatchTrigger(batch["id"], conn, **FAST)
    task = asyncio.ensure_future(_events(trigger))

    await asyncio.sleep(0.3)
    assert not task.done()
    fake.set_status_override(batch["id"], None)
    fake.end_batch(batch["id"])

    events = await task
    assert events[0]["status"] == "success"


async def test_serialize_round_trip_has_no_secret(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=0)
    trigger = MessageBatchTrigger(
        batch["id"],
        conn,
        poll_interval=30,
        deadline=1_900_000_000.5,
        expiry_grace=10,
        max_consecutive_errors=4,
        error_tolerance=99,
        log_interval=5,
    )
    # Run it first: the trigger has loaded the connection (and so the key) when it serializes.
    events = await _events(trigger)
    assert [e["status"] for e in events] == ["success"]
    assert fake.requests[-1].authenticated is True  # the key was loaded and sent

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_batches.triggers.batch.MessageBatchTrigger"
    text = json.dumps(kwargs)
    assert API_KEY not in text
    assert MessageBatchTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert set(kwargs) == {
        "batch_id",
        "conn_id",
        "poll_interval",
        "deadline",
        "expiry_grace",
        "max_consecutive_errors",
        "error_tolerance",
        "log_interval",
        "cancel_on_kill",
    }


async def test_rebuilt_trigger_carries_on(fake: FakeBatchesServer, conn: str) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=None)
    first = MessageBatchTrigger(batch["id"], conn, **FAST)
    running = asyncio.ensure_future(_events(first))
    await asyncio.sleep(0.2)
    running.cancel()  # the triggerer went away mid-wait
    with pytest.raises(asyncio.CancelledError):
        await running

    fake.end_batch(batch["id"])
    _, kwargs = first.serialize()
    events = await _events(MessageBatchTrigger(**kwargs))

    assert [e["status"] for e in events] == ["success"]
    assert events[0]["batch"] == fake.get_batch(batch["id"])


async def test_many_triggers_share_one_pool(fake: FakeBatchesServer, conn: str) -> None:
    batches = [fake.create_batch(num_requests=1, ends_after=0.2) for _ in range(40)]

    results = await asyncio.gather(
        *(_events(MessageBatchTrigger(b["id"], conn, **FAST)) for b in batches)
    )

    assert all(r[0]["status"] == "success" for r in results)
    assert fake.connections_opened <= 32  # the connection's default max_connections


async def test_cancelled_trigger_leaves_no_busy_connection(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    # One pooled connection: if the cancelled request kept its slot, the next wait would hang.
    set_connection("one_socket", fake.base_url, max_retries=0, max_connections=1)
    batch = fake.create_batch(num_requests=1, ends_after=None)
    fake.inject_fault(Fault(kind="delay", delay=5, times=1))
    trigger = MessageBatchTrigger(batch["id"], "one_socket", **FAST)
    running = asyncio.ensure_future(_events(trigger))
    await asyncio.sleep(0.3)  # the first poll is in flight, held by the server

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await trigger.cleanup()

    fake.end_batch(batch["id"])
    events = await _events(MessageBatchTrigger(batch["id"], "one_socket", **FAST), timeout=30)
    assert events[0]["status"] == "success"
    # The held socket was closed with the cancelled request; the next wait opened a fresh one.
    assert fake.connections_opened == 2


async def test_progress_is_logged_on_change_not_every_poll(
    fake: FakeBatchesServer,
    conn: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow_provider_batches.triggers._watcher as watcher_module
    import airflow_provider_batches.triggers.batch as trigger_module

    batch = fake.create_batch(num_requests=2, ends_after=None)
    # Simulated time: 12 unchanged polls, then the batch ends; the log interval (600 s) is
    # never reached, so exactly two progress lines are due: in_progress once, ended once.
    clock = SimulatedClock(start=time.time())
    clock.install(trigger_module, monkeypatch)
    clock.install(watcher_module, monkeypatch)  # the polls' timing lives there

    def end_after_twelve_polls() -> None:
        if fake.request_count(batch["id"]) == 12:
            fake.end_batch(batch["id"])

    clock.on_sleep = end_after_twelve_polls
    caplog.set_level(logging.INFO, logger="airflow_provider_batches")

    await _events(MessageBatchTrigger(batch["id"], conn, poll_interval=20))

    # Airflow routes trigger logs through structlog (stdout) or stdlib logging, by config and
    # release (3.0 writes each record to both): count one of the two.
    records = [r.getMessage() for r in caplog.records]
    stdout = capsys.readouterr().out.splitlines()
    lines = records if any(batch["id"] in line for line in records) else stdout
    progress = [line for line in lines if batch["id"] in line and "requests," in line]
    assert fake.request_count(batch["id"]) == 13
    assert len(progress) == 2
    assert "in_progress" in progress[0]
    assert "ended" in progress[1]
    assert all(API_KEY not in line for line in records + stdout)


def test_poll_waits_are_jittered_below_the_interval() -> None:
    trigger = MessageBatchTrigger("msgbatch_x", poll_interval=10)

    waits = [trigger._next_wait(0.0) for _ in range(500)]

    assert all(8.0 <= w <= 10.0 for w in waits)
    assert max(waits) - min(waits) > 1.0
    assert trigger._next_wait(30.0) == 30.0  # the server's retry-after wins when longer


def test_wait_never_passes_the_deadline() -> None:
    trigger = MessageBatchTrigger("msgbatch_x", poll_interval=60, deadline=time.time() + 1)

    assert trigger._next_wait(0.0) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"poll_interval": 0}, "poll_interval"), ({"max_consecutive_errors": 0}, "max_consecutive")],
)
def test_bad_settings_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MessageBatchTrigger("msgbatch_x", **kwargs)
