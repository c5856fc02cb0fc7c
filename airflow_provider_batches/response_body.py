"""Read a streamed response body into memory, never past a size cap and never past a deadline.

httpx would decode a gzip body in one piece per network chunk: 64 KB of a gzip bomb become tens
of MB before any check could run. The body is read raw instead and decompressed here with a
bounded output size, so a hostile answer costs at most the cap (plus one network chunk).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

#: What the request says it accepts; exactly the encodings :class:`_BoundedBody` decodes.
ACCEPT_ENCODING = "gzip, deflate"
#: Most of an error body ever read: the API's error JSON is a few hundred bytes.
ERROR_BODY_LIMIT = 64 * 1024
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


class _BoundedBody:
    """Decodes raw chunks into at most ``limit`` bytes; reports the first problem met."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.data = bytearray()
        self.problem: str | None = None
        encoding = response.headers.get("content-encoding", "").strip().lower()
        self.decoder: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.decoder = zlib.decompressobj(_AUTO_GZIP_OR_ZLIB)
        elif encoding not in ("", "identity"):
            self.problem = f"content-encoding {encoding[:40]!r} is not one this client accepts"

    def feed(self, chunk: bytes) -> bool:
        """Add one raw chunk; ``False`` once reading further is pointless."""
        if self.problem:
            return False
        if self.decoder is None:
            return self._append(chunk)
        pending = chunk
        try:
            while pending:
                room = self.limit - len(self.data)
                if not self._append(self.decoder.decompress(pending, room + 1)):
                    return False
                pending = self.decoder.unconsumed_tail
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
        if self.decoder is not None and not self.problem:
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
