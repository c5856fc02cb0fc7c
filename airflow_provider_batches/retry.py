"""When to send a request again, and how long to wait first."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status_code: int, headers: Mapping[str, str]) -> bool:
    """The API's own policy: ``x-should-retry`` wins, else 408/409/429 and every 5xx."""
    override = headers.get("x-should-retry", "").strip().lower()
    if override == "true":
        return True
    if override == "false":
        return False
    return status_code in RETRYABLE_STATUSES or status_code >= 500


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's requested wait from ``retry-after-ms`` or ``retry-after``, if any."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = -1.0
        if value >= 0 and value == value:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        value = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, value)
    return value if value >= 0 and value == value and value != float("inf") else None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, deferring to the server's ``retry-after`` up to a cap."""

    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(
        self,
        attempt: int,
        headers: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        server_wait = retry_after_seconds(headers) if headers else None
        if server_wait is not None:
            return min(server_wait, self.max_retry_after)
        base = min(self.initial_delay * (2.0**attempt), self.max_delay)
        source: random.Random = rng or _RANDOM
        return base * (1 - 0.25 * source.random())


DEFAULT_BACKOFF = Backoff()
_RANDOM = random.Random()
