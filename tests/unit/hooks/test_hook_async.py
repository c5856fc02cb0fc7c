"""MessageBatchHook.aretrieve_batch: the async path, its shared pool and its connection limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import API_KEY, assert_no_secret_in_records

from airflow_provider_batches._http.clients import aclose_shared_clients, shared_async_pool
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    InvalidBatchIdError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.matrix

CONN_ID = "batches_async"
Connect = Callable[..., MessageBatchHook]


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert_no_secret_in_records(records, API_KEY)


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    yield
    await aclose_shared_clients()


@pytest.fixture
def connect(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> Connect:
    def _connect(
        conn_id: str = CONN_ID,
        *,
        api_key: str = API_KEY,
        base_url: str | None = None,
        **extras: Any,
    ) -> MessageBatchHook:
        extras.setdefault("max_retries", 2)
        set_connection(conn_id, base_url or fake.base_url, api_key=api_key, **extras)
        return MessageBatchHook(conn_id)

    return _connect


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def assert_secret_free(exc: BaseException) -> None:
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)
    assert API_KEY.encode() not in pickle.dumps(exc)


# ---- fields and errors --------------------------------------------------------------------------


async def test_aretrieve_returns_the_exact_fields(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(
        num_requests=5, ends_after=0, outcomes={"succeeded": 3, "errored": 1, "expired": 1}
    )
    batch = await connect().aretrieve_batch(served["id"])
    assert batch.to_xcom() == fake.get_batch(served["id"])
    assert batch.id == served["id"]
    assert batch.is_ended
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.canceled, counts.expired) == (3, 1, 0, 1)
    assert batch.ended_at is not None
    assert batch.ended_at.utcoffset() == timedelta(0)
    assert batch.results_url == f"{fake.base_url}/v1/messages/batches/{served['id']}/results"
    seen = fake.requests[-1]
    assert seen.authenticated is True
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["x-api-key"] == "<redacted>"


async def test_aretrieve_sends_configured_headers(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    hook = connect(anthropic_version="2024-10-22", betas=["b-one", "b-two"], workspace_id="ws_9")
    await hook.aretrieve_batch(served["id"])
    headers = fake.requests[-1].headers
    assert headers["anthropic-version"] == "2024-10-22"
    assert headers["anthropic-beta"] == "b-one,b-two"
    assert headers["anthropic-workspace-id"] == "ws_9"


async def test_aretrieve_unknown_batch(fake: FakeBatchesServer, connect: Connect) -> None:
    with pytest.raises(NotFoundError) as info:
        await connect(max_retries=3).aretrieve_batch("msgbatch_missing")
    exc = info.value
    assert exc.status_code == 404
    assert exc.error_type == "not_found_error"
    assert exc.batch_id == "msgbatch_missing"
    assert exc.request_id is not None
    assert exc.request_id.startswith("req_")
    assert fake.request_count() == 1
    assert_secret_free(exc)


async def test_aretrieve_wrong_key(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    with pytest.raises(AuthenticationError):
        await connect(api_key="sk-ant-wrong-0000000000", max_retries=3).aretrieve_batch(
            served["id"]
        )
    assert fake.request_count() == 1


@pytest.mark.parametrize("batch_id", ["", "a/b", "a?b", "a#b", "..", "a b", "a\x00"])
async def test_aretrieve_bad_ids_never_reach_the_server(
    fake: FakeBatchesServer, connect: Connect, batch_id: str
) -> None:
    with pytest.raises(InvalidBatchIdError):
        await connect().aretrieve_batch(batch_id)
    assert fake.request_count() == 0


# ---- retries ------------------------------------------------------------------------------------


async def test_async_retries_on_rate_limit(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, times=2, headers={"retry-after-ms": "10"}))
    batch = await connect(max_retries=2).aretrieve_batch(served["id"])
    assert batch.id == served["id"]
    assert fake.request_count(served["id"]) == 3


async def test_async_retry_after_ms_is_honored(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, headers={"retry-after-ms": "300"}))
    hook = connect(max_retries=1)
    await hook.asettings()
    start = time.monotonic()
    await hook.aretrieve_batch(served["id"])
    assert time.monotonic() - start >= 0.3
    first, second = fake.requests[-2:]
    assert second.received_at - first.received_at >= 0.3


async def test_async_gives_up_after_max_retries(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=503, times=-1, headers={"retry-after-ms": "1"}))
    with pytest.raises(InternalServerError) as info:
        await connect(max_retries=2).aretrieve_batch(served["id"])
    assert info.value.attempts == 3
    assert fake.request_count() == 3


async def test_async_rate_limit_beyond_retries(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, times=-1, headers={"retry-after-ms": "1"}))
    with pytest.raises(RateLimitError) as info:
        await connect(max_retries=1).aretrieve_batch(served["id"])
    assert info.value.attempts == 2
    assert fake.request_count() == 2


@pytest.mark.parametrize("kind", ["drop", "reset", "truncated", "html"])
async def test_async_broken_responses_are_retried(
    fake: FakeBatchesServer, connect: Connect, kind: str
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind=kind))  # type: ignore[arg-type]
    batch = await connect(max_retries=1).aretrieve_batch(served["id"])
    assert batch.to_xcom() == fake.get_batch(served["id"])
    assert fake.request_count() == 2


async def test_async_broken_response_errors(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="drop"))
    fake.inject_fault(Fault(kind="html"))
    hook = connect(max_retries=0)
    with pytest.raises(APIConnectionError):
        await hook.aretrieve_batch(served["id"])
    with pytest.raises(InvalidResponseError):
        await hook.aretrieve_batch(served["id"])
    assert fake.request_count() == 2


async def test_async_read_timeout(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="delay", delay=3.0))
    with pytest.raises(APITimeoutError) as info:
        await connect(timeout=0.3, max_retries=0).aretrieve_batch(served["id"])
    assert info.value.retryable is True
    assert fake.request_count() == 1
    assert_secret_free(info.value)


# ---- shared pool and concurrency ----------------------------------------------------------------


async def test_concurrent_calls_use_at_most_max_connections(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    ids = fake.create_batches_bulk(count=50, ends_after_min=60, ends_after_max=120)["ids"]
    fake.set_latency(0.05)  # keep requests in flight long enough to overlap
    hook = connect(max_connections=4)

    batches = await asyncio.gather(*(hook.aretrieve_batch(batch_id) for batch_id in ids))

    assert [batch.id for batch in batches] == ids
    assert fake.request_count(method="GET") == 50
    assert 2 <= fake.connections_opened <= 4


async def test_concurrent_calls_of_many_hooks_share_the_limit(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.set_latency(0.05)
    connect(max_connections=3)
    hooks = [MessageBatchHook(CONN_ID) for _ in range(30)]
    await asyncio.gather(*(hook.aretrieve_batch(served["id"]) for hook in hooks))
    assert fake.request_count() == 30
    assert fake.connections_opened <= 3


async def test_hooks_of_one_connection_share_one_client(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    first = connect()
    second = MessageBatchHook(CONN_ID)
    await first.aretrieve_batch(served["id"])
    await second.aretrieve_batch(served["id"])

    pool_one = shared_async_pool(await first.asettings())
    pool_two = shared_async_pool(await second.asettings())
    assert pool_one is pool_two
    assert pool_one.client is pool_two.client
    # Sequential calls reuse the one kept-alive socket.
    assert fake.connections_opened == 1


async def test_other_connections_get_their_own_client(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    hook_a = connect("conn_a")
    hook_b = connect("conn_b")
    pool_a = shared_async_pool(await hook_a.asettings())
    pool_b = shared_async_pool(await hook_b.asettings())
    assert pool_a is not pool_b


def test_a_different_loop_gets_a_different_client(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    hook = connect()
    served = fake.create_batch(ends_after=None)

    async def use() -> Any:
        await hook.aretrieve_batch(served["id"])
        return shared_async_pool(await hook.asettings())

    async def close() -> None:
        await aclose_shared_clients()

    loop_one = asyncio.new_event_loop()
    loop_two = asyncio.new_event_loop()
    try:
        pool_one = loop_one.run_until_complete(use())
        pool_one_again = loop_one.run_until_complete(use())
        pool_two = loop_two.run_until_complete(use())
        assert pool_one is pool_one_again
        assert pool_one is not pool_two
        assert pool_one.client is not pool_two.client
        assert fake.request_count() == 3
        loop_one.run_until_complete(close())
        loop_two.run_until_complete(close())
        assert pool_one.client.is_closed
        assert pool_two.client.is_closed
    finally:
        loop_one.close()
        loop_two.close()


async def test_cancelling_an_in_flight_call_leaks_no_connection(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="delay", delay=0.5))
    hook = connect(max_connections=1)

    task = asyncio.create_task(hook.aretrieve_batch(served["id"]))
    await eventually(lambda: fake.request_count() == 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()

    # With one allowed connection, a leaked socket or gate slot would block this call forever.
    batch = await asyncio.wait_for(hook.aretrieve_batch(served["id"]), timeout=10)
    assert batch.id == served["id"]
    assert fake.request_count() == 2
    assert fake.connections_opened == 2  # the cancelled socket was not reused
    # The server sees the cancelled call's socket closed; only the new one stays open.
    await eventually(lambda: fake.open_connections == 1)


async def test_aclose_shared_clients_closes(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    hook = connect()
    await hook.aretrieve_batch(served["id"])
    pool = shared_async_pool(await hook.asettings())
    assert not pool.client.is_closed
    assert fake.open_connections == 1

    await aclose_shared_clients()

    assert pool.client.is_closed
    await eventually(lambda: fake.open_connections == 0)
    fresh = shared_async_pool(await hook.asettings())
    assert fresh is not pool
    assert not fresh.client.is_closed
    # The hook keeps working on a new client.
    assert (await hook.aretrieve_batch(served["id"])).id == served["id"]
    assert fake.connections_opened == 2
