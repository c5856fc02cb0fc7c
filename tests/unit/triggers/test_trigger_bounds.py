"""What ends a wait that the API never lets finish: the failure streak (by count and by
duration) and the expiry grace. Time is simulated (``helpers.SimulatedClock``), so each bound is
checked exactly and a wait that ignores it fails within seconds instead of hanging.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers import SimulatedClock

import airflow_provider_batches.triggers._watcher as watcher_module
import airflow_provider_batches.triggers.batch as trigger_module
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.batch import MessageBatchTrigger


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    # One simulated hour: past every bound below, reached in seconds if one is ignored.
    simulated = SimulatedClock(start=time.time(), limit=3600.0)
    simulated.install(trigger_module, monkeypatch)
    simulated.install(watcher_module, monkeypatch)  # the polls' timing lives there
    return simulated


@pytest.fixture
def no_retry_conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    # No hook retries: each poll is one request, and the transport's own sleeps never run.
    set_connection("bounds", fake.base_url, max_retries=0)
    return "bounds"


async def _events(trigger: MessageBatchTrigger) -> list[dict[str, Any]]:
    try:
        return [event.payload async for event in trigger.run()]
    finally:
        await aclose_shared_clients()


async def test_a_failure_streak_ends_the_wait_after_max_consecutive_errors(
    fake: FakeBatchesServer, no_retry_conn: str, clock: SimulatedClock
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    fake.inject_fault(Fault(kind="status", status=503, times=-1, batch_id=batch_id))

    events = await _events(
        MessageBatchTrigger(batch_id, no_retry_conn, poll_interval=60, max_consecutive_errors=4)
    )

    assert [e["status"] for e in events] == ["error"]
    assert "gave up after 4 consecutive failed polls" in events[0]["message"]
    assert events[0]["error"]["retryable"] is True
    assert fake.request_count(batch_id) == 4


async def test_a_failure_streak_ends_the_wait_once_it_lasts_error_tolerance(
    fake: FakeBatchesServer, no_retry_conn: str, clock: SimulatedClock
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    fake.inject_fault(Fault(kind="status", status=503, times=-1, batch_id=batch_id))

    events = await _events(
        MessageBatchTrigger(
            batch_id,
            no_retry_conn,
            poll_interval=60,
            max_consecutive_errors=1000,
            error_tolerance=300,
        )
    )

    assert [e["status"] for e in events] == ["error"]
    # The streak started with the first failure; it ended at the first failure 300 s or more
    # after that. Waits are 48-60 s (jitter), so that is poll 6 to 8.
    waited = sum(clock.sleeps)
    assert 300 <= waited < 300 + 60
    assert 6 <= fake.request_count(batch_id) <= 8


async def test_a_batch_never_reported_ended_times_out_after_expiry_grace(
    fake: FakeBatchesServer, no_retry_conn: str, clock: SimulatedClock
) -> None:
    # The fake's own clock does not move with the simulated one: to it the batch stays
    # in_progress, as an API that never reports the end would keep it.
    batch = fake.create_batch(num_requests=1, ends_after=None, expires_after=600)
    expires_at = MessageBatch.model_validate(batch).expires_at.timestamp()

    events = await _events(
        MessageBatchTrigger(batch["id"], no_retry_conn, poll_interval=60, expiry_grace=900)
    )

    assert [(e["status"], e["reason"]) for e in events] == [("timeout", "expired")]
    assert events[0]["batch"]["processing_status"] == "in_progress"
    # Reported on the first poll past expires_at + grace, not before and not a poll later.
    assert expires_at + 900 < clock.now <= expires_at + 900 + 60
