"""RequestBudget: rate, a burst of under a second's worth (late arrivals allowed for), FIFO
order, shared pauses, the server's rate-limit headers followed both ways (hostile values
included), thread safety.

Time is a fake clock advanced by the sleeps the budget asks for, so every assertion is about
counts and orderings, never about how long something took.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.budget import (
    JITTER_ALLOWANCE_SECONDS,
    LIMIT_HOLD_SECONDS,
    MAX_PAUSE_SECONDS,
    SPACING_MARGIN,
    RequestBudget,
    budget_for,
    burst_size,
)

pytestmark = pytest.mark.matrix

LIMIT = "anthropic-ratelimit-requests-limit"
REMAINING = "anthropic-ratelimit-requests-remaining"
RESET = "anthropic-ratelimit-requests-reset"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeping: list[tuple[float, int, asyncio.Future[None]]] = []
        self.sequence = itertools.count()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        """Virtual time: the sleeper wakes when ``run_virtual_time`` reaches its wake-up time."""
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.sleeping, (self.now + seconds, next(self.sequence), future))
        await future

    async def run_virtual_time(self, tasks: list[asyncio.Task[None]], until: float = 1e9) -> None:
        """Advance the clock from one wake-up to the next until every task is done (or the
        clock would pass ``until``)."""
        while not all(task.done() for task in tasks):
            for _ in range(5):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if not self.sleeping or self.sleeping[0][0] > until:
                return
            wake, _, future = heapq.heappop(self.sleeping)
            self.now = max(self.now, wake)
            if not future.done():
                future.set_result(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def interval(per_minute: float) -> float:
    return 60.0 / per_minute * SPACING_MARGIN


T600 = interval(600)


def send_times(budget: RequestBudget, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        budget.acquire(sleep=clock.sleep)
        times.append(round(clock.now - 1000.0, 6))
    return times


def server_refusals(sends: list[float], per_minute: float) -> int:
    """429s a server would answer that enforces ``per_minute`` as a token bucket holding one
    second's worth (at least one request), full at the start."""
    capacity = max(1.0, per_minute / 60.0)
    tokens, last, refused = capacity, sends[0] if sends else 0.0, 0
    for at in sends:
        tokens = min(capacity, tokens + (at - last) * per_minute / 60.0)
        last = at
        if tokens >= 1.0 - 1e-9:
            tokens -= 1.0
        else:
            refused += 1
    return refused


@pytest.mark.parametrize(
    ("per_minute", "burst"), [(30, 1), (50, 1), (60, 1), (120, 1), (600, 7), (4000, 50)]
)
def test_under_a_seconds_worth_at_once_then_one_request_per_interval(
    clock: FakeClock, per_minute: float, burst: int
) -> None:
    """The burst is a second's worth less what the rate refills in the jitter allowance (a
    quarter of a second), at least one."""
    budget = RequestBudget(per_minute, clock=clock)
    times = send_times(budget, clock, burst + 3)
    assert times[:burst] == [0.0] * burst
    assert times[burst:] == pytest.approx([interval(per_minute) * i for i in (1, 2, 3)])


