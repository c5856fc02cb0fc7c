"""Submitter: at most one batch per task instance and request set, against the fake API.

The record store is an in-memory dict and claims live in a dict too (in Airflow both are
Task SDK calls; tests/operator/test_operator_dag.py covers them for real).
"""

from __future__ import annotations

from typing import Any

import pytest
from operator_dag_runs import requests_for

from airflow_provider_batches import submission as sub
from airflow_provider_batches import task_record
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    BatchCreateOutcomeUnknownError,
    InvalidResponseError,
    OverloadedError,
    RateLimitError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.request_set import build_request_set
from airflow_provider_batches.submission import (
    AmbiguousBatchError,
    BatchSubmissionUnknownError,
    Submitter,
    is_ambiguous_create_failure,
)
from airflow_provider_batches.task_record import TaskIdentity
from airflow_provider_batches.testing import FakeBatchesServer, Fault

ME = TaskIdentity("dag", "run", "submit")
OTHER = TaskIdentity("dag", "run", "other")


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
def claims(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    monkeypatch.setattr(task_record, "_get_variable", stored.get)
    monkeypatch.setattr(
        task_record, "_set_variable", lambda key, value, description: stored.__setitem__(key, value)
    )
    return stored


@pytest.fixture
def hook(fake: FakeBatchesServer, fake_conn: str) -> MessageBatchHook:
    return MessageBatchHook(fake_conn)


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _lists(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.batch_id is None)


def test_first_try_creates_and_records_before_and_after(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    result = Submitter(hook, store, ME).submit(request_set)
    assert result.how == "created"
    intent, done = store.writes
    assert intent["batch_id"] is None
    assert intent["fingerprint"] == request_set.fingerprint
    assert done == {**intent, "batch_id": result.batch.id}
    assert task_record.read_claim(result.batch.id) == ME


def test_retry_re_attaches_without_a_create_or_a_list(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    first = Submitter(hook, store, ME).submit(request_set)
    again = Submitter(hook, store, ME).submit(build_request_set(requests_for(2)))
    assert again.how == "reattached"
    assert again.batch.id == first.batch.id
    assert _creates(fake) == 1
    assert _lists(fake) == 0


@pytest.mark.parametrize("crash_point", ["before_record", "after_record"])
def test_a_crash_right_after_create_never_creates_twice(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    claims: dict[str, Any],
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
        Submitter(hook, store, ME).submit(request_set)
    monkeypatch.setattr(Submitter, "record_created", original)
    fake.create_batch(num_requests=2)  # someone else's batch, other size: not a candidate

    again = Submitter(hook, store, ME).submit(request_set)

    assert _creates(fake) == 1
    assert again.how == ("adopted" if crash_point == "before_record" else "reattached")
    assert again.batch.total_requests == 3
    assert store.get()["batch_id"] == again.batch.id  # type: ignore[index]


def test_a_create_dropped_after_the_batch_was_made_adopts_it(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    store = MemoryStore()
    result = Submitter(hook, store, ME).submit(build_request_set(requests_for(2)))
    assert result.how == "adopted"
    assert fake.stats()["batches"] == 1
    assert _creates(fake) == 1
    assert store.get()["batch_id"] == result.batch.id  # type: ignore[index]
    assert task_record.read_claim(result.batch.id) == ME


def test_a_lost_create_that_made_nothing_fails_then_the_next_try_creates(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    fake.inject_fault(Fault("drop", method="POST"))
    store = MemoryStore()
    request_set = build_request_set(requests_for(2))
    with pytest.raises(BatchSubmissionUnknownError) as info:
        Submitter(hook, store, ME).submit(request_set)
    assert not isinstance(info.value, AmbiguousBatchError), "a retry may settle it"
    assert info.value.candidates == []
    assert fake.stats()["batches"] == 0

    result = Submitter(hook, store, ME).submit(request_set)
    assert result.how == "created"
    assert fake.stats()["batches"] == 1


def test_other_task_instances_batches_are_never_adopted(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    theirs = Submitter(hook, MemoryStore(), OTHER).submit(build_request_set(requests_for(2)))
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    mine = Submitter(hook, MemoryStore(), ME).submit(build_request_set(requests_for(2, "x")))
    assert mine.how == "adopted"
    assert mine.batch.id != theirs.batch.id


def test_two_unclaimed_candidates_fail_naming_both(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    stranger = fake.create_batch(num_requests=2)["id"]
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    with pytest.raises(AmbiguousBatchError) as info:
        Submitter(hook, MemoryStore(), ME).submit(build_request_set(requests_for(2)))
    (made,) = [b.id for b in hook.list_batches().data if b.id != stranger]
    assert sorted(info.value.candidates) == sorted([stranger, made])
    assert stranger in str(info.value)
    assert made in str(info.value)
    assert _creates(fake) == 1


def test_a_canceled_recorded_batch_is_replaced(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    store = MemoryStore()
    request_set = build_request_set(requests_for(1))
    first = Submitter(hook, store, ME).submit(request_set)
    hook.cancel_batch(first.batch.id)
    second = Submitter(hook, store, ME).submit(request_set)
    assert second.how == "created"
    assert second.batch.id != first.batch.id


def test_a_non_ambiguous_create_failure_is_raised_as_is(
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any]
) -> None:
    fake.inject_fault(Fault("status", status=400, method="POST"))
    with pytest.raises(BadRequestError):
        Submitter(hook, MemoryStore(), ME).submit(build_request_set(requests_for(1)))
    assert _lists(fake) == 0


def _error(cls: type, status: int | None = None) -> Any:
    return cls("x", method="POST", url="u", status_code=status)


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        # The transport turns every create failure that leaves the outcome open (5xx but 529,
        # timeout or drop after sending, unreadable 2xx) into BatchCreateOutcomeUnknownError
        # (tests/hardening/test_create_not_resent.py); exactly those are ambiguous.
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
    fake: FakeBatchesServer, hook: MessageBatchHook, claims: dict[str, Any], monkeypatch: Any
) -> None:
    for _ in range(7):
        fake.create_batch(num_requests=1)
    monkeypatch.setattr(sub, "LIST_PAGE_SIZE", 2)
    monkeypatch.setattr(sub, "MAX_LIST_PAGES", 3)
    with pytest.raises(AmbiguousBatchError, match="More than 6 batches"):
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

    from airflow_provider_batches.operators.batch import MessageBatchOperator
    from airflow_provider_batches.task_record import interrupted_wait

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
    with pytest.raises(task_record.UnreadableRecordError, match="Fernet"):
        task_record.VariableRecords(ME).get()
    monkeypatch.setattr(
        airflow.sdk.Variable, "get", classmethod(lambda cls, key, default=None: default)
    )
    assert task_record.VariableRecords(ME).get() is None
    assert task_record.read_claim("msgbatch_x") is None
