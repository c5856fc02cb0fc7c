"""The trigger's deadline: absolute, never passed, never extended by a restart.

Time is simulated (``helpers.SimulatedClock``): the trigger's sleeps advance the clock at once,
so each check is exact instead of a wall-clock bound.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import SimulatedClock

import airflow_provider_batches.triggers._watcher as watcher_module
import airflow_provider_batches.triggers.batch as trigger_module
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger


async def _events(trigger: MessageBatchTrigger) -> list[dict[str, Any]]:
    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await aclose_shared_clients()


async def test_a_passed_deadline_ends_the_wait_before_any_poll(
    fake: FakeBatchesServer, fake_conn: str
) -> None:
    """Even a batch that has ended by now: past the deadline the wait reports a timeout
    without sending a request (the deadline is checked before every poll)."""
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    import time

    events = await _events(MessageBatchTrigger(batch_id, fake_conn, deadline=time.time() - 1))

    assert [(e["status"], e.get("reason"), e["batch"]) for e in events] == [
        ("timeout", "deadline", None)
    ]
    assert fake.request_count(batch_id) == 0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    import time

    simulated = SimulatedClock(start=time.time())
    simulated.install(trigger_module, monkeypatch)
    simulated.install(watcher_module, monkeypatch)  # the polls' timing lives there
    return simulated


async def test_no_poll_is_made_after_the_deadline(
    fake: FakeBatchesServer, fake_conn: str, clock: SimulatedClock, monkeypatch: Any
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    poll_times: list[float] = []
    real = MessageBatchHook.aretrieve_batch

    async def timed(self: MessageBatchHook, asked: str) -> Any:
        poll_times.append(clock.now)
        return await real(self, asked)

    monkeypatch.setattr(MessageBatchHook, "aretrieve_batch", timed)
    deadline = clock.now + 95.0

    events = await _events(
        MessageBatchTrigger(batch_id, fake_conn, poll_interval=10, deadline=deadline)
    )

    assert [(e["status"], e["reason"]) for e in events] == [("timeout", "deadline")]
    assert events[0]["batch"]["id"] == batch_id  # the last batch seen
    assert clock.now == pytest.approx(deadline)  # the last sleep stops at the deadline
    assert all(t < deadline for t in poll_times)
    # Waits are 8-10 s (jitter): 10 to 12 polls fit before 95 s.
    assert 10 <= len(poll_times) <= 12
    assert fake.request_count(batch_id) == len(poll_times)


async def test_a_restart_never_extends_the_deadline(
    fake: FakeBatchesServer, fake_conn: str, clock: SimulatedClock
) -> None:
    """A triggerer rebuilds the trigger from its stored kwargs, maybe minutes later: the rebuilt
    wait ends at the original deadline, not ``timeout`` seconds after the restart."""
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    deadline = clock.now + 300.0
    original = MessageBatchTrigger(batch_id, fake_conn, poll_interval=10, deadline=deadline)
    _, stored = original.serialize()

    clock.now += 250.0  # the triggerer was down for 250 s
    rebuilt = MessageBatchTrigger(**json.loads(json.dumps(stored)))
    assert rebuilt.serialize()[1] == stored
    restarted_at = clock.now
    events = await _events(rebuilt)

    assert [(e["status"], e["reason"]) for e in events] == [("timeout", "deadline")]
    assert clock.now == pytest.approx(deadline)
    # Only the 50 s left were waited, in 8-10 s steps: 5 to 7 polls.
    assert clock.now - restarted_at == pytest.approx(50.0)
    assert 5 <= fake.request_count(batch_id) <= 7


async def test_a_trigger_rebuilt_after_its_deadline_polls_nothing(
    fake: FakeBatchesServer, fake_conn: str, clock: SimulatedClock
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    _, stored = MessageBatchTrigger(
        batch_id, fake_conn, poll_interval=10, deadline=clock.now + 60
    ).serialize()

    clock.now += 61.0
    events = await _events(MessageBatchTrigger(**stored))

    assert [(e["status"], e["reason"]) for e in events] == [("timeout", "deadline")]
    assert fake.request_count(batch_id) == 0
    assert clock.sleeps == []
