"""Submitter: at most one batch per task instance and request set, against the fake API.

The record store is an in-memory dict. Variables (claims, the intent registry) go through
``airflow.sdk.Variable`` backed by a dict that stores what Airflow would (JSON text); in
Airflow they are Task SDK calls, which tests/unit/operators/test_operator_dag.py covers for real.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import API_KEY
from operator_dag_runs import requests_for

from airflow_provider_batches.exceptions import (
    AmbiguousBatchError,
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    BatchCreateOutcomeUnknownError,
    BatchSubmissionUnknownError,
    InvalidResponseError,
    MessageBatchError,
    OverloadedError,
    RateLimitError,
    UnreadableRecordError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.operators import _intent_registry as intent_registry
from airflow_provider_batches.operators import _submission as sub
from airflow_provider_batches.operators import _task_record as task_record
from airflow_provider_batches.operators._intent_registry import (
    Intent,
    IntentRegistry,
    registry_scope,
)
from airflow_provider_batches.operators._submission import Submitter, is_ambiguous_create_failure
from airflow_provider_batches.operators._task_record import TaskIdentity
from airflow_provider_batches.request_set import build_request_set
from airflow_provider_batches.testing import FakeApiError, FakeBatchesServer, Fault

pytestmark = pytest.mark.matrix

ME = TaskIdentity("dag", "run", "submit")
OTHER = TaskIdentity("dag", "run", "other")
HOUR = 3600.0


class MemoryStore:
    description = "memory"

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None
        self.writes: list[dict[str, Any]] = []

    def get(self) -> dict[str, Any] | None:
        return None if self.record is None else dict(self.record)

    def set(self, record: dict[str, Any]) -> None:
        self.record = dict(record)
        self.writes.append(dict(record))


class SimulatedCrash(BaseException):
    """The worker dies here (a BaseException, so no handler in the code under test runs)."""


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Airflow Variables in a dict, as the JSON text ``Variable.set(serialize_json=True)``
    stores."""
    import airflow.sdk

    stored: dict[str, str] = {}

    def get(cls: Any, key: str, default: Any = None) -> Any:
        return stored.get(key, default)

    def set_(
        cls: Any, key: str, value: Any, description: str | None = None, serialize_json: bool = False
    ) -> None:
        stored[key] = json.dumps(value) if serialize_json else str(value)

    monkeypatch.setattr(airflow.sdk.Variable, "get", classmethod(get))
    monkeypatch.setattr(airflow.sdk.Variable, "set", classmethod(set_))
    return stored


class TimeMachine:
    """One clock for the fake API and the workers, which tests move forward (a retry an hour
    later is an hour later for the API too)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def now(self) -> float:
        return time.time() + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += seconds


CLOCK = TimeMachine()


@pytest.fixture(autouse=True)
def _clock_at_now() -> None:
    CLOCK.shift = 0.0


@pytest.fixture
def fake() -> Iterator[FakeBatchesServer]:
    """The fake API on :data:`CLOCK`."""
    with FakeBatchesServer(api_key=API_KEY, clock=CLOCK.now) as server:
        yield server


@pytest.fixture
def hook(fake: FakeBatchesServer, fake_conn: str) -> MessageBatchHook:
    return MessageBatchHook(fake_conn)


def submitter(
    hook: MessageBatchHook, store: MemoryStore, who: TaskIdentity = ME, *, skew: float = 0.0
) -> Submitter:
    """A try of ``who`` on a worker whose clock is ``skew`` seconds off the API's."""
    return Submitter(hook, store, who, clock=lambda: CLOCK.now() + skew, sleep=lambda seconds: None)


def open_intents(hook: MessageBatchHook, count: int) -> list[Intent]:
    return IntentRegistry(registry_scope(hook.settings.base_url), count).entries()


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _lists(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.batch_id is None)


