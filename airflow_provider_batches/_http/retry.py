"""When to send a request again, and how long to wait first."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: Answers that prove the server refused the request without acting on it (rate limited,
#: overloaded): the only statuses after which a non-idempotent request (create) is resent.
REFUSAL_STATUSES = frozenset({429, 529})


def _should_retry_header(headers: Mapping[str, str]) -> bool | None:
    override = headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(override)


def is_retryable_status(status_code: int, headers: Mapping[str, str]) -> bool:
    """The API's own policy: ``x-should-retry`` wins, else 408/409/429 and every 5xx."""
    override = _should_retry_header(headers)
    if override is not None:
        return override
    return status_code in RETRYABLE_STATUSES or status_code >= 500


def is_refusal_status(status_code: int, headers: Mapping[str, str]) -> bool:
    """Whether a non-idempotent request may be resent: 429 or 529, unless ``x-should-retry``
    says false. A 5xx (a gateway's 504 included) may come after the server acted on it."""
    return status_code in REFUSAL_STATUSES and _should_retry_header(headers) is not False


def leaves_outcome_open(status_code: int) -> bool:
    """A 5xx other than 529 may come after the server acted (a gateway's 504 above all)."""
    return status_code >= 500 and status_code not in REFUSAL_STATUSES


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
