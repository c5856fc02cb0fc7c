"""MessageBatchEventTrigger: construction, serialize(), and run() against the fake API."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from event_helpers import DictSupervisorComms, RunningTrigger, attach_asset_state_store
from helpers import API_KEY, harness_needs_airflow_31

from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

pytestmark = pytest.mark.matrix

FAST: dict[str, Any] = {"poll_interval": 0.02}
CLASSPATH = "airflow_provider_batches.triggers.events.MessageBatchEventTrigger"


@pytest.fixture
def conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    set_connection("batches_events", fake.base_url, max_retries=1, timeout=2)
    return "batches_events"


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> DictSupervisorComms:
    from airflow.sdk.execution_time import comms as messages
    from airflow.sdk.execution_time import task_runner

    if not hasattr(messages, "SetAssetStateStoreByName"):
        pytest.skip("asset_state_store arrived in Airflow 3.3")
    shim = DictSupervisorComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", shim, raising=False)
    return shim


def lists(fake: FakeBatchesServer) -> int:
    return fake.request_count(method="GET")


# ---- construction and serialize -------------------------------------------------------------


def test_serialize_round_trips_and_is_deterministic() -> None:
    kwargs = {
        "conn_id": "c",
        "poll_interval": 30,
        "lookback": 7200,
        "created_after": datetime(2025, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))),
        "min_requests": 2,
        "outcome": "failing",
        "policy": {"max_errored": 3, "max_expired_ratio": 0.5, "max_canceled": None},
        "include_canceled": False,
    }
    classpath, stored = MessageBatchEventTrigger(**kwargs).serialize()
    assert classpath == CLASSPATH
    assert stored["created_after"] == "2025-01-01T12:00:00+00:00"
    assert stored["policy"] == {"max_errored": 3, "max_expired_ratio": 0.5}
    json.dumps(stored)
    rebuilt = MessageBatchEventTrigger(**stored)
    assert rebuilt.serialize() == (classpath, stored)
    # Same arguments, given another way or later in time: the same trigger row.
    again = MessageBatchEventTrigger(
        **{**kwargs, "created_after": "2025-01-01T12:00:00Z", "poll_interval": 30.0}
    ).serialize()
    assert again == (classpath, stored)
    from airflow.triggers.base import BaseEventTrigger

    assert BaseEventTrigger.hash(classpath, stored) == BaseEventTrigger.hash(*again)


def test_defaults_hold_no_clock_reading() -> None:
    first = MessageBatchEventTrigger().serialize()
    assert MessageBatchEventTrigger().serialize() == first
    assert first[1]["created_after"] is None
    assert first[1]["lookback"] == 3600.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be positive"),
        ({"lookback": -1}, "lookback must be at least 0"),
        ({"created_after": "yesterday"}, "ISO 8601"),
        ({"created_after": datetime(2025, 1, 1)}, "timezone"),
        ({"created_after": 5}, "datetime or an ISO 8601 string"),
        ({"min_requests": -1}, "min_requests must be an integer"),
        ({"min_requests": 1.5}, "min_requests must be an integer"),
        ({"page_size": 1001}, "at most 1000"),
        ({"page_size": 0}, "page_size must be an integer"),
        ({"outcome": "succeeded"}, "outcome must be one of"),
        ({"policy": {"max_errored": 1}}, "only applies with outcome"),
        ({"outcome": "failing", "policy": {"max_erorred": 1}}, "unknown keys"),
        ({"outcome": "failing", "policy": {"max_errored_ratio": 2}}, "between 0 and 1"),
        ({"include_canceled": "no"}, "include_canceled must be True or False"),
        ({"conn_id": ""}, "conn_id must be a non-empty string"),
        ({"lookback": float("inf")}, "lookback must be at most"),
        ({"lookback": 1e12}, "lookback must be at most"),
        ({"expiry_grace": 1e15}, "expiry_grace must be at most"),
        ({"poll_interval": float("inf")}, "poll_interval must be at most"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MessageBatchEventTrigger(**kwargs)


# ---- run() against the fake -----------------------------------------------------------------


async def test_one_event_per_ended_batch_however_often_it_is_seen(
    fake: FakeBatchesServer, conn: str
) -> None:
    first = fake.create_batch(num_requests=2, ends_after=None)
    second = fake.create_batch(num_requests=3, ends_after=None)
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        fake.end_batch(first["id"])
        await running.wait_until(lambda: len(running.payloads) == 1)
        seen_at = lists(fake)
        # The ended batch stays ended: many polls later, still one event.
        await running.wait_until(lambda: lists(fake) >= seen_at + 20)
        assert running.ids() == [first["id"]]
        fake.end_batch(second["id"])
        await running.wait_until(lambda: len(running.payloads) == 2)
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 20)
    assert running.ids() == [first["id"], second["id"]]
    assert running.payloads[0] == fake.get_batch(first["id"])
    assert running.payloads[1]["processing_status"] == "ended"
    json.dumps(running.payloads)


async def test_filters_apply_to_what_the_api_lists(fake: FakeBatchesServer, conn: str) -> None:
    before = fake.create_batch(num_requests=5, ends_after=None)
    cut = datetime.fromisoformat(before["created_at"].replace("Z", "+00:00"))
    small = fake.create_batch(num_requests=1, ends_after=None)
    clean = fake.create_batch(num_requests=4, ends_after=None)
    errored = fake.create_batch(
        num_requests=4, ends_after=None, outcomes={"succeeded": 1, "errored": 3}
    )
    trigger = MessageBatchEventTrigger(
        conn,
        created_after=cut,
        min_requests=2,
        outcome="failing",
        policy={"max_errored_ratio": 0.5},
        **FAST,
    )
    async with RunningTrigger(trigger) as running:
        for b in (before, small, clean, errored):
            fake.end_batch(b["id"])
        await running.wait_until(lambda: len(running.payloads) == 1)
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 10)
    assert running.ids() == [errored["id"]]


async def test_pages_back_until_the_window_is_covered_and_no_further(
    fake: FakeBatchesServer, conn: str
) -> None:
    old = [fake.create_batch(num_requests=1, ends_after=None) for _ in range(6)]
    cut = datetime.fromisoformat(old[-1]["created_at"].replace("Z", "+00:00"))
    new = [fake.create_batch(num_requests=1, ends_after=None) for _ in range(5)]
    for b in old + new:
        fake.end_batch(b["id"])
    trigger = MessageBatchEventTrigger(conn, created_after=cut, page_size=2, poll_interval=3600)
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(running.payloads) == 5)
    # The window holds the 5 new batches and the one created exactly at the cut (not emitted:
    # created_after is strict). Pages of 2: the fourth reaches an older batch; no fifth.
    assert lists(fake) == 4
    assert sorted(running.ids()) == sorted(b["id"] for b in new)
    queries = [r.query for r in fake.requests]
    assert [q.get("after_id") for q in queries] == [None, new[3]["id"], new[1]["id"], old[5]["id"]]
    assert {q["limit"] for q in queries} == {"2"}


async def test_a_restart_without_a_store_repeats_batches_within_the_lookback(
    fake: FakeBatchesServer, conn: str
) -> None:
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    trigger = MessageBatchEventTrigger(conn, **FAST)
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    # A new triggerer life rebuilds the trigger from its stored kwargs: at least once.
    rebuilt = MessageBatchEventTrigger(**trigger.serialize()[1])
    later = fake.create_batch(num_requests=1, ends_after=None)
    async with RunningTrigger(rebuilt) as running_again:
        fake.end_batch(later["id"])
        await running_again.wait_until(lambda: len(running_again.payloads) == 2)
    assert sorted(running_again.ids()) == sorted([done["id"], later["id"]])
    # With no lookback, a new life only reports batches that end from now on.
    quiet = MessageBatchEventTrigger(**{**trigger.serialize()[1], "lookback": 0})
    async with RunningTrigger(quiet) as running_quiet:
        seen_at = lists(fake)
        await running_quiet.wait_until(lambda: lists(fake) >= seen_at + 10)
    assert running_quiet.payloads == []


async def test_the_watermark_carries_over_a_restart_on_airflow_3_3(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    first = fake.create_batch(num_requests=1, ends_after=None)
    second = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(first["id"])
    trigger = MessageBatchEventTrigger(conn, **FAST)
    attach_asset_state_store(trigger, "batches")
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
        fake.end_batch(second["id"])
        await running.wait_until(lambda: len(running.payloads) == 2)
        await running.wait_until(lambda: _stored_ids(comms) == {first["id"], second["id"]})
    rebuilt = MessageBatchEventTrigger(**trigger.serialize()[1])
    attach_asset_state_store(rebuilt, "batches")
    third = fake.create_batch(num_requests=1, ends_after=None)
    async with RunningTrigger(rebuilt) as running_again:
        seen_at = lists(fake)
        await running_again.wait_until(lambda: lists(fake) >= seen_at + 10)
        assert running_again.payloads == []
        fake.end_batch(third["id"])
        await running_again.wait_until(lambda: len(running_again.payloads) == 1)
    assert running_again.ids() == [third["id"]]


async def test_a_watermark_per_selection_and_for_every_watched_asset(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    trigger = MessageBatchEventTrigger(conn, **FAST)
    attach_asset_state_store(trigger, "a", "b")
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(comms.values) == 2)
    assert {name for name, _ in comms.values} == {"a", "b"}
    assert {key for _, key in comms.values} == {trigger.watermark_key}
    other = MessageBatchEventTrigger(conn, min_requests=1, **FAST)
    assert other.watermark_key != trigger.watermark_key
    slower = MessageBatchEventTrigger(conn, poll_interval=99)
    assert slower.watermark_key == trigger.watermark_key


def _stored_ids(comms: DictSupervisorComms) -> set[str]:
    return {i for value in comms.values.values() for i in value["ids"]}


@harness_needs_airflow_31
async def test_permanent_errors_are_logged_and_the_watcher_keeps_running(
    fake: FakeBatchesServer,
    conn: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.inject_fault(Fault(kind="status", status=401, times=3))
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    caplog.set_level(logging.INFO)
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    assert running.ids() == [done["id"]]  # no error event, then the batch once it recovers
    # The trigger logs through Airflow's structlog (stdout) or stdlib logging, by release.
    lines = capsys.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]
    errors = [line for line in lines if "until the connection 'batches_events' is fixed" in line]
    assert len(errors) == 3
    assert all("401" in line for line in errors)
    assert not [line for line in lines if API_KEY in line]


def test_failed_polls_back_off_honoring_retry_after() -> None:
    trigger = MessageBatchEventTrigger("c", **FAST)
    error = type("E", (Exception,), {"retry_after": 7.0})()
    assert trigger._log_error_and_wait(error, 1) == 7.0
    waits = [trigger._log_error_and_wait(RuntimeError("x"), n) for n in (1, 2, 3, 40)]
    assert waits[:3] == [0.02, 0.04, 0.08]
    assert waits[3] == 1800.0


async def test_invalid_list_entries_are_skipped_not_fatal(
    fake: FakeBatchesServer, conn: str
) -> None:
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    body = {"data": [{"id": "broken"}, fake.get_batch(done["id"])], "has_more": False}
    fake.inject_fault(Fault(kind="body", body={**body, "last_id": done["id"]}))
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    assert running.ids() == [done["id"]]


async def test_a_body_echoing_the_key_is_never_an_event(fake: FakeBatchesServer, conn: str) -> None:
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    leaked = {**fake.get_batch(done["id"]), "note": API_KEY}
    body = {"data": [leaked], "has_more": False, "last_id": done["id"]}
    fake.inject_fault(Fault(kind="body", body=body, times=2))
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    assert API_KEY not in json.dumps(running.payloads)
    assert "note" not in running.payloads[0]


async def test_transient_failures_are_warnings_and_polling_resumes(
    fake: FakeBatchesServer, conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # max_retries=1: each failed poll is two 529 answers; two failed polls, then a good one.
    fake.inject_fault(Fault(kind="status", status=529, times=4, headers={"retry-after": "0"}))
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if "polling again in" in line]) == 2
    assert not [line for line in lines if "is fixed" in line]
    assert running.ids() == [done["id"]]


async def test_an_incomplete_poll_reports_but_does_not_advance_the_watermark(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    batches = [fake.create_batch(num_requests=1, ends_after=None) for _ in range(3)]
    for b in batches:
        fake.end_batch(b["id"])
    trigger = MessageBatchEventTrigger(conn, page_size=1, max_pages=2, **FAST)
    attach_asset_state_store(trigger, "batches")
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(running.payloads) == 2)
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 10)
    assert sorted(running.ids()) == sorted(b["id"] for b in batches[1:])
    assert comms.writes == 0


async def test_one_list_request_per_poll_when_the_window_fits_a_page(
    fake: FakeBatchesServer, conn: str
) -> None:
    for _ in range(5):
        fake.create_batch(num_requests=1, ends_after=None)
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: lists(fake) >= 10)
    queries = [r.query for r in fake.requests]
    assert all(q == {"limit": "1000"} for q in queries), queries


async def test_a_cursor_that_repeats_ends_the_poll(fake: FakeBatchesServer, conn: str) -> None:
    done = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(done["id"])
    body = {"data": [fake.get_batch(done["id"])], "has_more": True, "last_id": done["id"]}
    fake.inject_fault(Fault(kind="body", body=body, times=-1))
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: lists(fake) >= 12)
    assert running.ids() == [done["id"]]
    afters = [r.query.get("after_id") for r in fake.requests]
    # Each poll: the first page, then the same cursor once more, and it stops.
    assert afters[:4] == [None, done["id"], None, done["id"]]
    assert afters.count(None) >= afters.count(done["id"]) >= afters.count(None) - 1


async def test_the_watermark_is_written_only_after_its_events_were_handed_over(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    first = fake.create_batch(num_requests=1, ends_after=None)
    trigger = MessageBatchEventTrigger(conn, **FAST)
    attach_asset_state_store(trigger, "batches")
    delivered_at_write: list[tuple[set[str], set[str]]] = []
    async with RunningTrigger(trigger) as running:
        comms.on_write = lambda: delivered_at_write.append((set(running.ids()), _stored_ids(comms)))
        await running.wait_until(lambda: comms.writes >= 1)
        fake.end_batch(first["id"])
        await running.wait_until(lambda: first["id"] in _stored_ids(comms))
    for delivered, covered in delivered_at_write:
        assert covered <= delivered, "the watermark covered a batch before its event"


@harness_needs_airflow_31
async def test_a_missing_connection_is_logged_and_retried_not_raised(
    fake: FakeBatchesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = MessageBatchEventTrigger("no_such_connection", **FAST)
    failures: list[Exception] = []
    log_and_wait = trigger._log_error_and_wait

    def spy(error: Exception, streak: int) -> float:
        failures.append(error)
        return log_and_wait(error, streak)

    trigger._log_error_and_wait = spy  # type: ignore[method-assign]
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(failures) >= 3)
    assert running.payloads == []
    assert {type(error).__name__ for error in failures} == {"AirflowNotFoundException"}
    assert "until the connection 'no_such_connection' is fixed" in capsys.readouterr().out
