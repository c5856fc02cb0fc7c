"""No operator cancels a batch unless the wait's own deadline passed or a user killed the task.

Every way a wait can end without the batch ending is generated (error events of every kind,
retryable or not, timeouts for the deadline or for an expiry the API never reported, the
triggerer failing the trigger or timing out the deferral, on either side of the deadline) and
handed to the operator the way Airflow does (``execute_complete``, ``resume_execution``),
against a running batch on the fake API. A cancel is allowed only for the deadline with
``cancel_on_timeout``. User kills are covered by test_operator_trigger_kill.py and
test_operator_worker_kill.py.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_batches import exceptions as errors
from airflow_provider_batches.exceptions import BatchWaitError, MessageBatchError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.operators._task_record import RECORD_KEY, interrupted_wait
from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.utils.trigger_events import (
    error_event,
    timeout_event,
    unexpected_error_event,
)

pytestmark = pytest.mark.matrix

API_ERRORS = [
    errors.APIConnectionError,
    errors.APITimeoutError,
    errors.InvalidResponseError,
    errors.BadRequestError,
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.NotFoundError,
    errors.RateLimitError,
    errors.InternalServerError,
    errors.OverloadedError,
]
TRIGGER_FAILURES = ["Trigger failure", "Trigger timeout", "Could not resume the task", "Unknown"]
SLOW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def gave_up_events(draw: st.DrawFn, batch_id: str, running: MessageBatch) -> dict[str, Any]:
    last_seen = draw(st.sampled_from([None, running]))
    kind = draw(st.sampled_from(["api error", "other error", "unexpected", "timeout"]))
    if kind == "api error":
        error: MessageBatchError = draw(st.sampled_from(API_ERRORS))(
            "failed", method="GET", url="u", batch_id=batch_id, status_code=500
        )
        error.retryable = draw(st.booleans())  # type: ignore[attr-defined]
        return error_event(batch_id, error, last_seen, draw(st.sampled_from([None, "streak"])))
    if kind == "other error":
        return error_event(batch_id, errors.InvalidBatchIdError("bad cursor"), last_seen, None)
    if kind == "unexpected":
        return unexpected_error_event(batch_id, RuntimeError("boom"), "secret")
    event = timeout_event(
        batch_id, last_seen, reason=draw(st.sampled_from(["deadline", "expired"]))
    )
    if draw(st.booleans()):
        event["reason"] = draw(st.sampled_from([None, "something new"]))  # unknown reasons
    return event


@pytest.fixture
def hook(fake: FakeBatchesServer, fake_conn: str) -> MessageBatchHook:
    return MessageBatchHook(fake_conn)


def _running_batch(fake: FakeBatchesServer, hook: MessageBatchHook) -> MessageBatch:
    return hook.retrieve_batch(fake.create_batch(num_requests=1, ends_after=None)["id"])


@SLOW
@given(data=st.data(), cancel_on_timeout=st.booleans(), cancel_on_kill=st.booleans())
def test_a_wait_that_gives_up_cancels_only_at_its_own_deadline(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    fake_conn: str,
    data: st.DataObject,
    cancel_on_timeout: bool,
    cancel_on_kill: bool,
) -> None:
    batch = _running_batch(fake, hook)
    event = data.draw(gave_up_events(batch.id, batch))
    operator = MessageBatchOperator(
        task_id="t",
        requests=[],
        conn_id=fake_conn,
        deferrable=False,
        cancel_on_timeout=cancel_on_timeout,
        cancel_on_kill=cancel_on_kill,
    )

    with pytest.raises(BatchWaitError) as raised:
        operator.execute_complete({}, event, batch_id=batch.id)

    deadline = event["status"] == "timeout" and event.get("reason") == "deadline"
    cancels = fake.request_count(batch.id, "POST")
    assert cancels == (1 if deadline and cancel_on_timeout else 0), event
    assert batch.id in str(raised.value)
    if cancels == 0:
        assert "left" in str(raised.value), "the message says the batch was left running"


class TaskStateStore:
    """Stands in for Airflow 3.3's ``task_state_store`` accessor (get/set by key)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.values: dict[str, Any] = {RECORD_KEY: record}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@SLOW
@given(
    failure=st.sampled_from(TRIGGER_FAILURES),
    past_deadline=st.sampled_from([True, False, None]),
    cancel_on_timeout=st.booleans(),
    cancel_on_kill=st.booleans(),
)
def test_a_trigger_that_failed_without_an_event_cancels_only_past_the_deadline(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    fake_conn: str,
    failure: str,
    past_deadline: bool | None,
    cancel_on_timeout: bool,
    cancel_on_kill: bool,
) -> None:
    """Airflow resumes the task with ``__fail__`` when the triggerer failed the trigger or
    the deferral timed out. Only a deferral timeout past the wait's deadline may cancel; and
    whatever the failure, the next try must not take the deferral for a user kill."""
    try:
        from airflow.sdk.exceptions import TaskDeferralError, TaskDeferralTimeout
    except ImportError:  # where Airflow 3.0 and 3.1 define them
        from airflow.exceptions import TaskDeferralError, TaskDeferralTimeout

    batch = _running_batch(fake, hook)
    deadline = None if past_deadline is None else time.time() + (-5 if past_deadline else 3600)
    store = TaskStateStore({"batch_id": batch.id, "deferred_try": 1, "deadline": deadline})
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1)
    context: dict[str, Any] = {"ti": ti, "task_state_store": store}
    operator = MessageBatchOperator(
        task_id="t",
        requests=[],
        conn_id=fake_conn,
        deferrable=True,
        cancel_on_timeout=cancel_on_timeout,
        cancel_on_kill=cancel_on_kill,
    )

    with pytest.raises((TaskDeferralError, TaskDeferralTimeout)):
        operator.resume_execution("__fail__", {"error": failure, "traceback": ["x"]}, context)

    allowed = failure == "Trigger timeout" and past_deadline is True and cancel_on_timeout
    assert fake.request_count(batch.id, "POST") == (1 if allowed else 0)
    assert not interrupted_wait(store.values[RECORD_KEY], 2), "the deferral came back"
