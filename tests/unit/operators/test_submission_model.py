"""Submission, model-based: concurrent tries of several map indexes, creates whose answers are
lost after they took effect, workers that die, time passing, in the orders hypothesis finds.

Three map indexes of one task submit request sets of the same size (the case where a batch
list cannot tell their batches apart). Each try runs the real ``Submitter`` in a thread,
against the fake API over HTTP and Airflow Variables in the metadata database through the
Task SDK (the in-process execution API ``dag.test()`` uses). A try stops just before it sends
its create and just after the answer; the state machine then sends it with a chosen fault,
lets it go on, or kills the worker there. Several tries of one task instance may be under way
at once (a lost heartbeat). The API and the workers share a clock that rules move forward;
the workers' clock may be off the API's by minutes.

Invariants: no task instance ever gets (returned or recorded) a batch made from another's
requests; no task instance makes two batches.

What a worker cannot do is kept out: send a create later than ``create_span`` after it
published its intent (a worker frozen that long; see docs/operator.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from helpers import API_KEY
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from operator_dag_runs import requests_for

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.operators import _intent_registry as intent_registry
from airflow_provider_batches.operators._submission import Submission, Submitter, create_span
from airflow_provider_batches.operators._task_record import TaskIdentity, read_claim
from airflow_provider_batches.request_set import build_request_set
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = [pytest.mark.matrix, pytest.mark.airflow_db]

TASK_INSTANCES = [TaskIdentity("dag", "run", "submit", index) for index in range(3)]
REQUESTS = 3
#: Longest a thread of the model may take to reach its next stop, however broken the code.
STEP_TIMEOUT = 30.0
SEND_OUTCOMES = {
    "answered": None,
    "dropped after the batch was made": Fault("drop", method="POST", after_effect=True),
    "500 after the batch was made": Fault("status", status=500, method="POST", after_effect=True),
    "500, nothing made": Fault("status", status=500, method="POST"),
    "dropped, nothing made": Fault("drop", method="POST"),
    "400": Fault("status", status=400, method="POST"),
}


class SimulatedCrash(BaseException):
    """The worker dies here (a BaseException: no handler in the code under test runs)."""


class SharedClock:
    """The API's clock; the workers read it plus a skew."""

    def __init__(self) -> None:
        self.shift = 0.0

    def now(self) -> float:
        import time

        return time.time() + self.shift


CLOCK = SharedClock()
CURRENT_TRY = threading.local()


class MemoryStore:
    """One task instance's ``task_state_store`` record."""

    description = "memory"

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    def get(self) -> dict[str, Any] | None:
        return None if self.record is None else dict(self.record)

    def set(self, record: dict[str, Any]) -> None:
        self.record = dict(record)


class Try:
    """One try of a task instance, on its own thread, stopping at the create."""

    def __init__(self, number: int, identity: TaskIdentity) -> None:
        self.number = number
        self.identity = identity
        self.cond = threading.Condition()
        self.stop: str | None = None  # "before send", "answered", or None while it runs
        self.command: str | None = None
        self.done = False
        self.outcome: Submission | BaseException | None = None
        self.stopped_at = 0.0
        self.thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"try{self.number}[{self.identity.map_index}]"

    # ---- on the try's thread -----------------------------------------------------------------

    def wait_for_command(self, stop: str) -> None:
        with self.cond:
            self.stop = stop
            self.stopped_at = CLOCK.now()
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: self.command is not None, timeout=STEP_TIMEOUT * 4):
                raise SimulatedCrash  # the test is over: nobody will release it
            command, self.command = self.command, None
            self.stop = None
        if command == "die":
            raise SimulatedCrash

    def finish(self, outcome: Submission | BaseException) -> None:
        with self.cond:
            self.outcome = outcome
            self.done = True
            self.cond.notify_all()

    # ---- on the state machine's thread ---------------------------------------------------

    def settle(self) -> None:
        """Wait until the try stopped or finished; fail the test if it never does."""
        with self.cond:
            settled = self.cond.wait_for(
                lambda: self.done or self.stop is not None, timeout=STEP_TIMEOUT
            )
        assert settled, f"{self} neither stopped nor finished within {STEP_TIMEOUT}s"

    def order(self, command: str) -> None:
        with self.cond:
            assert self.stop is not None
            assert not self.done
            self.command = command
            self.stop = None
            self.cond.notify_all()
        self.settle()


class StoppingHook(MessageBatchHook):
    """The real hook, with the create stopping before it is sent and after its answer."""

    def create_batch(self, requests: Any) -> MessageBatch:
        current: Try = CURRENT_TRY.value
        current.wait_for_command("before send")
        try:
            batch = super().create_batch(requests)
        except Exception as error:
            current.wait_for_command("answered")
            raise error
        current.wait_for_command("answered")
        return batch


