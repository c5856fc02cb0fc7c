"""The watcher's timing: its clock and sleep are the module's own (a test can simulate them), an
earlier wait cuts the driver's sleep short, and a driver that fails fails its waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from helpers import SimulatedClock

import airflow_provider_batches.triggers._watcher as watcher_module
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers._watcher import watcher_for

pytestmark = pytest.mark.matrix

#: Hang guard only: each of these polls is answered at once when the watcher works.
HANG_GUARD = 30.0


async def test_a_simulated_clock_drives_the_watcher(
    fake: FakeBatchesServer, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SimulatedClock(start=time.time())
    clock.install(watcher_module, monkeypatch)
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    watcher = watcher_for(conn)
    try:
        first = await asyncio.wait_for(watcher.poll(batch_id, within=0), HANG_GUARD)
        second = await asyncio.wait_for(watcher.poll(batch_id, within=600), HANG_GUARD)
    finally:
        await aclose_shared_clients()

    assert first.id == second.id == batch_id
    # The first poll gathers for a moment, the second waits its 600 simulated seconds.
    assert clock.sleeps == [pytest.approx(watcher_module.GATHER_SECONDS), pytest.approx(600)]
    assert fake.request_count(batch_id) == 2


async def test_an_earlier_wait_cuts_the_drivers_sleep_short(
    fake: FakeBatchesServer, conn: str
) -> None:
    late, early = (fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(2))
    watcher = watcher_for(conn)
    late_poll = asyncio.ensure_future(watcher.poll(late, within=3600))
    try:
        await asyncio.sleep(0.05)  # the driver is asleep until the late poll is due
        batch = await asyncio.wait_for(watcher.poll(early, within=0), HANG_GUARD)
        assert batch.id == early
        assert watcher.cycles == 1  # run for the early poll (its page may answer the late too)
    finally:
        late_poll.cancel()
        await asyncio.gather(late_poll, return_exceptions=True)
        await aclose_shared_clients()


async def test_a_failing_driver_fails_its_waits_instead_of_leaving_them_hanging(
    fake: FakeBatchesServer, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SimulatedClock(start=time.time())
    clock.install(watcher_module, monkeypatch)

    async def broken_sleep(seconds: float) -> Any:
        raise RuntimeError("the sleep broke")

    monkeypatch.setattr(watcher_module.asyncio, "sleep", broken_sleep)
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]

    with pytest.raises(RuntimeError, match="the sleep broke"):
        await asyncio.wait_for(watcher_for(conn).poll(batch_id, within=60), HANG_GUARD)
    assert fake.request_count(batch_id) == 0
