"""httpx clients shared per connection (and, for async, per event loop).

Every trigger of one connection in one triggerer shares one ``AsyncClient``, so thousands of waits
use at most ``max_connections`` sockets. Clients are keyed by :attr:`ClientSettings.pool_key`,
which never contains the API key: it is sent as a per-request header instead.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_batches.settings import ClientSettings

_USER_AGENT = "airflow-provider-batches"


@dataclass(frozen=True)
class AsyncPool:
    client: httpx.AsyncClient
    gate: asyncio.Semaphore


_async_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, AsyncPool]] = (
    weakref.WeakKeyDictionary()
)
_sync_clients: dict[Any, httpx.Client] = {}
_sync_lock = threading.Lock()


def _client_kwargs(settings: ClientSettings) -> dict[str, Any]:
    from airflow_provider_batches import __version__

    verify: bool | ssl.SSLContext = (
        settings.verify
        if isinstance(settings.verify, bool)
        else (ssl.create_default_context(cafile=settings.verify))
    )
    return {
        # Waiting for a free pooled connection is queueing, not a fault: no pool timeout.
        "timeout": httpx.Timeout(settings.timeout, pool=None),
        "limits": httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        "verify": verify,
        "headers": {"user-agent": f"{_USER_AGENT}/{__version__}"},
        "follow_redirects": False,
        "trust_env": True,
    }


def shared_async_pool(settings: ClientSettings) -> AsyncPool:
    """The running loop's client for these settings, created on first use."""
    loop = asyncio.get_running_loop()
    pools = _async_pools.setdefault(loop, {})
    pool = pools.get(settings.pool_key)
    if pool is None or pool.client.is_closed:
        pool = AsyncPool(
            httpx.AsyncClient(**_client_kwargs(settings)),
            asyncio.Semaphore(settings.max_connections),
        )
        pools[settings.pool_key] = pool
    return pool


async def aclose_shared_clients() -> None:
    """Close every shared async client of the running loop (their sockets close at once)."""
    pools = _async_pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.client.aclose()


def shared_sync_client(settings: ClientSettings) -> httpx.Client:
    """The process-wide sync client for these settings (httpx.Client is thread-safe)."""
    with _sync_lock:
        client = _sync_clients.get(settings.pool_key)
        if client is None or client.is_closed:
            client = httpx.Client(**_client_kwargs(settings))
            _sync_clients[settings.pool_key] = client
        return client


def close_shared_sync_clients() -> None:
    with _sync_lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()
