"""Async clients live as long as their event loop: none leaks per loop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import psutil
import pytest

from airflow_provider_batches._http import clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer

RUNS = 50


def _open_tcp_fds() -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp") if c.fd != -1)


def _live_async_clients() -> int:
    return sum(len(entry.pools) for entry in clients._loop_clients.values())


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    set_connection("loop_clients", fake.base_url, max_retries=0)
    return MessageBatchHook("loop_clients")


def test_fifty_asyncio_runs_leave_at_most_one_client_open(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    batch_id = fake.create_batch(num_requests=1)["id"]
    gc.collect()
    fds_before = _open_tcp_fds()
    server_before = fake.open_connections
    for _ in range(RUNS):
        assert asyncio.run(hook.aretrieve_batch(batch_id)).id == batch_id
    gc.collect()
    assert fake.request_count(batch_id) == RUNS
    # Each run opened its own connection (nothing can be shared across loops) ...
    assert fake.connections_opened >= RUNS
    # ... and at most one client's sockets (one per request in flight: one) are still open.
    assert fake.open_connections - server_before <= 1
    assert _open_tcp_fds() - fds_before <= 1
    assert _live_async_clients() <= 1
    # In fact none: asyncio.run shuts the loop's async generators down, which closes its clients.
    assert _live_async_clients() == 0
    _wait_for(lambda: fake.open_connections == server_before)
    assert _open_tcp_fds() == fds_before


def test_clients_of_a_loop_closed_without_shutdown_are_released_on_the_next_lookup(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    """``loop.close()`` without ``shutdown_asyncgens()``: nothing ran at the close, so the
    next lookup (from any loop) finds the closed loop and shuts its sockets down."""
    batch_id = fake.create_batch(num_requests=1)["id"]
    server_before = fake.open_connections
    for _ in range(5):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(hook.aretrieve_batch(batch_id))
        loop.close()
    # The previous closed loops were swept at each lookup; the last one is still registered.
    assert fake.open_connections - server_before <= 1
    assert asyncio.run(hook.aretrieve_batch(batch_id)).id == batch_id
    assert _live_async_clients() == 0
    _wait_for(lambda: fake.open_connections == server_before)


def test_a_running_loop_keeps_its_client(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    """The sweep only drops clients of closed loops: a live loop reuses its pooled socket."""
    batch_id = fake.create_batch(num_requests=1)["id"]

    async def three_polls() -> None:
        for _ in range(3):
            await hook.aretrieve_batch(batch_id)
            other = asyncio.new_event_loop()  # a lookup from elsewhere sweeps dead loops
            other.close()

    opened_before = fake.connections_opened
    asyncio.run(three_polls())
    assert fake.connections_opened - opened_before == 1


def _wait_for(predicate: Callable[[], bool]) -> None:
    from helpers import wait_until

    wait_until(predicate, timeout=10.0)
