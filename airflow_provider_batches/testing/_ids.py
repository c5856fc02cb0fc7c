"""Identifier and timestamp formatting in the shapes the real API uses."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timezone

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, index = divmod(number, 62)
        chars.append(_BASE62[index])
    return "".join(chars)


def random_base62(length: int = 24) -> str:
    """``length`` random base62 characters (one urandom call: this is on the hot path)."""
    return _base62(int.from_bytes(secrets.token_bytes(length), "big"), length)


def stable_base62(seed: str, length: int = 24) -> str:
    """``length`` base62 characters derived deterministically from ``seed``."""
    return _base62(int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest(), "big"), length)


def new_batch_id() -> str:
    """A fresh id like ``msgbatch_013Zva2CMHLNnXjNJJKqJ2EF``."""
    return "msgbatch_" + random_base62()


def new_request_id() -> str:
    """A fresh ``request-id`` header value."""
    return "req_" + random_base62()


@functools.lru_cache(maxsize=65_536)
def rfc3339(epoch_seconds: float) -> str:
    """RFC 3339 UTC timestamp with microseconds and a ``Z`` suffix."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
