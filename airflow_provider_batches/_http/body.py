"""Read a streamed response body into memory, never past a size cap and never past a deadline.

httpx would decode a gzip body in one piece per network chunk: 64 KB of a gzip bomb become tens
of MB before any check could run. The body is read raw instead and decompressed here with a
bounded output size (:class:`BodyDecoder`, also used for streamed bodies), so a hostile answer
costs at most the cap (plus one network chunk).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import httpx

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: What the request says it accepts; exactly the encodings :class:`BodyDecoder` decodes.
ACCEPT_ENCODING = "gzip, deflate"
#: Most of an error body ever read: the API's error JSON is a few hundred bytes.
ERROR_BODY_LIMIT = 64 * 1024
#: Most decoded bytes a streamed body is handed at once: a gzip bomb is decoded piece by piece.
STREAM_PIECE_BYTES = 64 * 1024
_AUTO_GZIP_OR_ZLIB = 32 + zlib.MAX_WBITS


@dataclass(frozen=True)
class Reply:
    """A response with its decoded body read (up to a cap); what the parse functions see.

    ``problem`` says why ``content`` is not the whole body (too large, undecodable), if so.
    """

    status_code: int
    headers: httpx.Headers
    content: bytes
    reason_phrase: str
    problem: str | None = None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def body_limit(status_code: int, max_response_bytes: int) -> int:
    return (
        max_response_bytes
        if 200 <= status_code < 300
        else min(ERROR_BODY_LIMIT, max_response_bytes)
    )


class BodyDecoder:
    """Undoes a response's ``content-encoding`` (gzip, deflate or none) a bounded piece at a
    time: whatever a chunk decodes to, no piece is longer than asked for.

    ``problem`` names an encoding this client does not accept (nothing is decoded then); a body
    that does not decode raises ``zlib.error``.
    """

    def __init__(self, content_encoding: str) -> None:
        encoding = content_encoding.strip().lower()
        self.problem: str | None = None
        self._zlib: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(_AUTO_GZIP_OR_ZLIB)
        elif encoding not in ("", "identity"):
            self.problem = f"content-encoding {encoding[:40]!r} is not one this client accepts"

    def pieces(self, chunk: bytes, max_piece: int) -> Iterator[bytes]:
        """The decoded bytes of one raw chunk, in pieces of at most ``max_piece`` bytes."""
        if self._zlib is None:
            for start in range(0, len(chunk), max_piece):
                yield chunk[start : start + max_piece]
            return
        pending = chunk
        while pending:
            piece = self._zlib.decompress(pending, max_piece)
            pending = self._zlib.unconsumed_tail
            if piece:
                yield piece

    def flush(self) -> bytes:
        """What the decoder still holds once the body has ended (a few bytes at most)."""
        return self._zlib.flush() if self._zlib is not None else b""


class _BoundedBody:
    """Decodes raw chunks into at most ``limit`` bytes; reports the first problem met."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.data = bytearray()
        self.decoder = BodyDecoder(response.headers.get("content-encoding", ""))
        self.problem: str | None = self.decoder.problem

    def feed(self, chunk: bytes) -> bool:
        """Add one raw chunk; ``False`` once reading further is pointless."""
        if self.problem:
            return False
        try:
            for piece in self.decoder.pieces(chunk, self.limit - len(self.data) + 1):
                if not self._append(piece):
                    return False
        except zlib.error:
            self.problem = "the compressed body cannot be decoded"
            return False
        return True

    def _append(self, data: bytes) -> bool:
        if len(self.data) + len(data) > self.limit:
            self.data += data[: self.limit - len(self.data)]
            self.problem = f"the body is larger than {self.limit} bytes once decoded"
            return False
        self.data += data
        return True

    def reply(self) -> Reply:
        if not self.problem:
            try:
                self._append(self.decoder.flush())
            except zlib.error:
                self.problem = "the compressed body cannot be decoded"
        return Reply(
            self.response.status_code,
            self.response.headers,
            bytes(self.data),
            self.response.reason_phrase,
            self.problem,
        )


def read_reply(response: httpx.Response, max_response_bytes: int, deadline: float) -> Reply:
    """Read a streamed sync response; ``deadline`` (``time.monotonic()``) bounds the reading."""
    body = _BoundedBody(response, body_limit(response.status_code, max_response_bytes))
    chunks: Iterator[bytes] = response.iter_raw()
    for chunk in chunks:
        if not body.feed(chunk):
            break
        if time.monotonic() >= deadline:
            raise httpx.ReadTimeout("the response was still arriving when the timeout passed")
    return body.reply()


async def aread_reply(response: httpx.Response, max_response_bytes: int) -> Reply:
    """Read a streamed async response (the caller bounds the time with ``wait_for``)."""
    body = _BoundedBody(response, body_limit(response.status_code, max_response_bytes))
    chunks: AsyncIterator[bytes] = response.aiter_raw()
    async for chunk in chunks:
        if not body.feed(chunk):
            break
    return body.reply()


class StreamedBody(Protocol[T_co]):
    """What a streaming call makes of its 2xx bodies: one object across every attempt.

    Its methods may raise to end the call at once (a line that is not valid, too many lines):
    an error about the content, which sending again would not fix.
    """

    def start(self) -> None:
        """A 2xx body starts (again, after a failure): forget any unfinished line."""

    def feed(self, piece: bytes) -> Iterable[T_co]:
        """The body's next decoded bytes; returns the items they complete."""

    def finish(self) -> Iterable[T_co]:
        """The body has ended cleanly; returns what its end completes (a last line)."""

    @property
    def lines_read(self) -> int:
        """Lines of the current body read so far, whether or not they made an item."""

    def missing(self) -> str | None:
        """After a clean end, what is still missing (asked for again), or ``None``: complete."""


class BodyStream(Generic[T]):
    """One 2xx body on its way into a :class:`StreamedBody`: decoded in bounded pieces, on a
    stall clock (``timeout`` seconds without a new line raise ``httpx.ReadTimeout``), counting
    the items it gave. ``problem``: an encoding that cannot be decoded (nothing is read)."""

    def __init__(self, body: StreamedBody[T], response: httpx.Response, timeout: float) -> None:
        self.head = Reply(response.status_code, response.headers, b"", response.reason_phrase)
        self._body = body
        self._decoder = BodyDecoder(response.headers.get("content-encoding", ""))
        self.problem = self._decoder.problem
        self._timeout = timeout
        self._lines = body.lines_read
        self._line_due = time.monotonic() + timeout
        #: Items this body gave: progress.
        self.items = 0
        body.start()

    def feed(self, chunk: bytes) -> Iterator[T]:
        """The items a raw chunk completes; raises ``zlib.error`` for a body that cannot be
        decoded."""
        for piece in self._decoder.pieces(chunk, STREAM_PIECE_BYTES):
            for item in self._body.feed(piece):
                self.items += 1
                yield item
        self._check_stall()

    def finish(self) -> Iterator[T]:
        for item in (*self._body.feed(self._decoder.flush()), *self._body.finish()):
            self.items += 1
            yield item

    def missing(self) -> str | None:
        return self.problem or self._body.missing()

    def _check_stall(self) -> None:
        # Checked once the items were taken: the caller's time with them is not a stall.
        now = time.monotonic()
        if self._body.lines_read != self._lines:
            self._lines, self._line_due = self._body.lines_read, now + self._timeout
        elif now >= self._line_due:
            raise httpx.ReadTimeout(
                f"the body gave no new line for {self._timeout:g} s (the connection's timeout)"
            )
