"""The fake's rate-limit mode: one token bucket of requests per API key, as the real API has.

Off until :meth:`RateLimiter.configure` sets requests per minute. When on, every API answer
carries ``anthropic-ratelimit-requests-limit``, ``-remaining`` and ``-reset`` (RFC 3339: when
the bucket will be full again), unless told not to (whether the real batch endpoints send them
is not documented), and a request that finds the bucket empty gets a 429 ``rate_limit_error``
with ``retry-after`` (whole seconds until one token is back). A ``burst`` smaller than a
minute's worth enforces the rate over a shorter window: ``burst=per_minute / 60`` is "60 a
minute as one a second".
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets keyed by API key; thread-safe (the test thread reads the counters)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._per_minute: float | None = None
        self._burst = 0.0
        self._limit_headers = True
        self._buckets: dict[str, _Bucket] = {}
        self._rejected = 0

    def configure(
        self, per_minute: float | None, burst: float | None = None, limit_headers: bool = True
    ) -> None:
        """Enforce ``per_minute`` requests per key (None turns the mode off).

        ``burst`` is the bucket's size, default ``per_minute`` (a full minute's worth); a
        smaller one enforces the limit over a shorter window, as the real API may.
        ``limit_headers=False`` leaves out the ``anthropic-ratelimit-requests-*`` headers (a
        429 still carries ``retry-after``).
        """
        if per_minute is not None and (not math.isfinite(per_minute) or per_minute <= 0):
            raise ValueError(f"per_minute must be a positive number, got {per_minute!r}")
        size = per_minute if burst is None else burst
        if size is not None and (not math.isfinite(size) or size < 1):
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        with self._lock:
            self._per_minute = per_minute
            self._burst = float(size or 0.0)
            self._limit_headers = limit_headers
            self._buckets.clear()

    @property
    def enabled(self) -> bool:
        return self._per_minute is not None

    def take(self, key: str) -> tuple[bool, dict[str, str]]:
        """Spend one token of ``key``'s bucket: (allowed, headers to add to the answer)."""
        with self._lock:
            per_minute = self._per_minute
            if per_minute is None:
                return True, {}
            now = self._clock()
            rate = per_minute / 60.0
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            else:
                self._rejected += 1
            full_at = now + (self._burst - bucket.tokens) / rate
            headers: dict[str, str] = {}
            if self._limit_headers:
                headers = {
                    "anthropic-ratelimit-requests-limit": f"{per_minute:g}",
                    "anthropic-ratelimit-requests-remaining": str(int(bucket.tokens)),
                    "anthropic-ratelimit-requests-reset": _rfc3339(full_at),
                }
            if not allowed:
                headers["retry-after"] = str(max(1, math.ceil((1.0 - bucket.tokens) / rate)))
            return allowed, headers

    @property
    def rejected(self) -> int:
        """429s answered so far."""
        with self._lock:
            return self._rejected

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._rejected = 0


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")