def _batch_ids(fake: FakeBatchesServer) -> set[str]:
    response = httpx.get(
        f"{fake.base_url}/v1/messages/batches",
        params={"limit": 1000},
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    response.raise_for_status()
    return {entry["id"] for entry in response.json()["data"]}


def _clear_provider_variables() -> None:
    from airflow.models.variable import Variable as VariableRow
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(VariableRow).filter(VariableRow.key.like("anthropic_batches.%")).delete(
            synchronize_session=False
        )


def submission_machine(fake: FakeBatchesServer, conn_id: str) -> type[RuleBasedStateMachine]:
    class SubmissionMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            fake.reset()
            fake.clear_faults()
            _clear_provider_variables()
            CLOCK.shift = 0.0
            self.skew = 0.0
            self.stores = {identity: MemoryStore() for identity in TASK_INSTANCES}
            self.owner: dict[str, TaskIdentity | None] = {}
            self.tries: list[Try] = []
            self.hook = StoppingHook(conn_id)
            self.span = create_span(MessageBatchHook(conn_id).settings)

        @initialize(
            skew=st.sampled_from([0.0, -600.0, 400.0]),
            outsiders=st.integers(min_value=0, max_value=2),
        )
        def setup(self, skew: float, outsiders: int) -> None:
            """Workers whose clock is off the API's; batches of the same size made outside
            Airflow long before (never candidates)."""
            self.skew = skew
            for _ in range(outsiders):
                self.owner[fake.create_batch(num_requests=REQUESTS)["id"]] = None
            if outsiders:
                CLOCK.shift += 3 * 3600

        def _start(self, identity: TaskIdentity) -> Try:
            attempt = Try(len(self.tries) + 1, identity)
            request_set = build_request_set(requests_for(REQUESTS, f"ti{identity.map_index}"))
            submitter = Submitter(
                self.hook,
                self.stores[identity],
                identity,
                clock=lambda: CLOCK.now() + self.skew,
                sleep=lambda seconds: None,
            )

            def run() -> None:
                CURRENT_TRY.value = attempt
                try:
                    attempt.finish(submitter.submit(request_set))
                except BaseException as error:
                    attempt.finish(error)

            attempt.thread = threading.Thread(target=run, name=repr(attempt), daemon=True)
            self.tries.append(attempt)
            attempt.thread.start()
            attempt.settle()
            return attempt

        def _note(self, attempt: Try) -> None:
            outcome = attempt.outcome
            if attempt.done:
                label = outcome.how if isinstance(outcome, Submission) else type(outcome).__name__
                event(f"try ends: {label}")

        def _stopped_at(self, stop: str) -> list[Try]:
            return [t for t in self.tries if t.stop == stop and not t.done]

        @precondition(lambda self: sum(not t.done for t in self.tries) < 4)
        @rule(index=st.integers(min_value=0, max_value=len(TASK_INSTANCES) - 1))
        def start_try(self, index: int) -> None:
            self._note(self._start(TASK_INSTANCES[index]))

        @precondition(lambda self: sum(not t.done for t in self.tries) < 4)
        @rule(
            index=st.integers(min_value=0, max_value=len(TASK_INSTANCES) - 1),
            outcome=st.sampled_from(sorted(SEND_OUTCOMES)),
        )
        def whole_try(self, index: int, outcome: str) -> None:
            """A try from start to end, its create (if it sends one) answered as ``outcome``."""
            attempt = self._start(TASK_INSTANCES[index])
            if attempt.stop == "before send":
                self._send(attempt, outcome)
            if attempt.stop == "answered":
                attempt.order("go")
            self._note(attempt)

        @precondition(
            lambda self: self._stopped_at("before send") and sum(not t.done for t in self.tries) < 4
        )
        @rule(
            pick=st.integers(min_value=0, max_value=7),
            outcomes=st.tuples(
                st.sampled_from(sorted(SEND_OUTCOMES)), st.sampled_from(sorted(SEND_OUTCOMES))
            ),
            new_one_first=st.booleans(),
        )
        def overlapping_try(
            self, pick: int, outcomes: tuple[str, str], new_one_first: bool
        ) -> None:
            """Another try of a task instance whose try is about to send its create (Airflow
            lost the first one's heartbeat), then both creates, in either order."""
            waiting = self._stopped_at("before send")
            old = waiting[pick % len(waiting)]
            new = self._start(old.identity)
            pair = (new, old) if new_one_first else (old, new)
            for attempt, outcome in zip(pair, outcomes, strict=True):
                if attempt.stop == "before send":
                    self._send(attempt, outcome)
            self._note(new)

        @precondition(lambda self: self._stopped_at("before send"))
        @rule(
            pick=st.integers(min_value=0, max_value=7),
            outcome=st.sampled_from(sorted(SEND_OUTCOMES)),
        )
        def send(self, pick: int, outcome: str) -> None:
            waiting = self._stopped_at("before send")
            self._send(waiting[pick % len(waiting)], outcome)

        def _send(self, attempt: Try, outcome: str) -> None:
            before = _batch_ids(fake)
            fault = SEND_OUTCOMES[outcome]
            if fault is not None:
                fake.inject_fault(fault)
            attempt.order("go")
            fake.clear_faults()
            made = _batch_ids(fake) - before
            assert len(made) <= 1
            for batch_id in made:
                self.owner[batch_id] = attempt.identity
            event(f"create {outcome}")
            self._note(attempt)

        @precondition(lambda self: self._stopped_at("answered"))
        @rule(pick=st.integers(min_value=0, max_value=7))
        def go_on(self, pick: int) -> None:
            answered = self._stopped_at("answered")
            attempt = answered[pick % len(answered)]
            attempt.order("go")
            self._note(attempt)

        @precondition(lambda self: any(t.stop is not None and not t.done for t in self.tries))
        @rule(pick=st.integers(min_value=0, max_value=7))
        def worker_dies(self, pick: int) -> None:
            stopped = [t for t in self.tries if t.stop is not None and not t.done]
            attempt = stopped[pick % len(stopped)]
            event(f"worker dies at {attempt.stop}")
            attempt.order("die")

        @rule(seconds=st.sampled_from([1.0, 30.0, 90.0, 400.0, 3600.0]))
        def time_passes(self, seconds: float) -> None:
            waiting = [t.stopped_at for t in self._stopped_at("before send")]
            # A worker stopped before sending may not be frozen past its create span: then
            # less time passes.
            if waiting:
                seconds = min(seconds, max(0.0, min(waiting) + self.span - 90 - CLOCK.now()))
            CLOCK.shift += seconds

        @invariant()
        def no_task_instance_gets_another_ones_batch(self) -> None:
            for attempt in self.tries:
                if isinstance(attempt.outcome, Submission):
                    batch_id = attempt.outcome.batch.id
                    assert self.owner.get(batch_id) == attempt.identity, (
                        f"{attempt} got batch {batch_id} made by {self.owner.get(batch_id)}"
                    )
            for identity, store in self.stores.items():
                recorded = (store.record or {}).get("batch_id")
                if recorded is not None:
                    assert self.owner.get(recorded) == identity, (
                        f"{identity} recorded batch {recorded} made by {self.owner.get(recorded)}"
                    )

        @invariant()
        def no_task_instance_makes_two_batches(self) -> None:
            made = [owner for owner in self.owner.values() if owner is not None]
            for identity in TASK_INSTANCES:
                assert made.count(identity) <= 1, f"{identity} made {made.count(identity)}"

        def teardown(self) -> None:
            for attempt in self.tries:
                if attempt.stop is not None and not attempt.done:
                    attempt.order("die")
            for attempt in self.tries:
                assert attempt.thread is not None
                attempt.thread.join(timeout=STEP_TIMEOUT)
                assert not attempt.thread.is_alive(), f"{attempt} never ended"
            claims = {
                batch_id: read_claim(batch_id) for batch_id, owner in self.owner.items() if owner
            }
            for batch_id, claimed_by in claims.items():
                assert claimed_by in (None, self.owner[batch_id]), (
                    f"batch {batch_id} of {self.owner[batch_id]} is claimed by {claimed_by}"
                )

    return SubmissionMachine


@pytest.fixture
def sdk_variables(airflow_db: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Airflow Variables through the Task SDK, served by the in-process execution API (as in
    ``dag.test()``) from the metadata database; one call at a time, as that channel expects."""
    import os
    import uuid

    import psutil
    import structlog
    from airflow.sdk import Variable
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )

    supervisor = InProcessTestSupervisor(
        id=uuid.uuid4(),
        pid=os.getpid(),
        process=psutil.Process(),
        process_log=structlog.get_logger(logger_name="task").bind(),
        client=InProcessTestSupervisor._api_client(),
    )
    supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
    lock = threading.Lock()

    def one_at_a_time(call: Callable[..., Any]) -> Any:
        def locked(cls: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return call(*args, **kwargs)

        return classmethod(locked)

    monkeypatch.setattr(Variable, "get", one_at_a_time(Variable.get))
    monkeypatch.setattr(Variable, "set", one_at_a_time(Variable.set))
    with set_supervisor_comms(supervisor.comms):
        yield


def test_no_task_instance_ever_waits_on_another_ones_batch(
    sdk_variables: None, set_connection: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fewer registry Variables to read at each step; how intents are spread over shards does
    # not matter here (test_operator_submission.py covers a shared shard).
    monkeypatch.setattr(intent_registry, "SHARDS", 2)
    with FakeBatchesServer(api_key=API_KEY, clock=CLOCK.now, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=2)
        run_state_machine_as_test(
            submission_machine(fake, "anthropic_default"),
            settings=settings(max_examples=30, stateful_step_count=14, deadline=None),
        )
