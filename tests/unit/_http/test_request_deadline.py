"""``timeout`` bounds a whole request, ``deadline`` a whole call.

No wall-clock assertions: a trickling server counts the bytes it managed to write before the
client gave up, and the fake counts requests (a retry the deadline forbids is never sent).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Iterator

import pytest
from raw_server import RawServer, batch_json, trickle

from airflow_provider_batches._http.clients import aclose_shared_clients, close_shared_sync_clients
from airflow_provider_batches.exceptions import APITimeoutError, InternalServerError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.testing import FakeBatchesServer, Fault

BATCH_ID = "msgbatch_raw"
#: A valid batch padded with spaces so that trickling it whole takes many timeouts.
TRICKLED_BODY = json.dumps(batch_json(BATCH_ID)).encode() + b" " * 200
INTERVAL = 0.02
TIMEOUT = 0.3


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


def hook_for(
    set_connection: Callable[..., None], base_url: str, **extra: object
) -> MessageBatchHook:
    set_connection("deadline_conn", base_url, **extra)
    return MessageBatchHook("deadline_conn")


def retrieve(
    hook: MessageBatchHook, mode: str, batch_id: str, deadline: float | None = None
) -> MessageBatch:
    """``retrieve_batch`` or, in a fresh event loop, ``aretrieve_batch``."""
    if mode == "sync":
        return hook.retrieve_batch(batch_id, deadline=deadline)

    async def run() -> MessageBatch:
        try:
            return await hook.aretrieve_batch(batch_id, deadline=deadline)
        finally:
            await aclose_shared_clients()

    return asyncio.run(run())


# ---- timeout bounds connect + send + every read together --------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_trickling_body_cannot_stretch_the_timeout(
    set_connection: Callable[..., None], mode: str
) -> None:
    # Each byte arrives well within the read timeout; the whole body would take ~12 timeouts.
    assert len(TRICKLED_BODY) * INTERVAL > 10 * TIMEOUT
    with RawServer(trickle(TRICKLED_BODY, INTERVAL)) as server:
        hook = hook_for(set_connection, server.base_url, timeout=TIMEOUT, max_retries=0)
        with pytest.raises(APITimeoutError) as info:
            retrieve(hook, mode, BATCH_ID)
        close_shared_sync_clients()
    assert info.value.retryable is True
    assert server.requests == 1
    # The client stopped reading after about one timeout's worth of bytes, far from the whole.
    assert server.body_bytes_sent < len(TRICKLED_BODY) // 2


# ---- deadline bounds the whole call, retries and their waits included -------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_retry_whose_wait_would_pass_the_deadline_is_not_made(
    fake: FakeBatchesServer, set_connection: Callable[..., None], mode: str
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(kind="status", status=503, batch_id=served["id"], headers={"retry-after": "30"})
    )
    hook = hook_for(set_connection, fake.base_url, max_retries=3)
    deadline = time.time() + 5
    with pytest.raises(InternalServerError) as info:
        retrieve(hook, mode, served["id"], deadline)
    assert fake.request_count(served["id"]) == 1
    assert info.value.attempts == 1
    assert info.value.retryable is True
    assert info.value.retry_after == 30


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retries_that_fit_before_the_deadline_are_made(
    fake: FakeBatchesServer, set_connection: Callable[..., None], mode: str
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(
            kind="status",
            status=503,
            batch_id=served["id"],
            times=2,
            headers={"retry-after-ms": "10"},
        )
    )
    hook = hook_for(set_connection, fake.base_url, max_retries=3)
    deadline = time.time() + 60
    batch = retrieve(hook, mode, served["id"], deadline)
    assert batch.id == served["id"]
    assert fake.request_count(served["id"]) == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_deadline_already_past_sends_nothing(
    fake: FakeBatchesServer, set_connection: Callable[..., None], mode: str
) -> None:
    served = fake.create_batch(ends_after=None)
    hook = hook_for(set_connection, fake.base_url, max_retries=3)
    past = time.time() - 1
    with pytest.raises(APITimeoutError, match="deadline") as info:
        retrieve(hook, mode, served["id"], past)
    assert fake.request_count() == 0
    assert info.value.retryable is True


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_deadline_also_shortens_an_attempt(
    fake: FakeBatchesServer, set_connection: Callable[..., None], mode: str
) -> None:
    # The server answers after 3 s; the connection's timeout (30 s) would wait for it, the
    # call's deadline (0.5 s away) does not.
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="delay", delay=3.0, batch_id=served["id"], times=-1))
    hook = hook_for(set_connection, fake.base_url, max_retries=3, timeout=30)
    deadline = time.time() + 0.5
    with pytest.raises(APITimeoutError):
        retrieve(hook, mode, served["id"], deadline)
    assert fake.request_count(served["id"]) == 1


@pytest.mark.parametrize("name", ["retrieve_batch", "aretrieve_batch"])
def test_deadline_is_a_keyword_only_epoch_seconds_parameter(name: str) -> None:
    parameter = inspect.signature(getattr(MessageBatchHook, name)).parameters["deadline"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default is None
