"""The watcher's list pages: when they are worth reading, and what happens when they fail or
never end. A listing concerns no single wait: whatever a page does, each wait gets its own
batch (from a page or its own retrieve) or its own retrieve's error."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from helpers import SimulatedClock
from hypothesis import given
from hypothesis import strategies as st
from watcher_helpers import list_after_ids, request_kinds, run_triggers

import airflow_provider_batches.triggers._watcher as watcher_module
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.testing import FakeApiError, FakeBatchesServer, Fault
from airflow_provider_batches.triggers._watcher import (
    LIST_PAUSE_FIRST,
    LIST_PAUSE_MAX,
    MAX_LIST_PAGES,
    pages_worth,
    watcher_for,
)
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix

#: Hang guard only: with the guards in place every run here ends in well under a second.
HANG_GUARD = 20.0


@pytest.fixture
def fragile(fake: FakeBatchesServer, set_connection: Any) -> str:
    """A connection without retries: each failed page is one request."""
    set_connection("fragile", fake.base_url, max_retries=0, timeout=5)
    return "fragile"


def _ended(fake: FakeBatchesServer, count: int) -> list[str]:
    return list(fake.create_batches_bulk(count, 0.0, 0.0)["ids"])


async def _each_wait_gets_its_own_batch(conn: str, ids: list[str]) -> None:
    """One trigger per batch, run to its event: each a success carrying its own batch."""
    triggers = [MessageBatchTrigger(b, conn, poll_interval=60) for b in ids]
    events = await run_triggers(triggers, timeout=HANG_GUARD)
    assert [[(e["status"], e["batch_id"], e["batch"]["id"]) for e in run] for run in events] == [
        [("success", b, b)] for b in ids
    ]


async def test_an_invalid_cursor_ends_the_listing_and_each_wait_gets_its_own_batch(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Page one says there is more after 'msgbatch_other1/x': the listing ends there, and the
    two waits get their batches from their own retrieves (no error event)."""
    ids = _ended(fake, 2)
    fake.set_list_hook(
        lambda query, page: {"data": [], "has_more": True, "last_id": "msgbatch_other1/x"}
    )
    await _each_wait_gets_its_own_batch(conn, ids)
    assert request_kinds(fake) == {"list": 1, "retrieve": 2}


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=404, endpoint="list", times=-1),
        Fault("status", status=405, endpoint="list", times=-1, headers={"allow": "POST"}),
        Fault("status", status=500, endpoint="list", times=-1),
        Fault("status", status=403, endpoint="list", times=-1),
        Fault("html", endpoint="list", times=-1),
        Fault("truncated", endpoint="list", times=-1),
        Fault("body", body={"data": "garbage"}, endpoint="list", times=-1),
    ],
    ids=["404", "405", "500", "403", "html", "truncated", "garbage"],
)
async def test_a_failed_list_page_is_charged_to_no_wait(
    fake: FakeBatchesServer, fragile: str, fault: Fault
) -> None:
    """A gateway that does not serve the list endpoint, or a list page that fails however it
    fails: every wait still gets its own batch, from retrieves."""
    ids = _ended(fake, 5)
    fake.inject_fault(fault)
    await _each_wait_gets_its_own_batch(fragile, ids)
    assert request_kinds(fake) == {"list": 1, "retrieve": 5}


async def test_a_404_on_page_two_still_hands_out_page_one_and_retrieves_the_rest(
    fake: FakeBatchesServer, fragile: str
) -> None:
    """Page one answers for one batch and points at a batch deleted since: page two is a 404.
    The first wait gets its batch from page one, the two others theirs from retrieves."""
    ids = _ended(fake, 3)
    first = fake.get_batch(ids[0])

    def pages(query: dict[str, str], page: dict[str, Any]) -> Any:
        if "after_id" in query:
            raise FakeApiError(404, f"No message batch found with id {query['after_id']!r}.")
        return {"data": [first], "has_more": True, "last_id": "msgbatch_deleted_since"}

    fake.set_list_hook(pages)
    await _each_wait_gets_its_own_batch(fragile, ids)
    assert request_kinds(fake) == {"list": 2, "retrieve": 2}
    assert [r.batch_id for r in fake.requests if r.batch_id] == ids[1:]


async def test_the_same_page_answered_forever_costs_two_list_requests(
    fake: FakeBatchesServer, conn: str
) -> None:
    """has_more true and the same page behind the same cursor, forever: the second page brings
    nothing older and repeats the cursor, which ends the listing; the waits are retrieved."""
    other = fake.create_batch(num_requests=1, ends_after=None)
    ids = _ended(fake, 2)
    fake.set_list_hook(lambda query, page: {"data": [other], "has_more": True, "last_id": ids[0]})
    await _each_wait_gets_its_own_batch(conn, ids)
    assert request_kinds(fake) == {"list": 2, "retrieve": 2}
    assert list_after_ids(fake) == [None, ids[0]]


