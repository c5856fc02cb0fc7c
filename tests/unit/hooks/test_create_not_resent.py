"""Creating a batch is resent only after an answer proving the API refused it.

429 and 529 are refusals (the wire contract); every other 5xx, a timeout, a dropped connection or
an unreadable 2xx leaves unknown whether a batch exists, so the hook raises
``BatchCreateOutcomeUnknownError`` after exactly one POST. A connection that was never made
carried no request and may be retried.
"""

from __future__ import annotations

import json
import pickle
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import API_KEY

from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APIError,
    BatchCreateOutcomeUnknownError,
    OverloadedError,
    RateLimitError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.utils.trigger_events import error_event

REQUESTS = [
    {
        "custom_id": "one",
        "params": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }
]


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    set_connection("create_conn", fake.base_url, max_retries=3, timeout=0.5)
    return MessageBatchHook("create_conn")


def assert_outcome_unknown(error: BaseException, status: int | None) -> None:
    assert type(error) is BatchCreateOutcomeUnknownError
    assert isinstance(error, APIError)
    assert error.retryable is False
    assert error.attempts == 1
    assert error.status_code == status
    assert error.method == "POST"
    assert error.url.endswith("/v1/messages/batches")
    assert "unknown" in str(error)
    assert error.sent_at is not None
    assert error.sent_at <= time.time()
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is BatchCreateOutcomeUnknownError
    assert again.to_dict() == error.to_dict()
    assert again.sent_at == error.sent_at
    assert error.to_dict()["error_class"] == "BatchCreateOutcomeUnknownError"
    event = error_event("msgbatch_none", error, None, None)
    assert event["error"]["retryable"] is False
    assert API_KEY not in json.dumps(event)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_is_sent_once_after_a_5xx(
    fake: FakeBatchesServer, hook: MessageBatchHook, status: int
) -> None:
    fake.inject_fault(Fault(kind="status", status=status, method="POST", times=-1))
    with pytest.raises(APIError) as info:
        hook.create_batch(REQUESTS)
    assert fake.request_count(method="POST") == 1
    assert_outcome_unknown(info.value, status)


def test_create_is_sent_once_after_a_5xx_even_if_the_gateway_says_retry(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    # A gateway that timed out cannot know whether the API behind it acted.
    fake.inject_fault(
        Fault(kind="status", status=504, method="POST", headers={"x-should-retry": "true"})
    )
    with pytest.raises(APIError) as info:
        hook.create_batch(REQUESTS)
    assert fake.request_count(method="POST") == 1
    assert_outcome_unknown(info.value, 504)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="drop", method="POST", times=-1),
        Fault(kind="reset", method="POST", times=-1),
        Fault(kind="delay", delay=2.0, method="POST", times=-1),
        Fault(kind="truncated", method="POST", times=-1),
        Fault(kind="html", method="POST", times=-1),
    ],
    ids=["dropped", "reset-mid-body", "timeout", "truncated-2xx", "html-2xx"],
)
def test_create_is_sent_once_when_the_outcome_is_unknown(
    fake: FakeBatchesServer, hook: MessageBatchHook, fault: Fault
) -> None:
    fake.inject_fault(fault)
    with pytest.raises(APIError) as info:
        hook.create_batch(REQUESTS)
    assert fake.request_count(method="POST") == 1
    status = 200 if fault.kind in ("truncated", "html") else None
    assert_outcome_unknown(info.value, status)


@pytest.mark.parametrize(
    ("status", "cls"), [(429, RateLimitError), (529, OverloadedError)], ids=["429", "529"]
)
def test_create_is_resent_after_a_refusal(
    fake: FakeBatchesServer, hook: MessageBatchHook, status: int, cls: type[APIError]
) -> None:
    fault = Fault(
        kind="status", status=status, method="POST", times=2, headers={"retry-after-ms": "10"}
    )
    fake.inject_fault(fault)
    batch = hook.create_batch(REQUESTS)
    assert cls in (RateLimitError, OverloadedError)
    assert batch.request_counts.processing == 1
    assert fake.request_count(method="POST") == 3
    assert fake.stats()["batches"] == 1


@pytest.mark.parametrize("status", [429, 529])
def test_refusals_beyond_max_retries_raise_the_refusal(
    fake: FakeBatchesServer, hook: MessageBatchHook, status: int
) -> None:
    fault = Fault(
        kind="status", status=status, method="POST", times=-1, headers={"retry-after-ms": "10"}
    )
    fake.inject_fault(fault)
    with pytest.raises(APIError) as info:
        hook.create_batch(REQUESTS)
    assert type(info.value) in (RateLimitError, OverloadedError)
    assert info.value.retryable is True
    assert info.value.attempts == 4
    assert fake.request_count(method="POST") == 4


def test_refusal_with_x_should_retry_false_is_not_resent(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    fake.inject_fault(
        Fault(kind="status", status=529, method="POST", headers={"x-should-retry": "false"})
    )
    with pytest.raises(OverloadedError) as info:
        hook.create_batch(REQUESTS)
    assert info.value.retryable is False
    assert fake.request_count(method="POST") == 1


def test_create_is_retried_when_no_connection_was_made(
    set_connection: Callable[..., None],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    set_connection("refused_conn", f"http://127.0.0.1:{port}", max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        MessageBatchHook("refused_conn").create_batch(REQUESTS)
    assert type(info.value) is APIConnectionError
    assert info.value.retryable is True
    assert info.value.attempts == 3


def test_retrieve_is_still_retried_after_a_5xx(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=504, batch_id=served["id"], times=2))
    assert hook.retrieve_batch(served["id"]).id == served["id"]
    assert fake.request_count(served["id"]) == 3


def test_cancel_stays_retried_after_a_5xx(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    # Cancelling twice is harmless: only create is non-idempotent.
    served = fake.create_batch(ends_after=None, cancel_delay=None)
    fake.inject_fault(Fault(kind="status", status=503, method="POST", batch_id=served["id"]))
    batch = hook.cancel_batch(served["id"])
    assert batch.processing_status == "canceling"
    assert fake.request_count(served["id"], "POST") == 2
