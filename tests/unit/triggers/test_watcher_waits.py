"""What each wait gets from the shared watcher: its own batch once per cycle, its own errors,
one connection lookup for all, and no starvation under the rate limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import harness_needs_airflow_31
from watcher_helpers import request_kinds, run_triggers

from airflow_provider_batches.exceptions import NotFoundError
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers._watcher import watcher_for
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix


async def test_every_trigger_gets_exactly_one_event_with_its_own_batch(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Three triggers per batch, 40 batches ending at different times."""
    ids = fake.create_batches_bulk(40, 0.1, 0.8)["ids"]
    triggers = [MessageBatchTrigger(b, conn, poll_interval=0.1) for b in ids for _ in range(3)]
    events = await run_triggers(triggers)
    assert all(len(e) == 1 for e in events)
    assert [e[0]["batch_id"] for e in events] == [b for b in ids for _ in range(3)]
    assert all(e[0]["status"] == "success" for e in events)
    assert all(e[0]["batch"]["id"] == e[0]["batch_id"] for e in events)
    assert all(e[0]["batch"]["processing_status"] == "ended" for e in events)
    # Shared polls: one request per cycle (a page, or a retrieve when one batch is left).
    assert sum(request_kinds(fake).values()) == watcher_for(conn).cycles


async def test_a_404_goes_only_to_the_wait_of_that_batch(
    fake: FakeBatchesServer, conn: str
) -> None:
    """A deleted batch is missing from the list pages: it is retrieved, and only its wait
    ends with the 404; the others end normally."""
    ids = fake.create_batches_bulk(5, 0.0, 0.0)["ids"]
    fake._state.delete_batch(ids[2])
    events = await run_triggers([MessageBatchTrigger(b, conn, poll_interval=60) for b in ids])
    statuses = [e[0]["status"] for e in events]
    assert statuses == ["success", "success", "error", "success", "success"]
    assert events[2][0]["error"]["status_code"] == 404
    assert request_kinds(fake) == {"list": 1, "retrieve": 1}


async def test_a_failed_retrieve_reaches_only_its_own_poll(
    fake: FakeBatchesServer, conn: str
) -> None:
    existing = fake.create_batch(num_requests=1, ends_after=None)["id"]
    watcher = watcher_for(conn)
    found, missing = await asyncio.gather(
        watcher.poll(existing, within=0),
        watcher.poll("msgbatch_does_not_exist", within=0),
        return_exceptions=True,
    )
    assert not isinstance(found, BaseException)
    assert found.id == existing
    assert isinstance(missing, NotFoundError)