def test_idle_time_refills_the_burst_but_never_beyond_it(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    send_times(budget, clock, 7)
    clock.now += 3600.0
    times = send_times(budget, clock, 8)
    assert times.count(times[0]) == 7
    assert times[7] == pytest.approx(times[0] + T600)


def test_a_burst_that_reaches_the_server_late_finds_tokens_for_the_requests_after_it(
    clock: FakeClock,
) -> None:
    """The whole first burst is held up almost the full jitter allowance on its way, the
    requests after it arrive on time: a server enforcing the rate over one second still
    accepts them all."""
    budget = RequestBudget(600, clock=clock)
    sends = send_times(budget, clock, 20)
    late = JITTER_ALLOWANCE_SECONDS * 0.99
    arrivals = sorted(at + late if at == sends[0] else at for at in sends)
    assert server_refusals(arrivals, 600) == 0


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.floats(60.0 / (1.0 - JITTER_ALLOWANCE_SECONDS), 5000.0, allow_nan=False),
    count=st.integers(1, 200),
    data=st.data(),
)
def test_no_429_when_requests_reach_the_server_up_to_the_jitter_allowance_late(
    per_minute: float, count: int, data: st.DataObject
) -> None:
    """Each request is delayed on its way by any time up to the allowance, so arrivals come
    out of step and out of order: the server, enforcing the configured rate over one second,
    still refuses none. (Below 80 a minute the burst is one request and the 3 % spacing is the
    only margin.)"""
    clock = FakeClock()
    budget = RequestBudget(per_minute, clock=clock)
    sends = send_times(budget, clock, count)
    delays = data.draw(
        st.lists(
            st.floats(0.0, JITTER_ALLOWANCE_SECONDS, allow_nan=False),
            min_size=count,
            max_size=count,
        )
    )
    arrivals = sorted(at + delay for at, delay in zip(sends, delays, strict=True))
    assert server_refusals(arrivals, per_minute) == 0


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.one_of(st.integers(1, 5000).map(float), st.floats(1.0, 5000.0, allow_nan=False)),
    groups=st.lists(
        st.tuples(st.floats(0.0, 5.0, allow_nan=False), st.integers(1, 150)),
        min_size=1,
        max_size=6,
    ),
)
def test_no_429_from_a_server_enforcing_the_configured_rate_over_one_second(
    per_minute: float, groups: list[tuple[float, int]]
) -> None:
    """Requests in groups (any size) after idle gaps (any length): the sends never exceed a
    token bucket of the configured rate that holds only a second's worth."""
    clock = FakeClock()
    budget = RequestBudget(per_minute, clock=clock)
    sends: list[float] = []
    for gap, count in groups:
        clock.now += gap
        for _ in range(count):
            budget.acquire(sleep=clock.sleep)
            sends.append(clock.now)
    assert server_refusals(sends, per_minute) == 0
    assert max(sends.count(at) for at in sends) <= burst_size(per_minute)