def test_first_try_creates_and_records_before_and_after(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    result = submitter(hook, store).submit(request_set)
    assert result.how == "created"
    intent, done = store.writes
    assert intent["batch_id"] is None
    assert intent["fingerprint"] == request_set.fingerprint
    assert done == {**intent, "batch_id": result.batch.id}
    assert task_record.read_claim(result.batch.id) == ME
    assert open_intents(hook, 2) == [], "the intent is withdrawn once the batch is recorded"


def test_retry_re_attaches_without_a_create_or_a_list(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    first = submitter(hook, store).submit(request_set)
    again = submitter(hook, store).submit(build_request_set(requests_for(2)))
    assert again.how == "reattached"
    assert again.batch.id == first.batch.id
    assert _creates(fake) == 1
    assert _lists(fake) == 0


@pytest.mark.parametrize("crash_point", ["before_record", "after_record"])
def test_a_crash_right_after_create_never_creates_twice(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    variables: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    crash_point: str,
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(3))
    original = Submitter.record_created

    def crash(self: Submitter, *args: Any) -> None:
        if crash_point == "after_record":
            original(self, *args)
        raise SimulatedCrash

    monkeypatch.setattr(Submitter, "record_created", crash)
    with pytest.raises(SimulatedCrash):
        submitter(hook, store).submit(request_set)
    monkeypatch.setattr(Submitter, "record_created", original)
    fake.create_batch(num_requests=2)  # someone else's batch, other size: not a candidate

    again = submitter(hook, store).submit(request_set)

    assert _creates(fake) == 1
    assert again.how == ("adopted" if crash_point == "before_record" else "reattached")
    assert again.batch.total_requests == 3
    assert store.get()["batch_id"] == again.batch.id  # type: ignore[index]


def test_a_create_dropped_after_the_batch_was_made_adopts_it(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    store = MemoryStore()
    result = submitter(hook, store).submit(build_request_set(requests_for(2)))
    assert result.how == "adopted"
    assert fake.stats()["batches"] == 1
    assert _creates(fake) == 1
    assert store.get()["batch_id"] == result.batch.id  # type: ignore[index]
    assert task_record.read_claim(result.batch.id) == ME


def test_a_lost_create_that_made_nothing_fails_then_a_later_try_creates(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    """Right after the lost answer the server may still make the batch: a try then looks but
    never creates; once that margin has passed and the list still shows nothing, it creates."""
    fake.inject_fault(Fault("drop", method="POST"))
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    with pytest.raises(BatchSubmissionUnknownError) as info:
        submitter(hook, store).submit(request_set)
    assert not isinstance(info.value, AmbiguousBatchError), "a retry may settle it"
    assert info.value.candidates == []
    assert fake.stats()["batches"] == 0
    assert [i.task_instance for i in open_intents(hook, 2)] == [ME], "in doubt: stays open"

    CLOCK.advance(5.0)
    with pytest.raises(BatchSubmissionUnknownError):
        submitter(hook, store).submit(request_set)
    assert _creates(fake) == 1

    CLOCK.advance(HOUR)
    result = submitter(hook, store).submit(request_set)
    assert result.how == "created"
    assert fake.stats()["batches"] == 1
    assert open_intents(hook, 2) == []


def test_a_create_that_certainly_made_nothing_lets_the_next_try_create_at_once(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    fake.inject_fault(Fault("status", status=400, method="POST"))
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    with pytest.raises(BadRequestError):
        submitter(hook, store).submit(request_set)
    assert store.get()["created_nothing"] is True  # type: ignore[index]
    assert open_intents(hook, 2) == []

    result = submitter(hook, store).submit(request_set)
    assert result.how == "created"
    assert _lists(fake) == 0, "nothing to look for"


def test_other_task_instances_batches_are_never_adopted(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    theirs = submitter(hook, MemoryStore(), OTHER).submit(build_request_set(requests_for(2)))
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    mine = submitter(hook, MemoryStore()).submit(build_request_set(requests_for(2, "x")))
    assert mine.how == "adopted"
    assert mine.batch.id != theirs.batch.id


def test_two_unclaimed_candidates_fail_naming_both(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    stranger = fake.create_batch(num_requests=2)["id"]
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    with pytest.raises(AmbiguousBatchError) as info:
        submitter(hook, MemoryStore()).submit(build_request_set(requests_for(2)))
    (made,) = [b.id for b in hook.list_batches().data if b.id != stranger]
    assert sorted(info.value.candidates) == sorted([stranger, made])
    assert stranger in str(info.value)
    assert made in str(info.value)
    assert _creates(fake) == 1


def test_a_canceled_recorded_batch_is_replaced(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(1))
    first = submitter(hook, store).submit(request_set)
    hook.cancel_batch(first.batch.id)
    second = submitter(hook, store).submit(request_set)
    assert second.how == "created"
    assert second.batch.id != first.batch.id


def _die_when_the_create_returns(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make the worker die the moment its next create returns or fails; returns the undo."""
    real = MessageBatchHook.create_batch

    def create_then_die(self: MessageBatchHook, requests: Any) -> Any:
        try:
            real(self, requests)
        finally:
            raise SimulatedCrash

    monkeypatch.setattr(MessageBatchHook, "create_batch", create_then_die)
    return lambda: monkeypatch.setattr(MessageBatchHook, "create_batch", real)


def test_a_lost_create_never_adopts_the_batch_another_map_index_made(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    variables: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Index 0's create takes effect, its answer is lost and its worker dies at once (before
    listing, before anything but its intent is known); index 1's create fails having made
    nothing. Index 1 finds index 0's batch, the only
    unclaimed one of its size: while index 0's create may still be answered it waits
    (retryable), afterwards it fails naming the batch and index 0, and never adopts it."""
    index0 = TaskIdentity("dag", "run", "submit", 0)
    index1 = TaskIdentity("dag", "run", "submit", 1)
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    undo = _die_when_the_create_returns(monkeypatch)
    with pytest.raises(SimulatedCrash):
        submitter(hook, MemoryStore(), index0).submit(build_request_set(requests_for(3, "a")))
    undo()
    (theirs,) = [b.id for b in hook.list_batches().data]

    fake.inject_fault(Fault("status", status=500, method="POST"))
    store1 = MemoryStore()
    requests1 = build_request_set(requests_for(3, "b"))
    with pytest.raises(BatchSubmissionUnknownError) as soon:
        submitter(hook, store1, index1).submit(requests1)
    assert not isinstance(soon.value, AmbiguousBatchError), "index 0 may still be answered"
    assert soon.value.candidates == [theirs]
    assert str(index0) in str(soon.value)

    CLOCK.advance(HOUR)
    with pytest.raises(AmbiguousBatchError) as later:
        submitter(hook, store1, index1).submit(requests1)
    assert later.value.candidates == [theirs]
    assert theirs in str(later.value)
    assert str(index0) in str(later.value)
    assert store1.get()["batch_id"] is None  # type: ignore[index]
    assert task_record.read_claim(theirs) is None
    assert fake.stats()["batches"] == 1


def test_an_overlapping_try_never_creates_while_the_first_create_is_under_way(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    """A second try of the same task instance starts while the first one's create is still
    in flight (a lost heartbeat): it finds the intent, nothing listed yet, and must not
    create; the first try's batch is the only one."""
    fake.inject_fault(Fault("delay", delay=2.0, method="POST"))
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    outcome: dict[str, Any] = {}

    def first_try() -> None:
        try:
            outcome["first"] = submitter(hook, store).submit(request_set)
        except BaseException as error:  # reported by the assertions below
            outcome["first"] = error

    thread = threading.Thread(target=first_try)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _creates(fake) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _creates(fake) == 1, "the first try never sent its create"
        with pytest.raises(BatchSubmissionUnknownError) as info:
            submitter(hook, store).submit(request_set)
        assert not isinstance(info.value, AmbiguousBatchError)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    first = outcome["first"]
    assert not isinstance(first, BaseException), first
    assert first.how == "created"
    assert _creates(fake) == 1
    assert fake.stats()["batches"] == 1
    assert store.get()["batch_id"] == first.batch.id  # type: ignore[index]


def test_a_worker_clock_ten_minutes_off_still_finds_its_lost_batch(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    """The window of creation times is moved onto the API's clock by the offset the list's
    ``Date`` header shows: a worker clock off by more than the two minutes of slack still
    finds the batch its lost create made, instead of creating a second one."""
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    result = submitter(hook, store, skew=-600.0).submit(request_set)
    assert result.how == "adopted"
    assert fake.stats()["batches"] == 1
    assert _creates(fake) == 1


@pytest.mark.parametrize("date", ["", "not a date", "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_a_missing_or_unbelievable_date_header_leaves_the_clock_as_is(date: str) -> None:
    import httpx

    from airflow_provider_batches.hooks.batch import response_date

    body = b'{"data": [], "has_more": false, "first_id": null, "last_id": null}'
    headers = {"content-type": "application/json", **({"date": date} if date else {})}
    response = httpx.Response(200, headers=headers, content=body)
    now = time.time()
    assert sub.clock_offset(response_date(response), now) == 0.0
    assert sub.clock_offset(now - 700.0, now) == pytest.approx(-700.0)


def test_an_intent_erased_by_a_stale_write_is_written_again(variables: dict[str, str]) -> None:
    """Variables have no compare-and-swap: another writer that read the registry shard before
    our write and writes after it erases our entry. The read-back after the pause sees that
    and writes ours again, keeping theirs."""
    registry = IntentRegistry("scope", 2)
    neighbour = next(
        who
        for who in (TaskIdentity("dag", "run", "other", index) for index in range(1000))
        if registry.shard_key(who) == registry.shard_key(ME)
    )
    mine = Intent.new(ME, "f1", time.time(), time.time() + 60)
    theirs = Intent.new(neighbour, "f2", time.time(), time.time() + 60)
    shard = registry.shard_key(ME)
    pauses: list[float] = []

    def their_stale_write_lands(seconds: float) -> None:
        if not pauses:  # they read the shard before our write: it held nothing then
            variables[shard] = json.dumps({"intents": [theirs.to_dict()]})
        pauses.append(seconds)

    IntentRegistry("scope", 2, sleep=their_stale_write_lands).open(mine)

    assert sorted(i.token for i in registry.entries()) == sorted([mine.token, theirs.token])
    assert len(pauses) > 1, "our entry was written again"


def test_a_stale_intent_whose_batch_is_claimed_does_not_block_adoption(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    """A task instance that died between claiming its batch and withdrawing its intent leaves
    an open intent; its claimed batch shows its create is accounted for."""
    theirs = submitter(hook, MemoryStore(), OTHER).submit(build_request_set(requests_for(2)))
    registry = IntentRegistry(registry_scope(hook.settings.base_url), 2)
    now = time.time()
    registry.open(Intent.new(OTHER, "f", now - 5, now - 1))
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    mine = submitter(hook, MemoryStore()).submit(build_request_set(requests_for(2, "x")))
    assert mine.how == "adopted"
    assert mine.batch.id != theirs.batch.id


def test_expired_intents_are_forgotten(variables: dict[str, str]) -> None:
    now = time.time()
    registry = IntentRegistry("scope", 2, sleep=lambda seconds: None)
    expired = Intent.new(OTHER, "f", now - intent_registry.INTENT_TTL - 1, now)
    variables[registry.shard_key(OTHER)] = json.dumps({"intents": [expired.to_dict()]})
    assert registry.entries() == []
    registry.open(Intent.new(ME, "f", now, now + 60))
    assert [i.task_instance for i in registry.others(OTHER)] == [ME]
    registry.close(ME)
    assert registry.entries() == []


def test_an_unreadable_registry_is_an_error_not_an_empty_one(variables: dict[str, str]) -> None:
    registry = IntentRegistry("scope", 2)
    variables[registry.shard_key(ME)] = json.dumps({"intents": [{"task_instance": 1}]})
    with pytest.raises(UnreadableRecordError, match="intents"):
        registry.entries()


def test_a_non_ambiguous_create_failure_is_raised_as_is(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    fake.inject_fault(Fault("status", status=400, method="POST"))
    with pytest.raises(BadRequestError):
        submitter(hook, MemoryStore()).submit(build_request_set(requests_for(1)))
    assert _lists(fake) == 0


def _error(cls: type, status: int | None = None) -> Any:
    return cls("x", method="POST", url="u", status_code=status)


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        # The transport turns every create failure that leaves the outcome open (5xx but 529,
        # timeout or drop after sending, unreadable 2xx) into BatchCreateOutcomeUnknownError
        # (tests/unit/hooks/test_create_not_resent.py); exactly those are ambiguous.
        (_error(BatchCreateOutcomeUnknownError, 504), True),
        (_error(BatchCreateOutcomeUnknownError, None), True),
        (_error(APIConnectionError), False),
        (_error(APITimeoutError), False),
        (_error(InvalidResponseError, 400), False),
        (_error(OverloadedError, 529), False),
        (_error(RateLimitError, 429), False),
        (_error(BadRequestError, 400), False),
        (ValueError("x"), False),
    ],
)
def test_which_create_failures_are_ambiguous(error: BaseException, ambiguous: bool) -> None:
    assert is_ambiguous_create_failure(error) is ambiguous


def test_listing_stops_at_the_window(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str], monkeypatch: Any
) -> None:
    for _ in range(7):
        fake.create_batch(num_requests=1)
    monkeypatch.setattr(sub, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(sub, "MAX_LIST_PAGES", 3)
    with pytest.raises(AmbiguousBatchError, match="more than 6 batches"):
        sub.find_candidates(hook, 5, since=0.0, until=1e12, identity=ME)
    assert _lists(fake) == 3


@pytest.mark.parametrize(
    ("deadline_passed", "cancel_on_kill", "cancel_on_timeout", "cancels"),
    [
        (False, True, False, True),  # a user cleared the deferred task
        (False, False, True, False),
        (True, False, True, True),  # the deferral timed out: cancel_on_timeout rules
        (True, True, False, False),
    ],
)
def test_a_new_try_after_an_interrupted_deferral_finishes_the_kill(
    fake: FakeBatchesServer,
    fake_conn: str,
    deadline_passed: bool,
    cancel_on_kill: bool,
    cancel_on_timeout: bool,
    cancels: bool,
) -> None:
    import time

    from airflow_provider_batches.operators._task_record import interrupted_wait
    from airflow_provider_batches.operators.batch import MessageBatchOperator

    batch = fake.create_batch(num_requests=1, ends_after=None)
    deadline = time.time() + (-5 if deadline_passed else 3600)
    record = {"batch_id": batch["id"], "deferred_try": 1, "deadline": deadline}
    assert interrupted_wait(record, 2)
    assert not interrupted_wait(record, 1)
    assert not interrupted_wait({**record, "deferred_try": None}, 2)
    operator = MessageBatchOperator(
        task_id="t",
        requests=[],
        conn_id=fake_conn,
        cancel_on_kill=cancel_on_kill,
        cancel_on_timeout=cancel_on_timeout,
    )
    operator._stop_interrupted_wait(record)
    assert fake.request_count(batch["id"], "POST") == (1 if cancels else 0)


def test_an_unreadable_record_variable_is_an_error_not_a_missing_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow.sdk

    monkeypatch.setattr(
        airflow.sdk.Variable, "get", classmethod(lambda cls, key, default=None: "gAAAAAB-cipher")
    )
    with pytest.raises(UnreadableRecordError, match="Fernet"):
        task_record.VariableRecords(ME).get()
    monkeypatch.setattr(
        airflow.sdk.Variable, "get", classmethod(lambda cls, key, default=None: default)
    )
    assert task_record.VariableRecords(ME).get() is None
    assert task_record.read_claim("msgbatch_x") is None


@pytest.mark.parametrize(
    ("page_answer", "problem"),
    [
        (lambda query, page: {**page, "data": [*page["data"], {"id": "no batch"}]}, "not valid"),
        (
            lambda query, page: {**page, "has_more": True, "last_id": "msgbatch_repeated"},
            "sent before",
        ),
        (lambda query, page: {**page, "has_more": True, "last_id": None}, "no cursor"),
        (
            lambda query, page: {**page, "has_more": True, "last_id": "msgbatch_x/y"},
            "not a batch id",
        ),
    ],
    ids=["invalid entry", "repeated cursor", "no cursor", "invalid cursor"],
)
def test_a_listing_that_may_have_missed_a_batch_is_ambiguous(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    variables: dict[str, str],
    page_answer: Callable[[dict[str, str], dict[str, Any]], dict[str, Any]],
    problem: str,
) -> None:
    """The lost create may be the entry the listing could not read or the page it could not
    reach: a batch is never adopted, nor a new one created, on such a listing."""
    fake.create_batch(num_requests=3)
    fake.set_list_hook(page_answer)
    with pytest.raises(AmbiguousBatchError, match=problem) as raised:
        sub.find_candidates(hook, 3, since=0.0, until=1e12, identity=ME)
    assert "resubmit=True" in str(raised.value)
    assert fake.request_count(method="POST") == 0


def test_a_failed_list_page_is_raised_not_read_as_no_batch(
    fake: FakeBatchesServer, hook: MessageBatchHook, variables: dict[str, str]
) -> None:
    fake.create_batch(num_requests=3)

    def second_page_fails(query: dict[str, str], page: dict[str, Any]) -> object:
        if "after_id" in query:
            raise FakeApiError(404, "cursor batch deleted", "not_found_error")
        return {**page, "has_more": True}

    fake.set_list_hook(second_page_fails)
    with pytest.raises(MessageBatchError):
        sub.find_candidates(hook, 3, since=0.0, until=1e12, identity=ME)
