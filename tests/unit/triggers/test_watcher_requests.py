"""How many requests the watcher sends: list pages when they answer for more batches than they
cost, retrieves otherwise. Counted on the fake's request log."""

from __future__ import annotations

import asyncio

import pytest
from watcher_helpers import list_after_ids, request_kinds, run_triggers

from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers._watcher import watcher_for
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix


def _ended(fake: FakeBatchesServer, count: int) -> list[str]:
    ids = fake.create_batches_bulk(count, 0.0, 0.0)["ids"]
    return list(ids)


async def test_a_hundred_new_batches_take_one_list_page(fake: FakeBatchesServer, conn: str) -> None:
    ids = _ended(fake, 100)
    events = await run_triggers([MessageBatchTrigger(b, conn, poll_interval=60) for b in ids])
    assert [e[0]["batch_id"] for e in events] == ids
    assert all(len(e) == 1 and e[0]["status"] == "success" for e in events)
    assert request_kinds(fake) == {"list": 1}


async def test_a_single_batch_is_retrieved_not_listed(fake: FakeBatchesServer, conn: str) -> None:
    (batch_id,) = _ended(fake, 1)
    events = await run_triggers([MessageBatchTrigger(batch_id, conn, poll_interval=60)])
    assert events[0][0]["status"] == "success"
    assert request_kinds(fake) == {"retrieve": 1}


async def test_pages_follow_after_id_until_the_oldest_watched_batch(
    fake: FakeBatchesServer, conn: str
) -> None:
    """2,500 watched batches: three pages (1,000 + 1,000 + 500), chained by after_id."""
    ids = _ended(fake, 2500)
    events = await run_triggers([MessageBatchTrigger(b, conn, poll_interval=60) for b in ids])
    assert all(e[0]["status"] == "success" for e in events)
    assert request_kinds(fake) == {"list": 3}
    newest_first = ids[::-1]
    assert list_after_ids(fake) == [None, newest_first[999], newest_first[1999]]


async def test_old_batches_behind_many_newer_ones_are_retrieved(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Two watched batches behind 3,000 newer ones. Their age unknown, the first cycle pages
    back until it finds them (in-progress batches are at most a day old); from then on,
    retrieving them (2 requests) beats paging back (4 pages), cycle after cycle."""
    old = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(2)]
    fake.create_batches_bulk(3000, 0.0, 0.0)
    watcher = watcher_for(conn)

    async def cycle() -> None:
        await asyncio.gather(*(watcher.poll(b, within=0) for b in old))

    await cycle()
    assert request_kinds(fake) == {"list": 4}
    for _ in range(3):
        await cycle()
    assert request_kinds(fake) == {"list": 4, "retrieve": 6}


async def test_new_and_old_batches_mix_pages_and_retrieves(
    fake: FakeBatchesServer, conn: str
) -> None:
    old = fake.create_batch(num_requests=1, ends_after=None)["id"]
    fake.create_batches_bulk(1500, 0.0, 0.0)
    new = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(20)]
    watcher = watcher_for(conn)

    async def cycle() -> None:
        await asyncio.gather(*(watcher.poll(b, within=0) for b in [old, *new]))

    await cycle()
    await cycle()
    # Each cycle: one page for the 20 new ones, one retrieve for the old one.
    assert request_kinds(fake) == {"list": 2, "retrieve": 2}


@pytest.mark.parametrize("polls", [1, 3])
async def test_many_waits_of_one_batch_share_each_poll(
    fake: FakeBatchesServer, conn: str, polls: int
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    watcher = watcher_for(conn)
    for _ in range(polls):
        batches = await asyncio.gather(*(watcher.poll(batch_id, within=0) for _ in range(50)))
        assert {b.id for b in batches} == {batch_id}
    assert request_kinds(fake) == {"retrieve": polls}
