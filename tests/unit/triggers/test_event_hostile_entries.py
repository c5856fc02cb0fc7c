"""MessageBatchEventTrigger against list entries a careless or hostile server sends: timestamps
in the future, missing or inconsistent, impossible request counts, ids that are not batch ids,
entries out of order. Each is skipped (and logged) or contained; the batches beside it are
still reported, the watermark never moves past the trigger's clock, and ``run()`` never raises.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from event_helpers import DictSupervisorComms, RunningTrigger, attach_asset_state_store

from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

FAST: dict[str, Any] = {"poll_interval": 0.02}
FAR_FUTURE = "2098-01-01T00:00:00+00:00"


@pytest.fixture
def conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    set_connection("batches_events", fake.base_url, max_retries=0, timeout=2)
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


def ended_batch(fake: FakeBatchesServer, **changes: Any) -> dict[str, Any]:
    """A real ended batch of the fake, as the list shows it, with ``changes`` applied."""
    made = fake.create_batch(num_requests=2, ends_after=None)
    return {**fake.end_batch(made["id"]), **changes}


def serve_pages(fake: FakeBatchesServer, *pages: dict[str, Any], forever: bool = True) -> None:
    """The list answers these pages in order (the last one forever, if ``forever``)."""
    for index, page in enumerate(pages):
        last = index == len(pages) - 1
        times = -1 if last and forever else 1
        fake.inject_fault(Fault(kind="body", body=page, method="GET", times=times))


def page(*entries: Any, has_more: bool = False, last_id: str | None = None) -> dict[str, Any]:
    if last_id is None and entries and isinstance(entries[-1], dict):
        last_id = entries[-1].get("id")
    return {"data": list(entries), "has_more": has_more, "last_id": last_id}


def log_lines(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> list[str]:
    # The trigger logs through Airflow's structlog (stdout) or stdlib logging, by release.
    return capsys.readouterr().out.splitlines() + [r.getMessage() for r in caplog.records]


def stored_horizon(comms: DictSupervisorComms) -> datetime:
    (value,) = comms.values.values()
    return datetime.fromisoformat(value["horizon"])


def stored_ids(comms: DictSupervisorComms) -> set[str]:
    return {i for value in comms.values.values() for i in value["ids"]}


async def test_an_ended_entry_without_ended_at_is_skipped_and_the_batch_beside_it_reported(
    fake: FakeBatchesServer,
    conn: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    valid = ended_batch(fake)
    # Created before the valid batch ended: the trigger handles it first.
    broken = {**valid, "id": "msgbatch_no_end", "ended_at": None}
    serve_pages(fake, page(broken, valid))
    caplog.set_level(logging.WARNING)
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: valid["id"] in running.ids())
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 5)  # still polling
    assert running.ids() == [valid["id"]]
    lines = log_lines(caplog, capsys)
    assert [line for line in lines if "msgbatch_no_end" in line and "ended_at" in line]


async def test_an_entry_that_ended_before_it_was_created_is_skipped(
    fake: FakeBatchesServer,
    conn: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    valid = ended_batch(fake)
    created = datetime.fromisoformat(valid["created_at"].replace("Z", "+00:00"))
    inconsistent = {
        **valid,
        "id": "msgbatch_time_travel",
        "ended_at": (created - timedelta(minutes=1)).isoformat(),
    }
    serve_pages(fake, page(inconsistent, valid))
    caplog.set_level(logging.WARNING)
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: valid["id"] in running.ids())
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 5)
    assert running.ids() == [valid["id"]]
    assert [line for line in log_lines(caplog, capsys) if "msgbatch_time_travel" in line]


@pytest.mark.parametrize(
    "bad_id",
    ["msgbatch_x/../other", "", " ", "msgbatch_\u0000", "m" * 1025],
    ids=["slash", "empty", "blank", "control", "too_long"],
)
async def test_an_entry_whose_id_is_not_a_batch_id_is_skipped(
    fake: FakeBatchesServer, conn: str, bad_id: str
) -> None:
    valid = ended_batch(fake)
    serve_pages(fake, page({**valid, "id": bad_id}, valid))
    async with RunningTrigger(MessageBatchEventTrigger(conn, **FAST)) as running:
        await running.wait_until(lambda: valid["id"] in running.ids())
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 5)
    assert running.ids() == [valid["id"]]


async def test_impossible_request_counts_are_skipped_not_fatal_to_the_outcome_filter(
    fake: FakeBatchesServer, conn: str
) -> None:
    made = fake.create_batch(
        num_requests=4, ends_after=None, outcomes={"succeeded": 1, "errored": 3}
    )
    failing = fake.end_batch(made["id"])
    huge = 10**400
    # The counts sum to 1 request, of which 10**400 errored: a ratio no float can hold.
    impossible = {
        **failing,
        "id": "msgbatch_impossible",
        "request_counts": {**failing["request_counts"], "errored": huge, "other": -huge},
    }
    serve_pages(fake, page(impossible, failing))
    trigger = MessageBatchEventTrigger(
        conn, outcome="failing", policy={"max_errored_ratio": 0.5}, **FAST
    )
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: failing["id"] in running.ids())
        seen_at = lists(fake)
        await running.wait_until(lambda: lists(fake) >= seen_at + 5)
    assert running.ids() == [failing["id"]]


async def test_an_old_entry_out_of_order_does_not_end_the_listing(
    fake: FakeBatchesServer, conn: str
) -> None:
    running_batch = fake.create_batch(num_requests=1, ends_after=None)
    valid = ended_batch(fake)
    old = {
        **valid,
        "id": "msgbatch_from_2001",
        "created_at": "2001-01-01T00:00:00+00:00",
        "expires_at": "2001-01-02T00:00:00+00:00",
        "ended_at": "2001-01-01T01:00:00+00:00",
    }
    # Newest first, but for one stray old entry in the middle of the first page.
    serve_pages(
        fake,
        page(old, running_batch, has_more=True),
        page(valid),
    )
    trigger = MessageBatchEventTrigger(conn, page_size=2, poll_interval=3600)
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: len(running.payloads) == 1)
    assert running.ids() == [valid["id"]]
    assert lists(fake) == 2


async def test_an_end_in_the_future_never_moves_the_watermark_past_now(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    template = ended_batch(fake)
    fake.clear_faults()
    future = {**template, "id": "msgbatch_from_2098", "ended_at": FAR_FUTURE}
    serve_pages(fake, page(future, template))
    trigger = MessageBatchEventTrigger(conn, **FAST)
    attach_asset_state_store(trigger, "batches")
    async with RunningTrigger(trigger) as running:
        await running.wait_until(lambda: "msgbatch_from_2098" in stored_ids(comms))
    assert sorted(running.ids()) == sorted(["msgbatch_from_2098", template["id"]])
    assert stored_horizon(comms) <= datetime.now(timezone.utc)
    fake.clear_faults()
    # After a restart: reported once (the id is kept), and batches that end now still are.
    rebuilt = MessageBatchEventTrigger(**trigger.serialize()[1])
    attach_asset_state_store(rebuilt, "batches")
    later = fake.create_batch(num_requests=1, ends_after=None)
    serve_pages(fake, page(future, template), forever=False)
    async with RunningTrigger(rebuilt) as running_again:
        fake.end_batch(later["id"])
        await running_again.wait_until(lambda: later["id"] in running_again.ids())
        seen_at = lists(fake)
        await running_again.wait_until(lambda: lists(fake) >= seen_at + 5)
    assert running_again.ids() == [later["id"]]


async def test_a_stored_watermark_past_now_gives_way_to_the_lookback_window(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    trigger = MessageBatchEventTrigger(conn, **FAST)
    # What an earlier release stored after a batch reported an end in 2098.
    comms.values[("batches", trigger.watermark_key)] = {
        "version": 1,
        "horizon": "2097-12-31T23:50:00+00:00",
        "ids": ["msgbatch_from_2098"],
    }
    attach_asset_state_store(trigger, "batches")
    ended_before_start = ended_batch(fake)
    done = fake.create_batch(num_requests=1, ends_after=None)
    async with RunningTrigger(trigger) as running:
        fake.end_batch(done["id"])
        await running.wait_until(lambda: done["id"] in stored_ids(comms))
    assert sorted(running.ids()) == sorted([ended_before_start["id"], done["id"]])
    assert stored_horizon(comms) <= datetime.now(timezone.utc)
    assert "msgbatch_from_2098" in stored_ids(comms)  # its id stays covered
    json.dumps(comms.values[("batches", trigger.watermark_key)])


async def test_a_batch_the_list_hides_for_a_while_is_not_reported_again_after_restarts(
    fake: FakeBatchesServer, conn: str, comms: DictSupervisorComms
) -> None:
    shown = ended_batch(fake)
    later = ended_batch(fake)  # ended just after: within the reorder margin
    fake.clear_faults()

    def life() -> MessageBatchEventTrigger:
        trigger = MessageBatchEventTrigger(conn, **FAST)
        attach_asset_state_store(trigger, "batches")
        return trigger

    serve_pages(fake, page(shown))
    async with RunningTrigger(life()) as first:
        await first.wait_until(lambda: shown["id"] in stored_ids(comms))
    # The next life's list leaves it out (has_more said False too early), then shows it again.
    fake.clear_faults()
    serve_pages(fake, page(later))
    async with RunningTrigger(life()) as second:
        await second.wait_until(lambda: later["id"] in stored_ids(comms))
    fake.clear_faults()
    serve_pages(fake, page(later, shown))
    async with RunningTrigger(life()) as third:
        seen_at = lists(fake)
        await third.wait_until(lambda: lists(fake) >= seen_at + 5)
    assert (first.ids(), second.ids(), third.ids()) == ([shown["id"]], [later["id"]], [])
