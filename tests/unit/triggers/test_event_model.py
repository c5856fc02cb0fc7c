"""MessageBatchEventTrigger, model-based: a hypothesis state machine drives the trigger poll by
poll against the fake, whose list answers are generated adversarially, across restarts (a new
trigger instance on the same asset state store).

The workspace holds good batches, running ones, batches that report ends (or creations) in
the future, old ones, and entries that are not usable batches: an ``ended`` entry without
``ended_at``, one that ended before it was created, an id that is not a batch id, impossible
request counts, missing fields, wrong types, values that are not objects, entries out of order
and invalid copies of real batches. Each poll's answer is a generated run of pages: any page
size, ``has_more`` that lies, a cursor that is missing, fresh or repeated, a page served twice,
and on any page a 4xx/5xx, HTML, a truncated or reset body, a body that is not a list, a page
longer than asked, a malformed ``has_more`` or ``last_id``, or a body echoing the API key.

Invariants, after every step:
- ``run()`` never raises or returns, and reaches its next sleep in bounded time;
- within one life, a batch produces at most one event; a batch whose event came before the
  stored watermark was written never produces one again;
- every usable ended batch of the window on a page the poll reaches (the list is newest first:
  a poll ends at a page that ends before the window, at the last page, at a missing or
  repeated cursor or at ``max_pages``) produces an event in that poll, unless it did before
  (or, once only, ended before the horizon it restarted from); no entry beside it can prevent that;
- a poll with a failed page produces nothing; the stored horizon never passes the trigger's
  clock and never moves back.

Time is the model's: the trigger's clock moves only when a step says so, and each of its
sleeps waits for the next step (real time bounds every wait).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from event_helpers import DictSupervisorComms, attach_asset_state_store
from helpers import API_KEY
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers import events
from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
LOOKBACK = timedelta(days=30)
MAX_AGE = timedelta(hours=25)  # 24 h life + the default expiry_grace
MARGIN = timedelta(minutes=10)
#: Real seconds the trigger gets to reach its next sleep; after one hang, every later wait gets
#: only a second, so that shrinking a hanging example stays bounded too.
STEP_GUARD = 15.0
ASSET = "batches"


class GatedClock:
    """Stands in for ``time`` and ``asyncio.sleep`` in the events module: time moves only when
    the model says, and every sleep parks the trigger until the model releases it."""

    def __init__(self) -> None:
        self.now = T0.timestamp()
        self.guard = STEP_GUARD
        self._parked: asyncio.Event | None = None
        self._released: asyncio.Event | None = None

    def bind(self) -> None:
        """New events for a new loop (each example runs on its own)."""
        self._parked, self._released = asyncio.Event(), asyncio.Event()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert self._parked is not None
        assert self._released is not None
        assert seconds >= 0, f"negative sleep {seconds}"
        self._parked.set()
        await self._released.wait()
        self._released.clear()

    def new_life(self) -> None:
        """Forget the stopped life's sleep: the next park is the new life's."""
        assert self._parked is not None
        assert self._released is not None
        self._parked.clear()
        self._released.clear()

    async def release(self, task: asyncio.Task[None]) -> None:
        assert self._parked is not None
        assert self._released is not None
        self._parked.clear()
        self._released.set()
        await self.until_parked(task)

    async def until_parked(self, task: asyncio.Task[None]) -> None:
        assert self._parked is not None
        parked = asyncio.ensure_future(self._parked.wait())
        done, _ = await asyncio.wait(
            {parked, task}, timeout=self.guard, return_when=asyncio.FIRST_COMPLETED
        )
        parked.cancel()
        if task in done:
            task.result()  # run() raised: that error is the failure
            raise AssertionError("run() returned")
        if not done:
            self.guard = 1.0
            raise AssertionError(f"the trigger did not reach its next sleep within {STEP_GUARD}s")


class _Overlay:
    def __init__(self, module: object, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


# ---- the workspace ----------------------------------------------------------------------------

USABLE_KINDS = ("good", "running", "future_end", "future_created", "old")
INVALID_KINDS = (
    "no_end",
    "backwards",
    "bad_id",
    "negative_count",
    "huge_count",
    "missing_field",
    "wrong_type",
    "naive_time",
    "not_an_object",
)


@dataclass
class Entry:
    """One list entry: its JSON, where it sorts (newest first), and what the model knows."""

    json: Any
    key: float
    kind: str
    batch_id: str | None = None
    created: datetime | None = None
    ended: datetime | None = None

    @property
    def usable(self) -> bool:
        return self.kind in USABLE_KINDS

    @property
    def cursor(self) -> str | None:
        """The id a server would give as ``last_id`` (cursor checks are the pager's job)."""
        value = self.json.get("id") if isinstance(self.json, dict) else None
        return value if isinstance(value, str) and value.startswith("msgbatch_m") else None


offsets = st.sampled_from([0, 60, -300, 330, 14 * 60, -12 * 60])


def stamp(moment: datetime, offset_minutes: int) -> str:
    return moment.astimezone(timezone(timedelta(minutes=offset_minutes))).isoformat()


def batch_json(
    batch_id: str, created: str, ended: str | None, status: str, counts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "created_at": created,
        "expires_at": created,
        "ended_at": ended,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": None,
    }


def counts_for(ended: bool, extra: int | None = None) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "processing": 0 if ended else 2,
        "succeeded": 2 if ended else 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    if extra is not None:
        counts["queued"] = extra
    return counts


@st.composite
def entry_specs(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(USABLE_KINDS * 2 + ("good",) * 6 + INVALID_KINDS))
    return {
        "kind": kind,
        "age": draw(st.integers(0, 20 * 3600)),
        "end_age": draw(st.integers(0, 300)),
        "offset": draw(offsets),
        "variant": draw(st.integers(0, 7)),
        "stray": draw(st.booleans()),
        "position": draw(st.floats(0, 1)),
        "extra": draw(st.none() | st.integers(0, 5)),
        "shadow": draw(st.booleans()),
    }


# ---- a poll's answer --------------------------------------------------------------------------

ERRORS = (
    "500", "529", "401", "403", "404", "html", "truncated", "reset",
    "not_a_list", "too_long", "bad_has_more", "bad_last_id", "key_echo",
)  # fmt: skip


@dataclass
class PlannedPage:
    entries: list[Entry] = field(default_factory=list)
    has_more: bool = False
    last_id: str | None = None
    error: str | None = None


def describe(pages: list[PlannedPage]) -> str:
    return "; ".join(
        f"[{page.error or 'ok'} more={page.has_more} last={page.last_id} "
        f"{[(e.batch_id, e.kind) for e in page.entries]}]"
        for page in pages
    )


def as_fault(page: PlannedPage, page_size: int) -> Fault:
    if page.error in ("500", "529", "401", "403", "404"):
        return Fault(kind="status", status=int(page.error), method="GET")
    if page.error in ("html", "truncated", "reset"):
        return Fault(kind=page.error, method="GET")  # type: ignore[arg-type]
    body: Any = {
        "data": [entry.json for entry in page.entries],
        "has_more": page.has_more,
        "last_id": page.last_id,
    }
    if page.error == "not_a_list":
        body = {"data": {"batches": body["data"]}, "has_more": False}
    elif page.error == "too_long":
        body["data"] = body["data"] + [{"id": f"filler{i}"} for i in range(page_size + 1)]
    elif page.error == "bad_has_more":
        body["has_more"] = "yes"
    elif page.error == "bad_last_id":
        body["last_id"] = 5
    elif page.error == "key_echo":
        body["data"] = body["data"] + [{"id": "msgbatch_echo", "note": API_KEY}]
    return Fault(kind="body", body=body, method="GET")


# ---- the machine ------------------------------------------------------------------------------


def make_machine(
    fake: FakeBatchesServer, comms: DictSupervisorComms, clock: GatedClock, conn: str
) -> type[RuleBasedStateMachine]:
    class EventTriggerModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fake.reset()
            comms.values.clear()
            comms.writes = 0
            comms.on_write = self._on_write
            clock.now = T0.timestamp()
            self.runner = asyncio.Runner()
            self.runner.run(self._bind())
            self.workspace: list[Entry] = []
            self.serial = 0
            self.kwargs: dict[str, Any] = {}
            self.task: asyncio.Task[None] | None = None
            self.agen: Any = None
            # What every life emitted, in order; the ids emitted before the stored watermark
            # was written (those may never come again).
            self.emitted_ever: set[str] = set()
            self.sealed: set[str] = set()
            self.life_sealed: set[str] = set()
            self.life_emitted: list[str] = []
            self.startup_horizon = T0
            self.caught_up = False
            self.stored_horizon: datetime | None = None
            self.violations: list[str] = []

        async def _bind(self) -> None:
            clock.bind()

        # -- bookkeeping -------------------------------------------------------------------

        @property
        def now(self) -> datetime:
            return datetime.fromtimestamp(clock.now, timezone.utc)

        def _on_write(self) -> None:
            # Called inside the trigger's store write, which logs and swallows errors: a broken
            # rule is recorded here and fails the step.
            (value,) = comms.values.values()
            horizon = datetime.fromisoformat(value["horizon"])
            if horizon > self.now:
                self.violations.append(f"stored horizon {horizon} is past the clock {self.now}")
            if self.stored_horizon is not None and horizon < self.stored_horizon:
                self.violations.append(f"the stored horizon moved back to {horizon}")
            self.stored_horizon = horizon
            # Covered from now on: what the stored watermark covered when this life started,
            # and what this life reported (events lost to a restart before a write may repeat).
            self.sealed = self.life_sealed | set(self.life_emitted)

        def _new_id(self) -> str:
            self.serial += 1
            return f"msgbatch_m{self.serial:04d}"

        def _entry(self, spec: dict[str, Any]) -> Entry:
            now, kind, offset, variant = self.now, spec["kind"], spec["offset"], spec["variant"]
            created = now - timedelta(seconds=spec["age"])
            ended = now - timedelta(seconds=min(spec["end_age"], spec["age"]))
            random_key = (now - timedelta(days=60)).timestamp() + spec["position"] * 70 * 86400
            batch_id = self._new_id()
            if kind == "good":
                data = batch_json(
                    batch_id,
                    stamp(created, offset),
                    stamp(ended, offset),
                    "ended",
                    counts_for(True, spec["extra"]),
                )
                return Entry(data, created.timestamp(), kind, batch_id, created, ended)
            if kind == "running":
                status = ("in_progress", "canceling", "queued_for_later")[variant % 3]
                data = batch_json(batch_id, stamp(created, offset), None, status, counts_for(False))
                return Entry(data, created.timestamp(), kind, batch_id, created, None)
            if kind == "future_end":
                end_text = ("2098-01-01T00:00:00+00:00", "9999-12-31T23:59:59-01:00")[variant % 2]
                data = batch_json(
                    batch_id, stamp(created, offset), end_text, "ended", counts_for(True)
                )
                future = datetime.fromisoformat(end_text)
                return Entry(data, created.timestamp(), kind, batch_id, created, future)
            if kind == "future_created":
                born = now + timedelta(hours=1 + variant * 1000)
                done = born + timedelta(minutes=variant)
                data = batch_json(
                    batch_id, stamp(born, offset), stamp(done, offset), "ended", counts_for(True)
                )
                return Entry(data, born.timestamp(), kind, batch_id, born, done)
            if kind == "old":
                texts = (
                    ("0001-01-01T00:00:00+14:00", "0001-01-01T01:00:00+14:00"),
                    (stamp(now - timedelta(days=45), offset), None),
                    (stamp(now - timedelta(days=40), offset), stamp(now - timedelta(days=39), 0)),
                )[variant % 3]
                born = datetime.fromisoformat(texts[0])
                end = None if texts[1] is None else datetime.fromisoformat(texts[1])
                status = "in_progress" if end is None else "ended"
                data = batch_json(batch_id, texts[0], texts[1], status, counts_for(bool(end)))
                key = random_key if spec["stray"] else born.timestamp()
                return Entry(data, key, kind, batch_id, born, end)
            return self._invalid(spec, batch_id, created, ended, random_key)

        def _invalid(
            self,
            spec: dict[str, Any],
            batch_id: str,
            created: datetime,
            ended: datetime,
            key: float,
        ) -> Entry:
            kind, variant, offset = spec["kind"], spec["variant"], spec["offset"]
            # A shadow: an unusable copy of a batch the list also shows.
            shadows = [e for e in self.workspace if e.kind in ("good", "running")]
            if spec["shadow"] and shadows:
                original = shadows[variant % len(shadows)]
                batch_id = original.batch_id or batch_id
            good = batch_json(
                batch_id, stamp(created, offset), stamp(ended, offset), "ended", counts_for(True)
            )
            data: Any
            if kind == "no_end":
                data = {**good, "ended_at": None}
            elif kind == "backwards":
                data = {**good, "ended_at": stamp(created - timedelta(seconds=1 + variant), 0)}
            elif kind == "bad_id":
                bad = ("msgbatch_a/../b", "", " ", "msgbatch_\u0000", "m" * 1025, "a?b")[
                    variant % 6
                ]
                data = {**good, "id": bad}
            elif kind == "negative_count":
                data = {**good, "request_counts": {**good["request_counts"], "queued": -3}}
            elif kind == "huge_count":
                huge = 10**400
                counts = {**good["request_counts"], "errored": huge, "queued": -huge}
                data = {**good, "request_counts": counts}
            elif kind == "missing_field":
                gone = ("created_at", "request_counts", "id", "type", "processing_status")
                data = {k: v for k, v in good.items() if k != gone[variant % len(gone)]}
            elif kind == "wrong_type":
                changes = (
                    {"created_at": 1234567890},
                    {"ended_at": "yesterday"},
                    {"request_counts": "many"},
                    {"id": 7},
                    {"processing_status": None},
                    {"request_counts": {**good["request_counts"], "errored": -1}},
                )
                data = {**good, **changes[variant % len(changes)]}
            elif kind == "naive_time":
                data = {**good, "created_at": created.replace(tzinfo=None).isoformat()}
            else:
                data = (42, "msgbatch_x", None, [], {}, [good], True, 1.5)[variant]
            return Entry(data, key, kind)

        def _ordered(self) -> list[Entry]:
            return sorted(self.workspace, key=lambda e: e.key, reverse=True)

        @property
        def page_size(self) -> int:
            return int(self.kwargs["page_size"])

        def _plan(self, data: st.DataObject) -> list[PlannedPage]:
            ordered = self._ordered()
            pages: list[PlannedPage] = []
            at = 0
            for number in range(data.draw(st.integers(1, self.kwargs["max_pages"] + 1))):
                if pages and data.draw(st.integers(0, 9)) == 0:
                    pages.append(pages[-1])  # the same page again
                    continue
                full = data.draw(st.integers(0, 3))
                size = self.page_size if full else data.draw(st.integers(0, self.page_size))
                entries = ordered[at : at + size]
                at += size
                truthful = at < len(ordered)
                has_more = truthful if data.draw(st.integers(0, 4)) else not truthful
                last = entries[-1].cursor if entries else None
                cursor_kind = data.draw(st.integers(0, 9))
                if cursor_kind == 0:
                    last = None
                elif cursor_kind == 1:
                    last = f"msgbatch_cursor{number}"
                elif cursor_kind == 2 and pages and pages[-1].last_id:
                    last = pages[-1].last_id
                error = (
                    data.draw(st.sampled_from(ERRORS)) if not data.draw(st.integers(0, 7)) else None
                )
                pages.append(PlannedPage(entries, has_more, last, error))
            return pages

        def _expect(self, pages: list[PlannedPage]) -> tuple[list[Entry] | None, bool]:
            """The usable ended batches of the window on the pages this poll reaches (None if
            a page fails), and whether it reaches the window's start."""
            start = self.now - MAX_AGE
            if not self.caught_up:
                start = min(start, self.startup_horizon - MAX_AGE)
            served = [*pages, PlannedPage()]  # then the fake's own (empty) list
            found: list[Entry] = []
            cursors: set[str] = set()
            for number, page in enumerate(served, start=1):
                if number > self.kwargs["max_pages"]:
                    return found, False
                if page.error is not None:
                    return None, False
                usable = [e for e in page.entries if e.usable]
                found += [
                    e
                    for e in usable
                    if e.ended is not None and e.created is not None and e.created >= start
                ]
                passed = (
                    bool(usable) and usable[-1].created is not None and usable[-1].created < start
                )
                if passed or not page.has_more:
                    return found, True
                if page.last_id is None or page.last_id in cursors:
                    return found, False  # the pager ends a listing it cannot follow
                cursors.add(page.last_id)
            raise AssertionError("unreachable: the last page has no more")

        async def _poll(self, pages: list[PlannedPage], *, start_life: bool) -> list[str]:
            fake.clear_faults()
            for page in pages:
                fake.inject_fault(as_fault(page, self.page_size))
            if start_life:  # a new life polls at once
                clock.new_life()
                self._start()
            before = len(self.life_emitted)
            if start_life:
                assert self.task is not None
                await clock.until_parked(self.task)
            else:
                assert self.task is not None
                for _ in range(3):  # past the watermark's settle sleep, if the trigger is in it
                    lists = fake.request_count(method="GET")
                    await clock.release(self.task)
                    if fake.request_count(method="GET") > lists:
                        break
                else:
                    raise AssertionError("the trigger slept three times without polling")
            fake.clear_faults()
            return self.life_emitted[before:]

        def _check_poll(self, pages: list[PlannedPage], emitted: list[str]) -> None:
            found, complete = self._expect(pages)
            assert len(set(self.life_emitted)) == len(self.life_emitted), (
                f"a batch produced two events in one life: {self.life_emitted}"
            )
            resent = set(emitted) & self.life_sealed
            assert not resent, (
                f"events again after the watermark covering them was stored: {resent}"
            )
            if found is None:
                assert not emitted, f"a poll with a failed page produced events: {emitted}"
                return
            earlier_in_life = set(self.life_emitted) - set(emitted)
            must: set[str] = set()
            may: set[str] = set()
            for entry in found:
                assert entry.batch_id is not None
                assert entry.ended is not None
                if entry.batch_id in earlier_in_life:
                    continue
                if entry.batch_id in self.emitted_ever or entry.ended < self.startup_horizon:
                    may.add(entry.batch_id)  # at least once after a restart; the margin's gap
                else:
                    must.add(entry.batch_id)
            missing = must - set(emitted)
            context = f"at {self.now}, pages {describe(pages)}, events {emitted}"
            assert not missing, f"batches on the pages reached not reported: {missing}, {context}"
            extra = set(emitted) - must - may
            assert not extra, f"events for batches this poll could not report: {extra}, {context}"
            if complete:
                self.caught_up = True

        def _start(self) -> None:
            trigger = MessageBatchEventTrigger(**self.kwargs)
            attach_asset_state_store(trigger, ASSET)
            stored = comms.values.get((ASSET, trigger.watermark_key))
            horizon = None if stored is None else datetime.fromisoformat(stored["horizon"])
            self.startup_horizon = (
                self.now - LOOKBACK if horizon is None or horizon > self.now else horizon
            )
            self.life_sealed = set(self.sealed)
            self.life_emitted = []
            self.caught_up = False
            self.agen = trigger.run()
            self.task = asyncio.ensure_future(self._consume(self.agen))

        async def _consume(self, agen: Any) -> None:
            async for event in agen:
                self.life_emitted.append(event.payload["id"])

        async def _stop(self) -> None:
            if self.task is None:
                return
            task, self.task = self.task, None
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=clock.guard)
            assert done, "the trigger did not stop when cancelled"
            if not task.cancelled():
                task.result()
                raise AssertionError("run() ended instead of being cancelled")
            self.emitted_ever |= set(self.life_emitted)

        # -- rules -------------------------------------------------------------------------

        @initialize(page_size=st.integers(1, 5), max_pages=st.integers(1, 5))
        def configure(self, page_size: int, max_pages: int) -> None:
            self.kwargs = {
                "conn_id": conn,
                "page_size": page_size,
                "max_pages": max_pages,
                "lookback": LOOKBACK.total_seconds(),
                "poll_interval": 60.0,
            }

        @rule(specs=st.lists(entry_specs(), min_size=1, max_size=4))
        def add_entries(self, specs: list[dict[str, Any]]) -> None:
            for spec in specs:
                self.workspace.append(self._entry(spec))

        @precondition(lambda self: any(e.kind == "running" for e in self.workspace))
        @rule(pick=st.integers(0, 100), end_age=st.integers(0, 300))
        def a_running_batch_ends(self, pick: int, end_age: int) -> None:
            running = [e for e in self.workspace if e.kind == "running"]
            entry = running[pick % len(running)]
            assert entry.created is not None
            ended = max(entry.created, self.now - timedelta(seconds=end_age))
            entry.json = {
                **entry.json,
                "processing_status": "ended",
                "ended_at": ended.isoformat(),
                "request_counts": counts_for(True),
            }
            entry.kind, entry.ended = "good", ended

        @rule(seconds=st.sampled_from([1, 30, 599, 601, 3600, 6 * 3600, 26 * 3600]))
        def time_passes(self, seconds: int) -> None:
            clock.now += seconds

        @precondition(lambda self: self.task is not None)
        @rule(data=st.data())
        def poll(self, data: st.DataObject) -> None:
            pages = self._plan(data)
            emitted = self.runner.run(self._poll(pages, start_life=False))
            self._check_poll(pages, emitted)

        @rule(data=st.data())
        def restart(self, data: st.DataObject) -> None:
            self.runner.run(self._stop())
            pages = self._plan(data)
            emitted = self.runner.run(self._poll(pages, start_life=True))
            self._check_poll(pages, emitted)

        @invariant()
        def no_broken_rule(self) -> None:
            assert not self.violations, self.violations

        @invariant()
        def still_running(self) -> None:
            if self.task is not None and self.task.done():
                self.task.result()
                raise AssertionError("run() returned")

        def teardown(self) -> None:
            try:
                self.runner.run(self._stop())
            finally:
                self.runner.close()
                fake.clear_faults()

    return EventTriggerModel


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> DictSupervisorComms:
    from airflow.sdk.execution_time import comms as messages
    from airflow.sdk.execution_time import task_runner

    if not hasattr(messages, "SetAssetStateStoreByName"):
        pytest.skip("asset_state_store arrived in Airflow 3.3")
    shim = DictSupervisorComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", shim, raising=False)
    return shim


def test_the_event_trigger_against_adversarial_list_pages_across_restarts(
    fake: FakeBatchesServer,
    set_connection: Any,
    comms: DictSupervisorComms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Model-based: see the module docstring for what is generated and the invariants."""
    set_connection("batches_model", fake.base_url, max_retries=0, timeout=2)
    clock = GatedClock()
    monkeypatch.setattr(events, "time", _Overlay(time, time=clock.time, monotonic=clock.monotonic))
    monkeypatch.setattr(events, "asyncio", _Overlay(asyncio, sleep=clock.sleep))
    machine = make_machine(fake, comms, clock, "batches_model")
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=50,
            # No shrinking: against a live server it runs for minutes; a failing step's message
            # names the pages served, the events and the clock, and the steps are printed.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
