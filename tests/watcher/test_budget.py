"""RequestBudget: rate, burst, FIFO order, shared pauses, header tightening, thread safety.

Time is a fake clock advanced by the sleeps the budget asks for, so every assertion is about
counts and orderings, never about how long something took.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sys
import threading

import pytest

from airflow_provider_batches.budget import SPACING_MARGIN, RequestBudget, budget_for
from airflow_provider_batches.settings import ClientSettings


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

    async def run_virtual_time(self, tasks: list[asyncio.Task[None]]) -> None:
        """Advance the clock from one wake-up to the next until every task is done."""
        while not all(task.done() for task in tasks):
            for _ in range(5):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self.sleeping:
                wake, _, future = heapq.heappop(self.sleeping)
                self.now = max(self.now, wake)
                future.set_result(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: One interval of a 60-per-minute budget.
T = SPACING_MARGIN


def send_times(budget: RequestBudget, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        budget.acquire(sleep=clock.sleep)
        times.append(round(clock.now - 1000.0, 6))
    return times


def test_a_minute_of_burst_then_one_request_per_interval(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    times = send_times(budget, clock, 63)
    assert times[:60] == [0.0] * 60
    assert times[60:] == pytest.approx([T, 2 * T, 3 * T])


def test_idle_time_refills_the_burst_but_never_beyond_a_minute(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    send_times(budget, clock, 60)
    clock.now += 3600.0
    times = send_times(budget, clock, 61)
    assert times.count(times[0]) == 60
    assert times[60] == pytest.approx(times[0] + T)


def test_a_pause_holds_back_every_queued_request_in_order(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    send_times(budget, clock, 60)  # burst spent: the next ones are spaced 1 s apart
    sent: list[tuple[int, float]] = []

    async def waiter(index: int) -> None:
        await budget.aacquire(sleep=clock.asleep)
        sent.append((index, clock.now - 1000.0))

    async def scenario() -> None:
        tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
        await asyncio.sleep(0)  # all five reserved their slots: +1 s, +2 s, ... +5 s
        budget.pause(30.0)
        await clock.run_virtual_time(tasks)

    asyncio.run(scenario())
    # The pause moved every queued slot back by 30 s, keeping the order and the spacing.
    assert [index for index, _ in sent] == [0, 1, 2, 3, 4]
    assert [at for _, at in sent] == pytest.approx([30.0 + (i + 1) * T for i in range(5)])


def test_a_pause_delays_the_next_send_by_retry_after(clock: FakeClock) -> None:
    budget = RequestBudget(600, clock=clock)
    budget.observe(429, {"retry-after": "7"})
    assert send_times(budget, clock, 1) == [7.0]
    assert budget.paused == 1
    budget.observe(429, {"retry-after-ms": "1500"})
    assert send_times(budget, clock, 1) == [8.5]


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
    assert send_times(budget, clock, 1) == [600.0]


def test_remaining_header_cuts_the_burst(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {"anthropic-ratelimit-requests-remaining": "2"})
    assert send_times(budget, clock, 4) == pytest.approx([0.0, 0.0, T, 2 * T])


def test_limit_header_lowers_the_rate_and_never_raises_it(clock: FakeClock) -> None:
    budget = RequestBudget(60, clock=clock)
    budget.observe(200, {"anthropic-ratelimit-requests-limit": "30"})
    assert budget.per_minute == 30
    budget.observe(200, {"anthropic-ratelimit-requests-limit": "4000"})
    assert budget.per_minute == 30
    times = send_times(budget, clock, 31)
    assert times[30] == pytest.approx(2 * T)


def test_sync_threads_and_async_tasks_share_one_schedule() -> None:
    """Thread safety: 8 threads and 200 tasks reserve at once; every reservation is distinct
    and the schedule advanced by exactly one interval per request."""
    clock = FakeClock()
    budget = RequestBudget(1.0, clock=clock)  # no burst: each request one minute later
    starts: list[float] = []
    lock = threading.Lock()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to expose races
    try:

        def worker() -> None:
            for _ in range(500):
                start, _shift = budget._reserve()
                with lock:
                    starts.append(start)

        async def tasks() -> None:
            async def one() -> None:
                start, _shift = budget._reserve()
                await asyncio.sleep(0)
                with lock:
                    starts.append(start)

            await asyncio.gather(*(one() for _ in range(200)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        asyncio.run(tasks())
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert len(starts) == 4200
    assert sorted(starts) == pytest.approx([1000.0 + 60.0 * T * i for i in range(4200)])


def test_one_budget_per_connection_shared_by_every_caller() -> None:
    settings = ClientSettings(conn_id="budget_share", base_url="http://127.0.0.1:1", api_key="k")
    assert budget_for(settings).per_minute == 50
    other = ClientSettings(conn_id="budget_other", base_url="http://127.0.0.1:1", api_key="k")
    assert budget_for(settings) is budget_for(settings)
    assert budget_for(settings) is not budget_for(other)
    faster = ClientSettings(
        conn_id="budget_share",
        base_url="http://127.0.0.1:1",
        api_key="k2",
        max_requests_per_minute=1000,
    )
    assert budget_for(faster) is budget_for(settings)
    assert budget_for(faster).per_minute == 1000


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan")])
def test_budget_rate_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        RequestBudget(value)
