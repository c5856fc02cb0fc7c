"""A results endpoint on a loopback socket that serves scripted bodies: the streams the fake API
never sends (a line repeated forever, endless blank lines, a drip, a gzip bomb, breaks anywhere).

The i-th request gets ``replies[i]`` (the last reply again once they run out). A 2xx body goes
out in chunked encoding, piece by piece, then ends cleanly or breaks (the connection closes
mid-body). The server never sends more than ``max_body_bytes`` of bodies in all: past that it
breaks the body and every later one, so a reader that never stops still ends, and the test sees
how much it took.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raw_server import RawServer, Send, head

from airflow_provider_batches.models import MessageBatch

KEY = "sk-ant-api03-SCRIPTED-RESULTS-KEY"


def line(index: int, kind: str = "canceled", pad: int = 0) -> bytes:
    """The results line of request ``index`` (without its newline); ``pad`` lengthens it."""
    result: dict[str, Any] = {"type": kind}
    if pad:
        result["note"] = "x" * pad
    return json.dumps({"custom_id": f"request-{index}", "result": result}).encode()


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body``: a factory of the body's pieces (called once per request,
    so an endless generator is fine). ``interval``: seconds slept before each piece (a drip)."""

    body: Callable[[], Iterable[bytes]] = tuple
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    end: Literal["clean", "break"] = "clean"
    interval: float = 0.0
    gzip: bool = False


def lines_reply(raws: Sequence[bytes], **kwargs: Any) -> Reply:
    """A reply whose body is these lines, each ending in a newline, one piece each."""
    pieces = tuple(raw + b"\n" for raw in raws)
    return Reply(body=lambda: pieces, **kwargs)


def forever(piece: bytes, **kwargs: Any) -> Reply:
    """A reply repeating ``piece`` until the server's byte cap."""
    return Reply(body=lambda: itertools.repeat(piece), **kwargs)


class ScriptedResults:
    def __init__(self, replies: Sequence[Reply], max_body_bytes: int = 64 * 1024 * 1024) -> None:
        assert replies
        self.replies = list(replies)
        self.max_body_bytes = max_body_bytes
        self.statuses: list[int] = []
        self._raw = RawServer(self._respond)
        self.base_url = self._raw.base_url
        self.results_url = f"{self.base_url}/v1/messages/batches/msgbatch_scripted/results"

    def __enter__(self) -> ScriptedResults:
        self._raw.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.__exit__(*exc)

    @property
    def requests(self) -> int:
        return self._raw.requests

    @property
    def body_bytes_sent(self) -> int:
        return self._raw.body_bytes_sent

    def batch(self, total: int) -> MessageBatch:
        """An ended batch of ``total`` requests whose results are served here."""
        return MessageBatch.model_validate(
            {
                "id": "msgbatch_scripted",
                "type": "message_batch",
                "processing_status": "ended",
                "request_counts": {
                    "processing": 0,
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": total,
                    "expired": 0,
                },
                "created_at": "2024-08-20T18:37:24Z",
                "expires_at": "2024-08-21T18:37:24Z",
                "ended_at": "2024-08-20T19:37:24Z",
                "cancel_initiated_at": None,
                "archived_at": None,
                "results_url": self.results_url,
            }
        )

    def _respond(self, server: RawServer, send: Send) -> None:
        reply = self.replies[min(server.requests, len(self.replies)) - 1]
        self.statuses.append(reply.status)
        # Each connection serves one request: say so, or a client may reuse it.
        headers = {"content-type": "application/x-jsonl", "connection": "close", **reply.headers}
        if not 200 <= reply.status < 300:
            body = b"".join(reply.body())
            send(head(reply.status, {**headers, "content-length": str(len(body))}) + body)
            return
        headers["transfer-encoding"] = "chunked"
        if reply.gzip:
            headers["content-encoding"] = "gzip"
        if not send(head(reply.status, headers)):
            return
        for piece in _encoded(reply):
            if reply.interval:
                time.sleep(reply.interval)
            if server.body_bytes_sent + len(piece) > self.max_body_bytes:
                return  # the cap: break this body
            if not piece:
                continue
            if not send(b"%x\r\n%s\r\n" % (len(piece), piece)):
                return
            server.count(len(piece))
        if reply.end == "clean":
            send(b"0\r\n\r\n")


def _encoded(reply: Reply) -> Iterator[bytes]:
    if not reply.gzip:
        yield from reply.body()
        return
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    for piece in reply.body():
        yield compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
    yield compressor.flush()
