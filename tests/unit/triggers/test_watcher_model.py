"""The watcher against a fake whose list pages are generated adversarially, model-based.

A hypothesis state machine creates, ends and deletes batches, watches some of them (one or two
waits each), scripts what the list endpoint answers (pages of any size and content, has_more
that lies, cursors repeated, invalid or pointing at deleted batches, malformed fields, 4xx and
5xx, garbage bodies, no list endpoint at all), fails single retrieves, lets simulated time pass
and runs watcher cycles. After every cycle:

- each wait got its own batch in the state the fake holds, or the error of its own batch's
  retrieve in that cycle; never another batch's answer, never a listing's error;
- the cycle sent at most MAX_LIST_PAGES list requests and at most one retrieve per watched
  batch, and no list request after a failed page;
- nothing was listed while the pause after failed listings (30 s doubling, reset by a page
  that answers) had not passed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import API_KEY, SimulatedClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

import airflow_provider_batches.triggers._watcher as watcher_module
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.exceptions import APIError, NotFoundError
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.testing import FakeApiError, FakeBatchesServer, Fault
from airflow_provider_batches.triggers._watcher import LIST_PAUSE_FIRST, LIST_PAUSE_MAX, watcher_for

pytestmark = pytest.mark.matrix

CONN_ID = "modelled"
LIST_PATH = "/v1/messages/batches"
#: A small page cap keeps endless listings cheap; the bound holds for any cap.
PAGE_CAP = 4
#: Hang guard only: with the watcher working, a cycle answers in milliseconds.
CYCLE_GUARD = 10.0
MAX_BATCHES = 10

#: Entries that are not valid batches; "{watched}" becomes a watched batch's id.
JUNK: list[Any] = [
    {"id": 5},
    "text",
    None,
    {"id": "{watched}", "processing_status": "ended"},
    {"id": "{watched}", "created_at": "yesterday", "processing_status": "ended"},
]
GARBAGE = [b"<html>Bad gateway</html>", b"{", b"[]", b'{"data": 5}', b'{"data": [], "has_more": 1}']
CURSORS = ["last", "null", "invalid", "repeat", "deleted", "fresh", "malformed"]
OLDER = "older"


@dataclass(frozen=True)
class Page:
    """A scripted page: entries (an index into the batches made, or junk), has_more, cursor."""

    entries: tuple[int | Any, ...]
    has_more: bool
    cursor: str


@dataclass(frozen=True)
class Status:
    status: int


@dataclass(frozen=True)
class Garbage:
    body: bytes


@dataclass(frozen=True)
class Oversize:
    """More entries than the watcher asked for."""


@dataclass(frozen=True)
class Faithful:
    """The page the fake itself would send."""


#: An entry: a batch by its index among those made, the batch just older than any this listing
#: showed so far (as a real next page would), or junk.
entry = st.one_of(
    st.integers(0, MAX_BATCHES - 1), st.just(OLDER), st.just(OLDER), st.sampled_from(JUNK)
)
pages = st.builds(
    Page,
    # Mostly batches; an empty page, or one of junk only, reaches nothing older.
    st.one_of(st.lists(entry, min_size=1, max_size=8).map(tuple), st.just(())),
    st.sampled_from([True, True, False]),  # has_more, lying or not
    st.sampled_from([*CURSORS, "last", "repeat", "deleted", "fresh"]),  # followable: more often
)
others = st.one_of(
    st.builds(Status, st.sampled_from([400, 401, 403, 404, 405, 409, 429, 500, 502, 503, 529])),
    st.builds(Garbage, st.sampled_from(GARBAGE)),
    st.just(Oversize()),
    st.just(Faithful()),
)
answers = st.one_of(pages, pages, others)


@pytest.fixture(scope="module")
def model_fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY) as fake:
        yield fake


class WatcherModel(RuleBasedStateMachine):
    fake: FakeBatchesServer
    clock: SimulatedClock

    def __init__(self) -> None:
        super().__init__()
        self.fake.reset()
        self.clock.now = self.clock.started = time.time()
        self.loop = asyncio.new_event_loop()
        self.made: list[str] = []  # every batch made, deleted ones included
        self.deleted: set[str] = set()
        self.watched: dict[str, int] = {}  # batch id -> waits on it
        self.failing_retrieves: set[str] = set()
        self.script: list[Any] = []
        self.no_list_endpoint: int | None = None
        self.served: list[bool] = []  # per list request answered: was it a good page?
        self.fresh = itertools.count()
        self.oldest_shown = MAX_BATCHES  # index of the oldest batch this listing showed so far
        # The model of the pause: failed listings in a row, and until when none is sent.
        self.failures = 0
        self.paused_until = -math.inf
        self.fake.set_list_hook(self.answer_list)

    def teardown(self) -> None:
        self.loop.run_until_complete(aclose_shared_clients())
        self.loop.close()

    # ---- the list endpoint, answered on the fake's thread ----------------------------------

    def answer_list(self, query: dict[str, str], page: dict[str, Any]) -> Any:
        if self.script:
            scripted = self.script.pop(0)
        elif self.no_list_endpoint is not None:
            scripted = Status(self.no_list_endpoint)
        else:
            scripted = Faithful()
        self.served.append(isinstance(scripted, Faithful | Page) and self._good(scripted))
        if isinstance(scripted, Status):
            raise FakeApiError(scripted.status, "scripted list failure")
        if isinstance(scripted, Garbage):
            return scripted.body
        if isinstance(scripted, Oversize):
            return {"data": [{"id": 5}] * 1001, "has_more": False, "last_id": None}
        if isinstance(scripted, Faithful):
            return None
        return self._render(scripted, query)

    @staticmethod
    def _good(scripted: Any) -> bool:
        return not (isinstance(scripted, Page) and scripted.cursor == "malformed")

    def _render(self, scripted: Page, query: dict[str, str]) -> dict[str, Any]:
        data: list[Any] = []
        watched = next(iter(self.watched), "msgbatch_none")
        if "after_id" not in query:  # a new listing
            self.oldest_shown = len(self.made)
        for item in scripted.entries:
            if item == OLDER:
                item = self.oldest_shown - 1
                if item < 0:
                    continue
            if isinstance(item, int):
                index = item % len(self.made)
                self.oldest_shown = min(self.oldest_shown, index)
                if self.made[index] not in self.deleted:
                    data.append(self.fake.get_batch(self.made[index]))
            elif isinstance(item, dict):
                data.append({k: watched if v == "{watched}" else v for k, v in item.items()})
            else:
                data.append(item)
        ids = [d["id"] for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)]
        cursor: Any = {
            "last": ids[-1] if ids else None,
            "null": None,
            "invalid": "msgbatch_other1/x",
            "repeat": query.get("after_id", "msgbatch_first"),
            "deleted": next(iter(self.deleted), "msgbatch_never_made"),
            "fresh": f"msgbatch_fresh{next(self.fresh)}",
            "malformed": 7,
        }[scripted.cursor]
        return {"data": data, "has_more": scripted.has_more, "last_id": cursor}

    # ---- rules -----------------------------------------------------------------------------

    @initialize(background=st.integers(0, 3), watched=st.integers(2, 4))
    def start(self, background: int, watched: int) -> None:
        self.make(count=background, watch=False, waits=1)
        self.make(count=watched, watch=True, waits=1)

    @precondition(lambda self: len(self.made) < MAX_BATCHES)
    @rule(count=st.integers(1, 3), watch=st.booleans(), waits=st.integers(1, 2))
    def make(self, count: int, watch: bool, waits: int) -> None:
        for _ in range(min(count, MAX_BATCHES - len(self.made))):
            batch_id = self.fake.create_batch(num_requests=1, ends_after=None)["id"]
            self.made.append(batch_id)
            if watch:
                self.watched[batch_id] = waits

    @rule(index=st.integers(0, MAX_BATCHES - 1), waits=st.integers(1, 2))
    def toggle_watch(self, index: int, waits: int) -> None:
        """Stop waiting for a batch, or start again (the watcher then knows nothing of it)."""
        batch_id = self.made[index % len(self.made)]
        if batch_id in self.watched:
            del self.watched[batch_id]
        elif batch_id not in self.deleted:
            self.watched[batch_id] = waits

    @rule(index=st.integers(0, MAX_BATCHES - 1))
    def end(self, index: int) -> None:
        batch_id = self.made[index % len(self.made)]
        if batch_id not in self.deleted:
            self.fake.end_batch(batch_id)

    @rule(index=st.integers(0, MAX_BATCHES - 1))
    def delete(self, index: int) -> None:
        batch_id = self.made[index % len(self.made)]
        if batch_id not in self.deleted:
            self.fake.end_batch(batch_id)
            self.fake.delete_batch(batch_id)
            self.deleted.add(batch_id)

    @rule(status=st.sampled_from([None, 404, 405]))
    def list_endpoint(self, status: int | None) -> None:
        """None: the fake serves the list; 404 or 405: it does not (a retrieve-only gateway)."""
        self.no_list_endpoint = status

    @precondition(lambda self: bool(self.watched))
    @rule(index=st.integers(0, MAX_BATCHES - 1), status=st.sampled_from([500, 503, 403, 404]))
    def fail_a_retrieve(self, index: int, status: int) -> None:
        batch_id = list(self.watched)[index % len(self.watched)]
        if batch_id not in self.failing_retrieves:
            self.fake.inject_fault(Fault("status", status=status, batch_id=batch_id, method="GET"))
            self.failing_retrieves.add(batch_id)

    @rule()
    def restart_the_triggerer(self) -> None:
        """A new event loop: a new watcher that knows nothing yet, and has no pause."""
        self.teardown()
        self.loop = asyncio.new_event_loop()
        self.failures = 0
        self.paused_until = -math.inf

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0, 65.0, 250.0, 2000.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: bool(self.watched))
    @rule(scripted=st.lists(answers, max_size=5), restarted=st.booleans())
    def cycle(self, scripted: list[Any], restarted: bool) -> None:
        """Script what the next list requests get (the rest: the fake's own answer, or the
        missing endpoint's status), then poll every wait at once: one watcher cycle. After a
        restart the watcher knows no batch yet, so it pages on behind the cursors."""
        if restarted:
            self.restart_the_triggerer()
        self.script[:] = scripted
        logged = len(self.fake.requests)
        served = len(self.served)
        expected = {b: self.fake.get_batch(b) for b in self.watched if b not in self.deleted}
        order = [b for b, waits in self.watched.items() for _ in range(waits)]
        cycles, results = self.loop.run_until_complete(self._poll_all(order))
        now = self.clock.now  # the cycle's time (the clock does not move during a cycle)
        requests = self.fake.requests[logged:]
        good_pages = self.served[served:]

        assert cycles == 1
        listed = [r for r in requests if r.method == "GET" and r.path == LIST_PATH]
        retrieved = Counter(r.batch_id for r in requests if r.batch_id is not None)
        assert len(listed) + sum(retrieved.values()) == len(requests)  # nothing else sent
        assert all(r.method == "GET" for r in requests)
        assert len(listed) <= PAGE_CAP
        assert set(retrieved) <= set(self.watched)
        assert all(count == 1 for count in retrieved.values())
        assert False not in good_pages[:-1]  # a failed page ends the listing
        if now < self.paused_until - 0.01:
            assert not listed, "listed while listing was paused"
        for good in good_pages:
            self._model_pause(good, now)

        by_batch = {b: [r for o, r in zip(order, results, strict=True) if o == b] for b in order}
        assert all(len({repr(r) for r in rs}) == 1 for rs in by_batch.values())
        for batch_id, result in zip(order, results, strict=True):
            if isinstance(result, MessageBatch):
                assert batch_id in expected, f"{batch_id} is deleted, yet a wait got it"
                assert result.id == batch_id
                truth = expected[batch_id]
                assert result.processing_status == truth["processing_status"]
                assert result.created_at.timestamp() == pytest.approx(
                    MessageBatch.model_validate(truth).created_at.timestamp()
                )
            else:
                # Only its own retrieve's error: a failed retrieve, or the 404 of a deletion.
                assert isinstance(result, APIError), repr(result)
                assert result.batch_id == batch_id, repr(result)
                assert retrieved[batch_id] == 1
                assert batch_id in self.failing_retrieves or (
                    batch_id in self.deleted and isinstance(result, NotFoundError)
                ), repr(result)
        for batch_id, result in zip(order, results, strict=True):
            if not isinstance(result, MessageBatch) and batch_id in self.failing_retrieves:
                self.failing_retrieves.discard(batch_id)  # the fault was used up
        self.watched = {b: w for b, w in self.watched.items() if b not in self.deleted}

    async def _poll_all(self, order: list[str]) -> tuple[int, list[Any]]:
        """One poll per wait, all at once; how many cycles answered them, and the answers."""
        watcher = watcher_for(CONN_ID)
        cycles = watcher.cycles
        polls = asyncio.gather(*(watcher.poll(b, within=0) for b in order), return_exceptions=True)
        results = await asyncio.wait_for(polls, CYCLE_GUARD)
        return watcher.cycles - cycles, list(results)

    def _model_pause(self, good: bool, now: float) -> None:
        if good:
            self.failures = 0
            return
        self.failures += 1
        pause = min(LIST_PAUSE_FIRST * 2 ** (self.failures - 1), LIST_PAUSE_MAX)
        self.paused_until = now + pause


@pytest.fixture
def machine(
    model_fake: FakeBatchesServer, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> type[WatcherModel]:
    """The model on the module's fake, with the watcher's clock simulated and a small cap."""
    set_connection(CONN_ID, model_fake.base_url, max_retries=0, timeout=5)
    monkeypatch.setattr(watcher_module, "MAX_LIST_PAGES", PAGE_CAP)
    clock = SimulatedClock(start=time.time())
    clock.install(watcher_module, monkeypatch)

    class Machine(WatcherModel):
        pass

    Machine.fake = model_fake
    Machine.clock = clock
    return Machine


def examples(count: int, **more: Any) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        **more,
    )


@pytest.mark.timeout(240)
def test_the_watcher_against_adversarial_list_pages(machine: type[WatcherModel]) -> None:
    run_state_machine_as_test(machine, settings=examples(40, stateful_step_count=30))


#: A listing that goes on: pages that say there is more behind a cursor that can be followed,
#: then anything (a failure, a lie, the fake's own page).
long_listings = st.tuples(
    st.lists(
        st.builds(
            Page,
            st.lists(entry, max_size=4).map(tuple),
            st.just(True),
            st.sampled_from(["last", "repeat", "deleted", "fresh"]),
        ),
        min_size=1,
        max_size=PAGE_CAP + 1,
    ),
    st.one_of(st.none(), pages, others),
).map(lambda parts: [*parts[0], *([] if parts[1] is None else [parts[1]])])


@pytest.mark.timeout(120)
def test_a_first_cycle_through_long_adversarial_listings(machine: type[WatcherModel]) -> None:
    """The first cycle of a watcher (no batch placed yet, so paging on looks worth it) against
    listings that go on behind cursors, then fail, lie or end: the same checks as above."""

    @examples(60)
    @given(
        background=st.integers(0, 4),
        watched=st.integers(2, 5),
        script=long_listings,
    )
    def first_cycle(background: int, watched: int, script: list[Any]) -> None:
        model = machine()
        try:
            model.start(background=background, watched=watched)
            model.cycle(script, restarted=False)
        finally:
            model.teardown()

    first_cycle()
