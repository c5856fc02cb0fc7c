"""What a wait keeps alive between two polls: a triggerer may hold thousands of them.

Counted as the GC counts (objects it tracks), after a full collection, with the triggers run
as the triggerer runs them: one task each, consuming ``run()``. The target is at most 20
objects a wait, the task machinery included (``benchmarks/trigger_scale.py`` measures the same
at N = 10,000).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from watcher_helpers import run_triggers

from airflow_provider_batches.models import MessageBatch, RequestCounts
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers._watcher import watcher_for
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix

WAITS = 400
MAX_OBJECTS_PER_WAIT = 20


@pytest.fixture
def uncaptured_logging() -> Iterator[None]:
    """Log records pytest captures stay alive until the test ends and would be counted: the
    progress lines are written, but not kept."""
    root = logging.getLogger()
    capturing = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    for handler in capturing:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in capturing:
            root.addHandler(handler)


async def _consume(trigger: MessageBatchTrigger) -> None:
    async for _event in trigger.run():
        return


async def _all_waiting_for_their_second_poll(conn: str, count: int) -> None:
    """Every wait had its first answer and waits for the next poll, due in about an hour."""
    watcher = watcher_for(conn)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiters = [w for ws in watcher._waiting.values() for w in ws]
        if len(waiters) == count and all(w.due > time.monotonic() + 600 for w in waiters):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the waits did not all get their first answer within 60 s")


def _types(objects: list[Any]) -> Counter[str]:
    return Counter(type(o).__qualname__ for o in objects)


@pytest.mark.usefixtures("uncaptured_logging")
async def test_a_wait_between_polls_keeps_at_most_twenty_objects(
    fake: FakeBatchesServer, conn: str
) -> None:
    # One wait from start to end first, so that lazy imports and the connection's client are
    # in place before counting.
    (warm,) = fake.create_batches_bulk(1, 0.0, 0.0)["ids"]
    await run_triggers([MessageBatchTrigger(warm, conn, poll_interval=3600)])
    ids = fake.create_batches_bulk(WAITS, 7200.0, 7200.0)["ids"]

    gc.collect()
    before = gc.get_objects()
    count_before, types_before = len(before), _types(before)
    del before
    tasks = [
        asyncio.create_task(_consume(MessageBatchTrigger(b, conn, poll_interval=3600))) for b in ids
    ]
    try:
        await _all_waiting_for_their_second_poll(conn, WAITS)
        gc.collect()
        after = gc.get_objects()
        per_wait = (len(after) - count_before) / WAITS
        grown = _types(after)
        grown.subtract(types_before)
        models_kept = sum(1 for o in after if type(o) in (MessageBatch, RequestCounts))
        del after
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    top = {name: round(n / WAITS, 2) for name, n in grown.most_common(12)}
    assert per_wait <= MAX_OBJECTS_PER_WAIT, f"{per_wait:.1f} objects a wait; grew most: {top}"
    # The last batch seen is kept as JSON bytes, not as models.
    assert models_kept < WAITS / 10, f"{models_kept} batch models alive for {WAITS} waits"


def test_every_trigger_logs_through_one_logger() -> None:
    """Airflow builds a logger per instance by default (eight objects a wait once the first
    progress line binds it); the triggerer tells the lines apart by the ids it binds in the log
    context, not by the logger."""
    first = MessageBatchTrigger("msgbatch_first", "any")
    second = MessageBatchTrigger("msgbatch_second", "other")
    assert first.log is second.log
    assert first.log is MessageBatchTrigger.logger()
