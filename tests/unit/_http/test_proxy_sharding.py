"""Behind a proxy the async client keeps its sharded pools.

It used to fall back to httpx's own single pool whenever any ``*_PROXY`` variable was set, so
connection reuse and keep-alive differed behind a proxy. Now the same workload opens the same
connections, through the same transport, with or without one.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable

import pytest

from airflow_provider_batches._http.clients import (
    _ShardedTransport,
    aclose_shared_clients,
    proxy_for,
    shared_async_pool,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer

MAX_CONNECTIONS = 6
CONCURRENT = 24
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_outside_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("via_proxy", [False, True], ids=["direct", "proxy"])
async def test_same_sharded_pools_with_and_without_a_proxy(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    via_proxy: bool,
) -> None:
    batch_id = fake.create_batch(num_requests=1)["id"]
    if via_proxy:  # batches.invalid does not resolve: only the proxy (the fake) can answer
        monkeypatch.setenv("HTTP_PROXY", fake.base_url)
        base_url = "http://batches.invalid"
    else:
        base_url = fake.base_url
    set_connection("sharded", base_url, max_retries=0, max_connections=MAX_CONNECTIONS)
    hook = MessageBatchHook("sharded")
    fake.set_latency(0.02)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plain http to a non-loopback host warns
            settings = await hook.asettings()
        pool = shared_async_pool(settings)
        assert isinstance(pool.transport, _ShardedTransport)
        assert (proxy_for(settings) is not None) is via_proxy
        results = await asyncio.gather(*(hook.aretrieve_batch(batch_id) for _ in range(CONCURRENT)))
        assert {b.id for b in results} == {batch_id}
        # Every socket went through the sharded transport: as many as the fake saw opened.
        assert len(pool.transport._sockets) == fake.connections_opened
        assert fake.connections_opened == MAX_CONNECTIONS
        targets = {r.raw_target for r in fake.requests if r.batch_id == batch_id}
        prefix = "http://batches.invalid/" if via_proxy else "/"
        assert all(t.startswith(prefix) for t in targets)
    finally:
        await aclose_shared_clients()