def test_waiters_are_served_in_arrival_order(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    sent: list[int] = []

    async def waiter(index: int) -> None:
        await budget.aacquire(sleep=clock.asleep)
        sent.append(index)

    async def scenario() -> None:
        tasks = []
        for index in range(20):
            tasks.append(asyncio.create_task(waiter(index)))
            await asyncio.sleep(0)
        await clock.run_virtual_time(tasks)

    asyncio.run(scenario())
    assert sent == list(range(20))


def test_a_pause_holds_back_every_queued_request_in_order(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    send_times(budget, clock, 1)  # burst spent: the next ones are spaced one interval apart
    sent: list[tuple[int, float]] = []

    async def waiter(index: int) -> None:
        await budget.aacquire(sleep=clock.asleep)
        sent.append((index, clock.now - 1000.0))

    async def scenario() -> None:
        tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
        await asyncio.sleep(0)  # all five took their turn
        budget.pause(30.0)
        await clock.run_virtual_time(tasks)

    asyncio.run(scenario())
    # After the pause: one request, then the rate again, in the order they came.
    assert [index for index, _ in sent] == [0, 1, 2, 3, 4]
    assert [at for _, at in sent] == pytest.approx([30.0 + i * interval(60) for i in range(5)])


def test_a_pause_delays_the_next_send_by_retry_after(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(429, {"retry-after": "7"})
    assert send_times(budget, clock, 2) == pytest.approx([7.0, 7.0 + interval(600)])
    assert budget.paused == 1
    budget.observe(429, {"retry-after-ms": "1500"})
    assert send_times(budget, clock, 1) == pytest.approx([7.0 + interval(600) + 1.5])


@pytest.mark.parametrize("headers", [{}, {"retry-after": "soon"}, {"retry-after": "-3"}])
def test_a_429_without_a_usable_retry_after_does_not_pause(
    clock: FakeClock, headers: dict[str, str]
) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(429, headers)
    assert send_times(budget, clock, 1) == [0.0]


def test_a_hostile_retry_after_is_bounded(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(429, {"retry-after": "1e12"})
    assert send_times(budget, clock, 1) == [MAX_PAUSE_SECONDS]


def test_remaining_header_cuts_the_burst(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(200, {REMAINING: "2"})
    assert send_times(budget, clock, 4) == pytest.approx([0.0, 0.0, T600, 2 * T600])


def test_remaining_header_never_adds_to_the_burst(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(200, {REMAINING: "1000000"})
    times = send_times(budget, clock, 8)
    assert times[:7] == [0.0] * 7
    assert times[7] == pytest.approx(T600)


def test_the_limit_header_is_followed_down_and_back_up(clock: FakeClock) -> None:
    """One response saying 1 a minute does not throttle the connection once a later one
    says more; and no response raises it above the configured maximum."""
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {LIMIT: "1"})
    assert budget.per_minute == 1
    budget.observe(200, {LIMIT: "30"})
    assert budget.per_minute == 30
    budget.observe(200, {LIMIT: "4000"})
    assert budget.per_minute == 60
    start = clock.now - 1000.0
    assert send_times(budget, clock, 3) == pytest.approx(
        [start, start + interval(60), start + 2 * interval(60)]
    )


def test_queued_requests_follow_a_raised_limit(clock: FakeClock) -> None:
    """Waits queued while the server said 1 a minute go at the new rate as soon as a
    response says 60, not a minute apart."""
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {LIMIT: "1"})
    send_times(budget, clock, 1)
    sent: list[float] = []

    async def waiter() -> None:
        await budget.aacquire(sleep=clock.asleep)
        sent.append(clock.now - 1000.0)

    async def scenario() -> None:
        tasks = [asyncio.create_task(waiter()) for _ in range(3)]
        await clock.run_virtual_time(tasks, until=1005.0)
        budget.observe(200, {LIMIT: "60"})
        await clock.run_virtual_time(tasks)

    asyncio.run(scenario())
    assert len(sent) == 3
    assert sent[-1] < 10.0


def test_a_stated_limit_lapses_unless_restated(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {LIMIT: "1"})
    clock.now += LIMIT_HOLD_SECONDS / 2
    budget.observe(200, {LIMIT: "1"})
    clock.now += LIMIT_HOLD_SECONDS * 0.9
    assert budget.per_minute == 1
    clock.now += LIMIT_HOLD_SECONDS * 0.2
    assert budget.per_minute == 60


@pytest.mark.parametrize(
    "value", ["0", "-5", "0.5", "nan", "NaN", "inf", "-inf", "1e400", "", "fast", "1,2"]
)
def test_a_limit_that_cannot_be_followed_is_ignored(clock: FakeClock, value: str) -> None:
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {LIMIT: "30"})
    budget.observe(200, {LIMIT: value})
    assert budget.per_minute == 30


@pytest.mark.parametrize(
    "reset", ["2098-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "soon", "", "9" * 400]
)
def test_the_reset_header_holds_nothing_back(clock: FakeClock, reset: str) -> None:
    with_reset, without = RequestBudget(600, clock=clock), RequestBudget(600, clock=clock)
    with_reset.observe(200, {REMAINING: "3", RESET: reset})
    without.observe(200, {REMAINING: "3"})
    start = clock.now
    expected = send_times(without, clock, 5)
    clock.now = start
    assert send_times(with_reset, clock, 5) == expected


def test_a_cancelled_wait_costs_the_others_nothing(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    send_times(budget, clock, 1)
    sent: list[float] = []

    async def waiter() -> None:
        await budget.aacquire(sleep=clock.asleep)
        sent.append(clock.now - 1000.0)

    async def scenario() -> None:
        first, cancelled, last = (asyncio.create_task(waiter()) for _ in range(3))
        await asyncio.sleep(0)
        cancelled.cancel()
        await clock.run_virtual_time([first, last])

    asyncio.run(scenario())
    assert sent == pytest.approx([interval(60), 2 * interval(60)])


HEADER_TEXT = st.one_of(
    st.sampled_from(["0", "-1", "0.5", "1", "2", "59", "60", "61", "1e9", "nan", "inf", "x", ""]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10, 10_000).map(str),
    st.text(max_size=12),
)
RESPONSE_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        LIMIT: HEADER_TEXT,
        REMAINING: HEADER_TEXT,
        RESET: st.one_of(HEADER_TEXT, st.datetimes().map(lambda d: d.isoformat() + "Z")),
        "retry-after": HEADER_TEXT,
    },
)


def _valid_limit(headers: dict[str, str]) -> float | None:
    try:
        value = float(headers[LIMIT])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 1 else None


class HostileServerMachine(RuleBasedStateMachine):
    """Any sequence of responses (any header values, 429s, time passing) and requests: the
    budget follows the latest valid limit while it holds, never exceeds the configured rate
    over one-second windows, and never stalls beyond the longest pause a server may ask."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.configured = 0.0
        self.budget: RequestBudget | None = None
        self.sends: list[float] = []
        self.stated: tuple[float, float] | None = None  # (limit, when stated)

    @precondition(lambda self: self.budget is None)
    @rule(per_minute=st.sampled_from([1.0, 30.0, 50.0, 60.0, 90.0, 600.0, 4000.0]))
    def configure(self, per_minute: float) -> None:
        self.configured = per_minute
        self.budget = RequestBudget(per_minute, clock=self.clock)

    @precondition(lambda self: self.budget is not None)
    @rule(status=st.sampled_from([200, 200, 429]), headers=RESPONSE_HEADERS)
    def respond(self, status: int, headers: dict[str, str]) -> None:
        assert self.budget is not None
        self.budget.observe(status, headers)
        limit = _valid_limit(headers)
        if limit is not None:
            self.stated = (limit, self.clock.now)

    @precondition(lambda self: self.budget is not None)
    @rule(seconds=st.floats(0.0, 200.0))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.budget is not None)
    @rule(count=st.integers(1, 5))
    def send(self, count: int) -> None:
        assert self.budget is not None
        slowest = min(self.configured, 1.0)  # a stated limit below 1 a minute is ignored
        for _ in range(count):
            asked = self.clock.now
            self.budget.acquire(sleep=self.clock.sleep)
            waited = self.clock.now - asked
            # Never longer than the longest pause plus one interval at the slowest rate.
            assert waited <= MAX_PAUSE_SECONDS + interval(slowest) + 1e-6
            self.sends.append(self.clock.now)

    @invariant()
    def follows_the_latest_valid_limit(self) -> None:
        if self.budget is None:
            return
        expected = self.configured
        if self.stated is not None and self.clock.now < self.stated[1] + LIMIT_HOLD_SECONDS:
            expected = min(self.configured, self.stated[0])
        assert self.budget.per_minute == expected

    @invariant()
    def never_above_the_configured_rate(self) -> None:
        assert server_refusals(self.sends, self.configured) == 0


TestHostileServer = HostileServerMachine.TestCase
TestHostileServer.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_tickets_are_distinct_under_threads_and_tasks() -> None:
    """Thread safety: 8 threads and 200 tasks take turns at once; every turn is distinct."""
    budget = RequestBudget(1.0, clock=FakeClock())
    tickets: list[int] = []
    lock = threading.Lock()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose races
    try:

        def worker() -> None:
            for _ in range(500):
                ticket = budget._take_ticket()
                with lock:
                    tickets.append(ticket)

        async def tasks() -> None:
            async def one() -> None:
                ticket = budget._take_ticket()
                await asyncio.sleep(0)
                with lock:
                    tickets.append(ticket)

            await asyncio.gather(*(one() for _ in range(200)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        asyncio.run(tasks())
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert sorted(tickets) == list(range(4200))


def test_one_budget_per_connection_shared_by_every_caller() -> None:
    settings_ = ClientSettings(conn_id="budget_share", base_url="http://127.0.0.1:1", api_key="k")
    assert budget_for(settings_).per_minute == 50
    other = ClientSettings(conn_id="budget_other", base_url="http://127.0.0.1:1", api_key="k")
    assert budget_for(settings_) is budget_for(settings_)
    assert budget_for(settings_) is not budget_for(other)
    faster = ClientSettings(
        conn_id="budget_share",
        base_url="http://127.0.0.1:1",
        api_key="k2",
        max_requests_per_minute=1000,
    )
    assert budget_for(faster) is budget_for(settings_)
    assert budget_for(faster).per_minute == 1000


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan")])
def test_budget_rate_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        RequestBudget(value)
