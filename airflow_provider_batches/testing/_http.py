"""A small HTTP/1.1 server on asyncio streams and h11, with keep-alive.

It knows nothing about the Batches API: a handler turns each :class:`HttpRequest` into an
:class:`HttpResponse`, whose ``action`` can also ask the server to misbehave on purpose
(drop the connection without answering, or cut a response short).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import h11

logger = logging.getLogger(__name__)

ResponseAction = Literal["send", "drop", "reset"]
#: The API takes create bodies up to 256 MB.
DEFAULT_MAX_BODY = 256 * 1024 * 1024
_READ_CHUNK = 65_536


@dataclass(frozen=True)
class HttpRequest:
    """A complete request. Header names are lower-case; values decoded as latin-1."""

    method: str
    target: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes
    client: tuple[str, int]

    def header(self, name: str) -> str | None:
        """All values of header ``name`` joined with ", ", or None when absent."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key == wanted]
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class HttpResponse:
    """What to answer. ``action``: ``send`` normally, ``drop`` closes the connection
    without a byte, ``reset`` sends the head and half the body, then closes.

    ``stream``: chunks of a body generated while it is sent (chunked transfer encoding), used
    instead of ``body``. ``cut_after``: send only that many body bytes; with ``reset`` the
    connection then closes mid-body, with ``send`` the body ends there cleanly.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    action: ResponseAction = "send"
    stream: Iterable[bytes] | None = None
    cut_after: int | None = None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _BodyTooLarge(Exception):
    pass


def _reason(status: int) -> bytes:
    if status == 529:
        return b"Overloaded"
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _plain_error(status: int, message: str) -> bytes:
    body = message.encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {_reason(status).decode()}\r\n"
        f"content-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class HttpServer:
    """Serves ``handler`` on one listening socket; tracks and can close every connection."""

    def __init__(
        self,
        handler: Handler,
        *,
        on_connection: Callable[[], None] | None = None,
        backlog: int = 4096,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._handler = handler
        self._on_connection = on_connection
        self._backlog = backlog
        self._max_body = max_body
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        self._server = await asyncio.start_server(
            self._on_client, host, port, backlog=self._backlog, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        """Stop listening and abort every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        if self._on_connection is not None:
            self._on_connection()
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        except Exception:  # pragma: no cover - a bug in the fake, not the client's fault
            logger.exception("fake API connection handler failed")
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        peer = writer.get_extra_info("peername")
        client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        while True:
            try:
                request = await self._read_request(conn, reader, writer, client)
            except h11.RemoteProtocolError as exc:
                writer.write(_plain_error(exc.error_status_hint, f"Bad request: {exc}"))
                await writer.drain()
                return
            except _BodyTooLarge:
                writer.write(_plain_error(413, "Request body too large"))
                await writer.drain()
                return
            if request is None:
                return
            try:
                response = await self._handler(request)
            except Exception:
                logger.exception("fake API handler failed")
                response = HttpResponse(500, (("content-type", "text/plain"),), b"handler error")
            if response.action == "drop":
                return
            await self._send(conn, writer, request, response)
            if response.action == "reset" or conn.our_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: tuple[str, int],
    ) -> HttpRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    data = conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    if data:
                        writer.write(data)
                conn.receive_data(await reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Request):
                head = event
                declared = _content_length(event)
                if declared is not None and declared > self._max_body:
                    raise _BodyTooLarge
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    raise _BodyTooLarge
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return HttpRequest(
                    method=head.method.decode("ascii", "replace").upper(),
                    target=bytes(head.target),
                    headers=tuple(
                        (name.decode("latin-1").lower(), value.decode("latin-1"))
                        for name, value in head.headers
                    ),
                    body=bytes(body),
                    client=client,
                )
            else:  # ConnectionClosed or PAUSED: nothing more to serve on this connection
                return None

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: HttpRequest,
        response: HttpResponse,
    ) -> None:
        if response.stream is not None and request.method != "HEAD":
            await self._send_stream(conn, writer, response, response.stream)
            return
        body = response.body
        headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
        ]
        headers.append((b"content-length", str(len(body)).encode("ascii")))
        out = bytearray()
        head = h11.Response(
            status_code=response.status, headers=headers, reason=_reason(response.status)
        )
        out += conn.send(head) or b""
        if request.method == "HEAD":
            body = b""
        if response.action == "reset":
            cut = len(body) // 2 if response.cut_after is None else response.cut_after
            out += conn.send(h11.Data(data=body[:cut])) or b""
        else:
            if body:
                out += conn.send(h11.Data(data=body)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
        writer.write(bytes(out))
        await writer.drain()

    async def _send_stream(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        response: HttpResponse,
        stream: Iterable[bytes],
    ) -> None:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
        ]
        headers.append((b"transfer-encoding", b"chunked"))
        head = h11.Response(
            status_code=response.status, headers=headers, reason=_reason(response.status)
        )
        writer.write(conn.send(head) or b"")
        budget = response.cut_after
        for chunk in stream:
            if budget is not None:
                chunk = chunk[:budget]
                budget -= len(chunk)
            if chunk:
                writer.write(conn.send(h11.Data(data=chunk)) or b"")
                await writer.drain()
            if budget == 0:
                break
        if response.action != "reset":
            writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name.lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None