@harness_needs_airflow_31
async def test_one_connection_lookup_for_a_hundred_triggers(
    fake: FakeBatchesServer, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import BaseHook

    lookups: list[str] = []
    original = BaseHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counting(cls: Any, conn_id: str) -> Any:
        lookups.append(conn_id)
        return await original(cls, conn_id)

    monkeypatch.setattr(BaseHook, "aget_connection", classmethod(counting))
    ids = fake.create_batches_bulk(100, 0.2, 0.6)["ids"]
    events = await run_triggers([MessageBatchTrigger(b, conn, poll_interval=0.1) for b in ids])
    assert all(e[0]["status"] == "success" for e in events)
    assert lookups == [conn]
    assert watcher_for(conn).lookups == 1


async def test_the_lookup_is_repeated_after_its_ttl(
    fake: FakeBatchesServer, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotated key is picked up: after the TTL the next cycle looks the connection up again."""
    import airflow_provider_batches.triggers._watcher as watcher_module

    monkeypatch.setattr(watcher_module, "SETTINGS_TTL", 0.0)
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    watcher = watcher_for(conn)
    for _ in range(3):
        await watcher.poll(batch_id, within=0)
    assert watcher.lookups == 3


async def test_no_wait_starves_under_the_rate_limit(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    """300 waits of new batches and 2 old batches behind 2,000 others, on a fake enforcing 60
    requests a minute with our budget at 60: every end is detected, no 429 is received."""
    fake.set_rate_limit(60)
    set_connection("limited", fake.base_url, max_retries=2, max_requests_per_minute=60)
    old = [fake.create_batch(num_requests=1, ends_after=1.5)["id"] for _ in range(2)]
    fake.create_batches_bulk(2000, 0.0, 0.0)
    new = fake.create_batches_bulk(300, 0.2, 2.0)["ids"]
    triggers = [MessageBatchTrigger(b, "limited", poll_interval=0.3) for b in [*old, *new]]
    events = await run_triggers(triggers, timeout=120)
    assert [e[0]["batch_id"] for e in events] == [*old, *new]
    assert all(len(e) == 1 and e[0]["status"] == "success" for e in events)
    assert fake.rate_limited == 0


async def test_one_429_on_a_list_page_pauses_the_connection_and_every_wait_still_ends(
    fake: FakeBatchesServer, conn: str
) -> None:
    ids = fake.create_batches_bulk(30, 0.0, 0.5)["ids"]
    fake.inject_fault(Fault("status", status=429, headers={"retry-after": "1"}, method="GET"))
    events = await run_triggers([MessageBatchTrigger(b, conn, poll_interval=0.2) for b in ids])
    assert all(len(e) == 1 and e[0]["status"] == "success" for e in events)
    refused, *later = fake.requests
    assert all(r.received_at >= refused.received_at + 1.0 for r in later)


async def test_a_cancelled_wait_leaves_the_others_served(
    fake: FakeBatchesServer, conn: str
) -> None:
    ids = fake.create_batches_bulk(3, 0.3, 0.3)["ids"]
    watcher = watcher_for(conn)
    cancelled = asyncio.ensure_future(watcher.poll(ids[0], within=5))
    others = [asyncio.ensure_future(watcher.poll(b, within=0)) for b in ids]
    await asyncio.sleep(0)
    cancelled.cancel()
    batches = await asyncio.gather(*others)
    assert [b.id for b in batches] == ids
    assert cancelled.cancelled()


async def test_a_404_among_retrieves_of_one_cycle_reaches_only_its_poll(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Two batches retrieved in the same cycle (one old and known, one never existing): the
    404 answers first, and still only its own poll gets it."""
    old = fake.create_batch(num_requests=1, ends_after=None)["id"]
    watcher = watcher_for(conn)
    await watcher.poll(old, within=0)  # learns its age
    fake.create_batches_bulk(3000, 0.0, 0.0)
    await asyncio.gather(watcher.poll(old, within=0), watcher.poll(old, within=0))
    fake.inject_fault(Fault("delay", delay=0.5, batch_id=old))
    found, missing = await asyncio.gather(
        watcher.poll(old, within=0),
        watcher.poll("msgbatch_never_created", within=0),
        return_exceptions=True,
    )
    assert isinstance(missing, NotFoundError)
    assert not isinstance(found, BaseException)
    assert found.id == old


async def test_a_connection_without_a_key_ends_each_wait_with_an_error_event(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    set_connection("keyless", fake.base_url, api_key="")
    ids = fake.create_batches_bulk(3, 0.0, 0.0)["ids"]
    events = await run_triggers([MessageBatchTrigger(b, "keyless", poll_interval=60) for b in ids])
    assert [e[0]["status"] for e in events] == ["error"] * 3
    assert all("no API key" in e[0]["error"]["message"] for e in events)
    assert fake.request_count() == 0


@harness_needs_airflow_31
async def test_a_missing_connection_fails_the_trigger_as_before(fake: FakeBatchesServer) -> None:
    """As without the watcher: one error event that names the connection, for every wait."""
    triggers = [
        MessageBatchTrigger(batch_id, "no_such_connection", poll_interval=60)
        for batch_id in ("msgbatch_x", "msgbatch_y")
    ]

    events = await run_triggers(triggers)

    assert [[e["status"] for e in run] for run in events] == [["error"], ["error"]]
    assert all(
        "'no_such_connection' is not defined where the trigger runs" in run[0]["message"]
        for run in events
    )
    assert fake.request_count() == 0