async def test_pages_that_reach_no_older_batch_end_the_listing(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Empty pages that always have more, each behind a new cursor: the first one reaches no
    batch at all, so reading on cannot pay; one list request, then retrieves."""
    ids = _ended(fake, 2)
    counter = itertools.count()
    fake.set_list_hook(
        lambda query, page: {"data": [], "has_more": True, "last_id": f"msgbatch_{next(counter)}"}
    )
    await _each_wait_gets_its_own_batch(conn, ids)
    assert request_kinds(fake) == {"list": 1, "retrieve": 2}


async def test_a_listing_that_never_ends_stops_at_the_page_cap(
    fake: FakeBatchesServer, conn: str
) -> None:
    """Each page has more, behind a cursor never seen, and reaches a batch older than the last
    page's: MAX_LIST_PAGES requests, no more; the waits are retrieved."""
    ids = _ended(fake, 2)
    template = fake.get_batch(ids[0])
    counter = itertools.count(1)

    def older_each_time(query: dict[str, str], page: dict[str, Any]) -> Any:
        n = next(counter)
        created = datetime.fromisoformat(template["created_at"]) - timedelta(seconds=n)
        entry = {**template, "id": f"msgbatch_older{n}", "created_at": created.isoformat()}
        return {"data": [entry], "has_more": True, "last_id": entry["id"]}

    fake.set_list_hook(older_each_time)
    await _each_wait_gets_its_own_batch(conn, ids)
    assert request_kinds(fake) == {"list": MAX_LIST_PAGES, "retrieve": 2}


async def test_listing_pauses_after_failures_doubling_and_a_good_page_resets_the_pause(
    fake: FakeBatchesServer, fragile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without the list endpoint: after each failed listing the watcher retrieves and
    lists again only after a pause that doubles (30 s, 60 s, 120 s...). Once a page answers,
    the next failure pauses 30 s again. Each cycle every wait gets its own batch."""
    clock = SimulatedClock(start=time.time())
    clock.install(watcher_module, monkeypatch)
    ids = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(2)]
    watcher = watcher_for(fragile)
    step = 10.0

    async def cycles(count: int) -> list[float]:
        """Run ``count`` cycles ``step`` simulated seconds apart; when each one listed."""
        listed_at: list[float] = []
        for _ in range(count):
            before = request_kinds(fake)["list"]
            polls = [watcher.poll(b, within=0) for b in ids]
            batches = await asyncio.wait_for(asyncio.gather(*polls), HANG_GUARD)
            assert [b.id for b in batches] == ids
            if request_kinds(fake)["list"] > before:
                listed_at.append(clock.now)
            clock.now += step
        return listed_at

    try:
        fake.inject_fault(Fault("status", status=404, endpoint="list", times=-1))
        failing = await cycles(45)  # fails at 0, 30, 90 and 210 s: paused until 450 s
        fake.clear_faults()
        recovered = await cycles(3)  # lists at once, and every cycle while pages answer
        fake.inject_fault(Fault("status", status=404, endpoint="list", times=-1))
        failing_again = await cycles(5)
    finally:
        await aclose_shared_clients()

    pauses = [LIST_PAUSE_FIRST * 2**n for n in range(4)]
    gaps = [later - earlier for earlier, later in itertools.pairwise([*failing, recovered[0]])]
    assert len(gaps) == len(pauses)
    assert all(pause <= gap < pause + step for gap, pause in zip(gaps, pauses, strict=True))
    assert len(recovered) == 3
    assert failing_again[0] == pytest.approx(recovered[-1] + step, abs=1)
    (gap,) = [later - earlier for earlier, later in itertools.pairwise(failing_again)]
    assert LIST_PAUSE_FIRST <= gap < LIST_PAUSE_FIRST + step


async def test_an_empty_page_leaves_the_next_cycles_working(
    fake: FakeBatchesServer, conn: str
) -> None:
    """A listing that read an empty page has no page boundary to place batches by: the cycles
    after it still estimate, list and answer every wait."""
    ids = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(2)]
    watcher = watcher_for(conn)

    async def cycle() -> list[str]:
        polls = asyncio.gather(*(watcher.poll(b, within=0) for b in ids))
        return [b.id for b in await asyncio.wait_for(polls, HANG_GUARD)]

    try:
        assert await cycle() == ids  # learns where the batches are
        fake.set_list_hook(lambda query, page: {"data": [], "has_more": False, "last_id": None})
        assert await cycle() == ids  # an empty page: the waits are retrieved
        fake.set_list_hook(None)
        assert await cycle() == ids
        assert await cycle() == ids
    finally:
        await aclose_shared_clients()
    assert request_kinds(fake) == {"list": 4, "retrieve": 2}


def test_the_pause_never_exceeds_its_ceiling() -> None:
    watcher = watcher_module.BatchWatcher("any")
    for _ in range(200):
        watcher._pause_listing(RuntimeError("no list endpoint"))
    assert watcher._list_paused_until - time.monotonic() <= LIST_PAUSE_MAX


# ---- how many pages are worth reading --------------------------------------------------------


@pytest.mark.parametrize(
    ("needed", "pages"),
    [
        ([], 0),
        ([1], 0),  # one batch: a retrieve is as cheap as a page, and exact
        ([1, 1], 1),
        ([3, 3], 0),  # two batches three pages back: retrieve both
        ([3, 3, 3, 3], 3),
        ([1, math.inf, math.inf], 0),
        ([1, 1, math.inf], 1),
        ([1, 1, 2, 2, 2, 9], 2),
    ],
)
def test_pages_worth_reading(needed: list[float], pages: int) -> None:
    assert pages_worth(needed) == pages


@given(st.lists(st.one_of(st.integers(1, 20).map(float), st.just(math.inf)), max_size=40))
def test_pages_worth_never_costs_more_than_retrieving_everything(needed: list[float]) -> None:
    pages = pages_worth(needed)
    uncovered = sum(1 for n in needed if n > pages)
    assert pages + uncovered <= len(needed)
    # and no other page count is cheaper
    for other in range(0, 21):
        assert pages + uncovered <= other + sum(1 for n in needed if n > other)
