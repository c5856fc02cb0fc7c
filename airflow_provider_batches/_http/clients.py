"""httpx clients shared per connection (and, for async, per event loop).

Every trigger of one connection in one triggerer shares one ``AsyncClient``, so thousands of waits
use at most ``max_connections`` sockets. Clients are keyed by :attr:`ClientSettings.pool_key`,
which never contains the API key: it is sent as a per-request header instead.

The async client's sockets live in several small httpcore pools rather than one: httpcore
re-scans its whole pool (a socket check per idle connection, and a scan inside that scan) on
every request, which at 32 connections cost several ms of CPU per request and closed and
reopened sockets under load (see docs/benchmarks.md).

Lifetimes: an async client is closed when its event loop shuts down (``asyncio.run`` and the
triggerer close a loop's async generators first), or, for a loop closed without that, its sockets
are shut down at the next lookup from any loop. A forked child forgets every client it inherited
(see :func:`_forget_inherited_clients`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import ssl
import threading
import urllib.request
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import httpx

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches.exceptions import ConnectionConfigError

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
    transport: _ShardedTransport


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


def proxy_for(settings: ClientSettings) -> str | None:
    """The proxy URL the environment (``*_PROXY``, ``NO_PROXY``) names for the base URL.

    The one place proxies are decided, for the sync and the async client alike: each client only
    talks to its connection's base URL, so the choice is made once per client, with the
    standard library's reading of the variables; the async client then keeps its sharded pools
    (each shard reaches the API through that proxy) instead of httpx's own unsharded routing.
    """
    url = httpx.URL(settings.base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _client_kwargs(settings: ClientSettings) -> dict[str, Any]:
    from airflow_provider_batches import __version__

    return {
        # Waiting for a free pooled connection is queueing, not a fault: no pool timeout.
        "timeout": httpx.Timeout(settings.timeout, pool=None),
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
        proxy = proxy_for(settings)
        self._shards = [
            httpx.AsyncHTTPTransport(
                verify=context,
                proxy=proxy,
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=ASYNC_KEEPALIVE_EXPIRY,
                ),
            )
            for size in self._sizes
        ]
        self._busy = [0] * count
        #: The sockets this transport has used, to shut them down if their loop dies unclosed.
        self._sockets: dict[int, Any] = {}

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
        self._remember_socket(response)
        response.stream = _ReleasingStream(response.stream, self._busy, index)
        return response

    def _remember_socket(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        for key, known in list(self._sockets.items()):
            if known.fileno() == -1:  # closed since (keep-alive expiry, server close)
                del self._sockets[key]
        self._sockets[id(sock)] = sock

    def shut_down_sockets(self) -> None:
        """Synchronously end every connection, for a client whose event loop is gone.

        Only ``shutdown()``: the socket objects still belong to their (closed) loop's
        transports, which close the descriptors when they are collected.
        """
        for sock in self._sockets.values():
            if sock.fileno() != -1:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._sockets.clear()

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that frees its pool slot once closed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, busy: list[int], index: int
    ) -> None:
        # httpx's async transports always answer with an async stream.
        self._stream = cast("httpx.AsyncByteStream", stream)
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


class _LoopClients:
    """The shared async clients of one event loop, without a strong reference to the loop.

    A generator registered with the loop closes them when the loop shuts down its async
    generators (``asyncio.run`` and the triggerer do that before closing the loop).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.pools: dict[Any, AsyncPool] = {}
        self._closer = self._close_at_loop_shutdown()
        # The first step of an async generator registers it with the running loop (its
        # firstiter hook); the step only reaches the ``yield``, so it completes synchronously.
        _complete_now(self._closer.asend(None))

    def is_dead(self) -> bool:
        loop = self.loop()
        return loop is None or loop.is_closed()

    async def _close_at_loop_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            await pool.client.aclose()

    def shut_down_sockets(self) -> None:
        """For a dead loop: end the connections, then finish the closer with nothing to close
        (else its finalizer would try to schedule the closing on the closed loop)."""
        for pool in self.pools.values():
            pool.transport.shut_down_sockets()
        self.pools.clear()
        _complete_now(self._closer.aclose())


def _complete_now(step: Any) -> None:
    """Run an awaitable that never suspends to completion, outside any event loop."""
    try:
        cast("Coroutine[Any, Any, None]", step).send(None)
    except (StopIteration, StopAsyncIteration):
        return
    raise RuntimeError("expected a step that completes without waiting")


_loop_clients: dict[int, _LoopClients] = {}


def _clients_of(loop: asyncio.AbstractEventLoop) -> _LoopClients:
    for key, entry in list(_loop_clients.items()):
        if entry.is_dead():
            del _loop_clients[key]
            entry.shut_down_sockets()
    found = _loop_clients.get(id(loop))
    if found is not None and found.loop() is loop:
        return found
    entry = _loop_clients[id(loop)] = _LoopClients(loop)
    return entry


def shared_async_pool(settings: ClientSettings) -> AsyncPool:
    """The running loop's client for these settings, created on first use."""
    pools = _clients_of(asyncio.get_running_loop()).pools
    pool = pools.get(settings.pool_key)
    if pool is None or pool.client.is_closed:
        kwargs = _client_kwargs(settings)
        transport = _ShardedTransport(settings, kwargs["verify"])
        client = httpx.AsyncClient(**kwargs, transport=transport)
        pool = AsyncPool(client, asyncio.Semaphore(settings.max_connections), transport)
        pools[settings.pool_key] = pool
    return pool


async def aclose_shared_clients() -> None:
    """Close every shared async client of the running loop (their sockets close at once)."""
    entry = _loop_clients.get(id(asyncio.get_running_loop()))
    if entry is not None:
        await entry.aclose()


def shared_sync_client(settings: ClientSettings) -> httpx.Client:
    """The process-wide sync client for these settings (httpx.Client is thread-safe)."""
    with _sync_lock:
        client = _sync_clients.get(settings.pool_key)
        if client is None or client.is_closed:
            client = httpx.Client(
                **_client_kwargs(settings),
                proxy=proxy_for(settings),
                limits=httpx.Limits(
                    max_connections=settings.max_connections,
                    max_keepalive_connections=settings.max_connections,
                ),
            )
            _sync_clients[settings.pool_key] = client
        return client


def close_shared_sync_clients() -> None:
    with _sync_lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


#: Async clients a forked child inherited: kept referenced, never closed (see below).
_inherited_async_clients: list[_LoopClients] = []


def _forget_inherited_clients() -> None:
    """In a forked child: start with no shared client, leaving the parent's sockets alone.

    Parent and child would otherwise read each other's responses on one socket. Nothing is
    closed or sent (no TLS close_notify): dropped sync clients only free the child's copies of
    the descriptors when collected; inherited async clients are kept referenced so that no
    finalizer ever schedules their closing on the parent's (shared) event loop.
    """
    global _sync_clients, _sync_lock, _loop_clients
    _sync_lock = threading.Lock()  # another thread may have held it at the fork
    _sync_clients = {}
    _inherited_async_clients.extend(_loop_clients.values())
    _loop_clients = {}


os.register_at_fork(after_in_child=_forget_inherited_clients)
