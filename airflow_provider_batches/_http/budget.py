"""A request budget per connection: every request of one connection in this process spends it.

The Batches API limits requests per minute per organisation with a token bucket across all of
its endpoints, and may enforce it over windows much shorter than a minute (60 a minute as one a
second). :class:`RequestBudget` is that bucket on the client side: it refills at the
connection's ``max_requests_per_minute`` (3 % slower) and holds one second's worth less what
that rate refills in ``JITTER_ALLOWANCE_SECONDS`` (at least one request), so polls, creates and
cancels of one connection together never burst more than such a server accepts, even when
some of them reach it later than the budget let them go.

Callers are served strictly in arrival order: each takes a ticket, and tickets are let through
one token each, in ticket order. Waiting is a plain sleep (``time.sleep`` in worker threads,
``asyncio.sleep`` on any event loop), in slices of at most a second, so that a waiter follows a
rate that changed while it slept. The lock is held for a few arithmetic operations only.

What the server says applies to every queued request, in order:

- a 429's ``retry-after`` pauses the whole connection; after the pause one request goes, then
  the rate again;
- ``anthropic-ratelimit-requests-limit`` sets the rate, up or down, never above the configured
  maximum. The latest valid value holds until a response states another, or lapses
  ``LIMIT_HOLD_SECONDS`` after it was last stated: one stray header cannot throttle a
  connection for good. A value below 1, not finite or not a number is ignored;
- ``anthropic-ratelimit-requests-remaining`` lowers what is left of the burst (never raises it).

``anthropic-ratelimit-requests-reset`` (when the server's bucket is full again) holds nothing
back: after ``remaining: 0`` the next request already waits a full interval, by which time a
token bucket has one token again; a fixed-window server answers 429 with ``retry-after``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping

from airflow_provider_batches._connection.settings import ClientSettings

_LIMIT_HEADER = "anthropic-ratelimit-requests-limit"
_REMAINING_HEADER = "anthropic-ratelimit-requests-remaining"
#: Sends are spaced this much wider than the rate: the server's bucket refills from when our
#: first request *arrived*, so at an equal rate a request that travels faster than the first
#: one would find the bucket a few milliseconds short.
SPACING_MARGIN = 1.03
#: A pause asked by the server is honoured up to this long (a hostile retry-after is bounded).
MAX_PAUSE_SECONDS = 600.0
#: A request may reach the server up to this much later than the budget let it go (its thread
#: or task waiting for the interpreter, a garbage collection, a new connection), while a later
#: one arrives on time: the burst holds back what the rate refills in this time, so such
#: requests still find a token in a server's bucket of one second's worth.
JITTER_ALLOWANCE_SECONDS = 0.25
#: A rate the server stated lapses this long after a response last stated it.
LIMIT_HOLD_SECONDS = 120.0
#: Longest single sleep of a waiter: it then looks at the schedule again.
RECHECK_SECONDS = 1.0
#: Rounding allowance: a token this close to whole counts as whole, and a waiter never sleeps
#: less than MIN_SLEEP_SECONDS (a shorter sleep might not move a float clock at all).
_TOKEN_ROUNDING = 1e-9
MIN_SLEEP_SECONDS = 1e-6


def burst_size(per_minute: float) -> int:
    """Requests let out at once: one second's worth less the jitter allowance, at least one."""
    return max(1, math.floor(per_minute / 60.0 * (1.0 - JITTER_ALLOWANCE_SECONDS)))


