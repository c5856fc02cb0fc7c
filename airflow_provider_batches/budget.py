"""A request budget per connection: every request of one connection in this process spends it.

The Batches API limits requests per minute per organisation (a token bucket, across all of its
endpoints). :class:`RequestBudget` is that bucket on the client side, sized by the connection's
``max_requests_per_minute`` extra, so that polls, creates and cancels of one connection together
stay under the limit instead of collecting 429s.

It schedules rather than counts: each request reserves the next free send time (GCRA, the
"virtual scheduling" form of a token bucket), so callers are served strictly in arrival order
(no waiter starves) and waiting is a plain sleep: ``time.sleep`` in worker threads,
``asyncio.sleep`` on any event loop. The lock is held for a few arithmetic operations only.

What the server says moves every queued reservation later, in order: a 429's ``retry-after``
pauses the whole connection, and ``anthropic-ratelimit-requests-remaining`` / ``-limit``, when a
response carries them, shrink what is left of the burst and the rate.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

from airflow_provider_batches.settings import ClientSettings

_LIMIT_HEADER = "anthropic-ratelimit-requests-limit"
_REMAINING_HEADER = "anthropic-ratelimit-requests-remaining"
#: Sends are spaced this much wider than the rate: the server's bucket refills from when our
#: first request *arrived*, so at an equal rate a request that travels faster than the first
#: one would find the bucket a few milliseconds short.
SPACING_MARGIN = 1.03
#: A pause asked by the server is honoured up to this long (a hostile retry-after is bounded).
MAX_PAUSE_SECONDS = 600.0


class RequestBudget:
    """Requests per minute for one connection, with a burst of one minute's worth.

    :param per_minute: Sustained rate; also the burst, as the API's bucket holds a minute.
    :param clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._configured = 0.0
        self._server_limit = math.inf
        self._interval = 0.0
        self._tolerance = 0.0
        self.configure(per_minute)
        self._next_at = clock()  # the theoretical send time of the next request (GCRA's TAT)
        self._paused_until = 0.0
        # Total seconds every queued reservation has been pushed back so far; a waiter adds
        # what grew since it reserved.
        self._shift = 0.0
        self.paused = 0  # server-asked pauses (429s) so far

    @property
    def per_minute(self) -> float:
        return min(self._configured, self._server_limit)

    def configure(self, per_minute: float) -> None:
        """Set the configured rate (the connection's extra may have changed)."""
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise ValueError(f"per_minute must be a positive number, got {per_minute!r}")
        with self._lock:
            if per_minute != self._configured:
                self._configured = per_minute
                self._rescale()

    def _rescale(self) -> None:
        rate = self.per_minute
        self._interval = 60.0 / rate * SPACING_MARGIN
        self._tolerance = (max(1.0, math.floor(rate)) - 1.0) * self._interval

    def _reserve(self) -> tuple[float, float]:
        """The caller's send time and the shift it was reserved under."""
        with self._lock:
            now = self._clock()
            due = max(self._next_at, now)
            start = max(now, due - self._tolerance, self._paused_until)
            self._next_at = max(due, start) + self._interval
            return start, self._shift

    def _remaining_wait(self, start: float, shift: float) -> tuple[float, float, float]:
        """(seconds still to wait, updated start, updated shift)."""
        with self._lock:
            start += self._shift - shift
            wait = max(start, self._paused_until) - self._clock()
            return wait, start, self._shift

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Block the calling thread until this request may be sent."""
        start, shift = self._reserve()
        while True:
            wait, start, shift = self._remaining_wait(start, shift)
            if wait <= 0:
                return
            sleep(wait)

    async def aacquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait, without blocking the event loop, until this request may be sent."""
        start, shift = self._reserve()
        while True:
            wait, start, shift = self._remaining_wait(start, shift)
            if wait <= 0:
                return
            await sleep(wait)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds``; every queued request moves back, keeping its order."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
        with self._lock:
            now = self._clock()
            until = now + seconds
            if until <= self._paused_until:
                return
            self._push_back(until - max(self._paused_until, now), now)
            self._paused_until = until

    def _push_back(self, seconds: float, now: float) -> None:
        self._shift += seconds
        self._next_at = max(self._next_at, now) + seconds

    def _cut_burst(self, remaining: int) -> None:
        """At most ``remaining`` sends before the server's bucket gains a token: the send after
        them waits at least one interval from now (this response is later than the server's
        count, so this errs on the safe side). Caller holds the lock."""
        now = self._clock()
        interval = self._interval
        latest_start = self._next_at - interval - self._tolerance
        if (
            latest_start > now
        ):  # reservations are waiting: the first of them starts in (now, now + T]
            first_waiting = latest_start - math.floor((latest_start - now) / interval) * interval
            if first_waiting <= now:
                first_waiting += interval
            push = now + interval - (first_waiting + remaining * interval)
        else:
            push = now + self._tolerance - (remaining - 1) * interval - max(self._next_at, now)
        if push > 0:
            self._push_back(push, now)

    def observe(self, status_code: int, headers: Mapping[str, str]) -> None:
        """Learn from one response: a 429's ``retry-after``, and the rate-limit headers."""
        if status_code == 429:
            retry_after = _retry_after(headers)
            if retry_after is not None:
                self.paused += 1
                self.pause(retry_after)
        limit = _number(headers.get(_LIMIT_HEADER))
        remaining = _number(headers.get(_REMAINING_HEADER))
        if limit is None and remaining is None:
            return
        with self._lock:
            if limit is not None and limit >= 1 and limit < self._server_limit:
                self._server_limit = limit
                self._rescale()
            if remaining is not None:
                self._cut_burst(math.floor(remaining))


_budgets: dict[tuple[str, str], RequestBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(settings: ClientSettings) -> RequestBudget:
    """The process-wide budget of this connection (same id and base URL), created on first use."""
    key = (settings.conn_id, settings.base_url)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = _budgets[key] = RequestBudget(settings.max_requests_per_minute)
    budget.configure(settings.max_requests_per_minute)
    return budget


def spend(settings: ClientSettings) -> None:
    """Before each attempt of a sync request: wait for the connection's budget."""
    budget_for(settings).acquire()


async def aspend(settings: ClientSettings) -> None:
    """Before each attempt of an async request: wait for the budget without blocking the loop."""
    await budget_for(settings).aacquire()


def observe(settings: ClientSettings, status_code: int, headers: Mapping[str, str]) -> None:
    """After each response: let a 429 or the rate-limit headers adjust the budget."""
    budget_for(settings).observe(status_code, headers)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    return _number(headers.get("retry-after"))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
