"""httpx clients shared per connection (and, for async, per event loop).

Every trigger of one connection in one triggerer shares one ``AsyncClient``, so thousands of waits
use at most ``max_connections`` sockets. Clients are keyed by :attr:`ClientSettings.pool_key`,
which never contains the API key: it is sent as a per-request header instead.

The async client's sockets live in several small httpcore pools rather than one: httpcore
re-scans its whole pool (a socket check per idle connection, and a scan inside that scan) on
every request, which at 32 connections cost several ms of CPU per request and closed and
reopened sockets under load (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import math
import ssl
import threading
import urllib.request
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_batches.exceptions import ConnectionConfigError
from airflow_provider_batches.settings import ClientSettings

_USER_AGENT = "airflow-provider-batches"
#: Connections per httpcore pool of the async client (see the module docstring).
CONNECTIONS_PER_SHARD = 4
#: Seconds an idle async connection is kept (httpx's default is 5 s). Polls of thousands of
#: waits reach the pools unevenly; with 5 s the less used pools closed and reopened sockets.
ASYNC_KEEPALIVE_EXPIRY = 30.0


@dataclass(frozen=True)
class AsyncPool:
    client: httpx.AsyncClient
    gate: asyncio.Semaphore


_async_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, AsyncPool]] = (
    weakref.WeakKeyDictionary()
)
_sync_clients: dict[Any, httpx.Client] = {}
_sync_lock = threading.Lock()
_ssl_contexts: dict[bool | str, ssl.SSLContext] = {}


def ssl_context(settings: ClientSettings) -> ssl.SSLContext:
    """The TLS context for the connection's ``verify`` extra, built once per process.

    Loading a CA bundle is about 0.1 s of blocking file I/O; paying it once per process instead
    of once per client keeps it off the triggerer's loop after the first wait.
    """
    context = _ssl_contexts.get(settings.verify)
    if context is None:
        if isinstance(settings.verify, bool):
            context = httpx.create_ssl_context(verify=settings.verify, trust_env=True)
        else:
            try:
                context = ssl.create_default_context(cafile=settings.verify)
            except (OSError, ssl.SSLError) as exc:
                raise ConnectionConfigError(
                    f"Connection {settings.conn_id!r}: extra 'verify' names the CA bundle "
                    f"{settings.verify!r}, which cannot be loaded ({type(exc).__name__}: "
                    f"{getattr(exc, 'strerror', None) or exc}). Point it at a PEM file of CA "
                    "certificates, or set it to true for the system's CAs."
                ) from None
        _ssl_contexts[settings.verify] = context
    return context


def _client_kwargs(settings: ClientSettings) -> dict[str, Any]:
    from airflow_provider_batches import __version__

    return {
        # Waiting for a free pooled connection is queueing, not a fault: no pool timeout.
        "timeout": httpx.Timeout(settings.timeout, pool=None),
        "limits": httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
        "verify": ssl_context(settings),
        "headers": {"user-agent": f"{_USER_AGENT}/{__version__}"},
        "follow_redirects": False,
        "trust_env": True,
    }


class _ShardedTransport(httpx.AsyncBaseTransport):
    """``max_connections`` sockets split over small pools; each request goes to the first pool
    with a free slot (so light traffic keeps reusing the same few sockets), else the least busy.
    """

    def __init__(self, settings: ClientSettings, context: ssl.SSLContext) -> None:
        total = settings.max_connections
        count = math.ceil(total / CONNECTIONS_PER_SHARD)
        self._sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
        self._shards = [
            httpx.AsyncHTTPTransport(
                verify=context,
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=ASYNC_KEEPALIVE_EXPIRY,
                ),
            )
            for size in self._sizes
        ]
        self._busy = [0] * count

    def _pick(self) -> int:
        for index, size in enumerate(self._sizes):
            if self._busy[index] < size:
                return index
        return min(range(len(self._busy)), key=self._busy.__getitem__)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._busy, index)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that frees its pool slot once closed."""

    def __init__(self, stream: httpx.AsyncByteStream, busy: list[int], index: int) -> None:
        self._stream = stream
        self._busy = busy
        self._index: int | None = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._index is not None:
                self._busy[self._index] -= 1
                self._index = None


def shared_async_pool(settings: ClientSettings) -> AsyncPool:
    """The running loop's client for these settings, created on first use."""
    loop = asyncio.get_running_loop()
    pools = _async_pools.setdefault(loop, {})
    pool = pools.get(settings.pool_key)
    if pool is None or pool.client.is_closed:
        kwargs = _client_kwargs(settings)
        if not urllib.request.getproxies():  # with *_PROXY set, httpx's own routing applies
            kwargs["transport"] = _ShardedTransport(settings, kwargs["verify"])
        pool = AsyncPool(httpx.AsyncClient(**kwargs), asyncio.Semaphore(settings.max_connections))
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