class RequestBudget:
    """Requests per minute for one connection, with a burst of under one second's worth.

    :param per_minute: The configured rate, and the most the server's headers can raise it to.
    :param clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise ValueError(f"per_minute must be a positive number, got {per_minute!r}")
        self._lock = threading.Lock()
        self._clock = clock
        self._configured = per_minute
        self._server_limit: float | None = None  # the rate the server last stated
        self._server_limit_lapses = -math.inf
        self._tokens = float(burst_size(per_minute))
        self._updated = clock()  # the tokens are counted up to this time
        self._paused_until = -math.inf
        self._issued = 0  # tickets taken so far
        self._granted = 0  # tickets let through so far (always the oldest ones)
        self._abandoned: set[int] = set()  # tickets whose callers left before their turn
        self.paused = 0  # server-asked pauses (429s) so far

    @property
    def per_minute(self) -> float:
        """The rate in force: the configured one, or lower while the server says so."""
        with self._lock:
            self._refill(self._clock())
            return self._rate()

    def configure(self, per_minute: float) -> None:
        """Set the configured rate (the connection's extra may have changed)."""
        if not math.isfinite(per_minute) or per_minute <= 0:
            raise ValueError(f"per_minute must be a positive number, got {per_minute!r}")
        with self._lock:
            if per_minute != self._configured:
                self._refill(self._clock())
                self._configured = per_minute
                self._clamp_tokens()

    # ---- the bucket (callers hold the lock) ------------------------------------------------

    def _rate(self) -> float:
        limit = self._server_limit
        return self._configured if limit is None else min(self._configured, limit)

    def _per_second(self) -> float:
        return self._rate() / 60.0 / SPACING_MARGIN

    def _clamp_tokens(self) -> None:
        self._tokens = min(self._tokens, float(burst_size(self._rate())))

    def _refill(self, now: float) -> None:
        """Count the tokens up to ``now``; a server-stated rate that lapsed meanwhile applies
        up to its lapse time only."""
        if self._server_limit is not None and self._server_limit_lapses <= now:
            self._add_tokens(self._server_limit_lapses)
            self._server_limit = None
        self._add_tokens(now)

    def _add_tokens(self, until: float) -> None:
        start = max(self._updated, self._paused_until)  # nothing accrues during a pause
        if until > start:
            capacity = float(burst_size(self._rate()))
            self._tokens = min(capacity, self._tokens + (until - start) * self._per_second())
        self._updated = max(self._updated, until)

    def _wait(self, ticket: int) -> float:
        """Seconds until ``ticket`` may go (<= 0: now), letting through the tickets before it."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if now >= self._paused_until:
                while self._granted <= ticket:
                    if self._granted in self._abandoned:
                        self._abandoned.discard(self._granted)
                    elif self._tokens >= 1.0 - _TOKEN_ROUNDING:
                        self._tokens = max(0.0, self._tokens - 1.0)
                    else:
                        break
                    self._granted += 1
            if ticket < self._granted:
                return self._paused_until - now
            # An estimate: the waiter looks again when it wakes.
            missing = (ticket - self._granted + 1) - self._tokens
            wait = max(now, self._paused_until) - now + max(0.0, missing) / self._per_second()
            return max(wait, MIN_SLEEP_SECONDS)

    def _take_ticket(self) -> int:
        with self._lock:
            ticket = self._issued
            self._issued += 1
            return ticket

    def _abandon(self, ticket: int) -> None:
        """The caller of ``ticket`` left (cancelled) without sending: its turn costs nothing."""
        with self._lock:
            if ticket >= self._granted:
                self._abandoned.add(ticket)
            else:  # let through, never sent: the token is still there
                self._tokens = min(float(burst_size(self._rate())), self._tokens + 1.0)

    # ---- waiting ---------------------------------------------------------------------------

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Block the calling thread until this request may be sent."""
        ticket = self._take_ticket()
        try:
            while (wait := self._wait(ticket)) > 0:
                sleep(min(wait, RECHECK_SECONDS))
        except BaseException:
            self._abandon(ticket)
            raise

    async def aacquire(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait, without blocking the event loop, until this request may be sent."""
        ticket = self._take_ticket()
        try:
            while (wait := self._wait(ticket)) > 0:
                await sleep(min(wait, RECHECK_SECONDS))
        except BaseException:
            self._abandon(ticket)
            raise

    # ---- what the server says --------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds``, then one request, then the rate again; every queued
        request keeps its place."""
        seconds = min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
        with self._lock:
            self._pause(self._clock(), seconds)

    def _pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until <= self._paused_until:
            return
        self._refill(now)
        accrued = (until - max(now, self._updated)) * self._per_second()
        self._tokens = min(1.0, self._tokens + max(0.0, accrued))
        self._paused_until = self._updated = until

    def observe(self, status_code: int, headers: Mapping[str, str]) -> None:
        """Learn from one response: a 429's ``retry-after``, and the rate-limit headers."""
        retry_after = _retry_after(headers) if status_code == 429 else None
        limit = _number(headers.get(_LIMIT_HEADER))
        if limit is not None and limit < 1:
            limit = None  # a rate of nothing cannot be followed: nothing would ever be sent
        remaining = _number(headers.get(_REMAINING_HEADER))
        if retry_after is None and limit is None and remaining is None:
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            if limit is not None:
                self._server_limit = limit
                self._server_limit_lapses = now + LIMIT_HOLD_SECONDS
                self._clamp_tokens()
            if remaining is not None:
                self._tokens = min(self._tokens, float(math.floor(remaining)))
            if retry_after is not None:
                self.paused += 1
                self._pause(now, min(retry_after, MAX_PAUSE_SECONDS))


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
