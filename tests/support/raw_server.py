"""A tiny scripted HTTP server on a loopback socket, for answers the fake API never gives.

Each connection reads one request head (and body), then runs ``respond(server, send)``;
``send`` writes bytes and returns ``False`` once the client has gone. ``body_bytes_sent``
counts what ``respond`` managed to write: how much of an endless or trickled answer was read.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

Send = Callable[[bytes], bool]
Respond = Callable[["RawServer", Send], None]


class RawServer:
    def __init__(self, respond: Respond) -> None:
        self._respond = respond
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.body_bytes_sent = 0
        self.requests = 0
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> RawServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(10)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(rest) < length:
                rest += conn.recv(65536)
            with self._lock:
                self.requests += 1

            def send(payload: bytes) -> bool:
                if self._stop.is_set():
                    return False
                try:
                    conn.sendall(payload)
                except OSError:
                    return False
                return True

            self._respond(self, send)

    def count(self, n: int) -> None:
        with self._lock:
            self.body_bytes_sent += n


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def batch_json(batch_id: str = "msgbatch_raw") -> dict[str, Any]:
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {
            "processing": 1,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2024-08-20T18:37:24.100435Z",
        "expires_at": "2024-08-21T18:37:24.100435Z",
        "ended_at": None,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": None,
    }


def trickle(body: bytes, interval: float) -> Respond:
    """A 200 whose body arrives one byte every ``interval`` seconds."""

    def respond(server: RawServer, send: Send) -> None:
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        if not send(head(200, headers)):
            return
        for index in range(len(body)):
            if not send(body[index : index + 1]):
                return
            server.count(1)
            time.sleep(interval)

    return respond


def endless(status: int, total: int, chunk: int = 65536) -> Respond:
    """A response declaring ``total`` bytes of JSON-ish filler, written as fast as it is read."""

    def respond(server: RawServer, send: Send) -> None:
        headers = {"content-type": "application/json", "content-length": str(total)}
        if not send(head(status, headers)):
            return
        piece = b"[" + b"0," * (chunk // 2 - 1) + b"0"
        sent = 0
        while sent < total:
            part = piece[: min(chunk, total - sent)]
            if not send(part):
                return
            sent += len(part)
            server.count(len(part))

    return respond


def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body that decodes to a JSON batch carrying ``decoded_size`` bytes of padding."""
    prefix = json.dumps(batch_json())[:-1].encode() + b', "padding": "'
    return gzip.compress(prefix + b"0" * decoded_size + b'"}', compresslevel=9)


def fixed(status: int, headers: dict[str, str], body: bytes) -> Respond:
    def respond(server: RawServer, send: Send) -> None:
        send(head(status, {**headers, "content-length": str(len(body))}) + body)

    return respond
