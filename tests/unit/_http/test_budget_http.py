"""The budget on the real request path, against the fake API in its rate-limit mode."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from fake_process import fake_api_process
from watcher_helpers import request_kinds, run_triggers

from airflow_provider_batches._http.budget import budget_for
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeAdminClient, FakeBatchesServer, Fault
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = pytest.mark.matrix


def test_sync_threads_and_async_tasks_under_the_budget_receive_no_429(
    set_connection: Callable[..., None],
) -> None:
    """64 requests from threads and a loop at once, against a fake enforcing 600 a minute as
    10 a second (a bucket of one second's worth): the budget (600/min) lets 7 out at once and
    spaces the rest, so the fake never answers 429, even when the threads and the loop hold up
    one another's requests. The fake runs in a process of its own, as a real server would: in
    this one it would wait for the interpreter behind the clients and see their requests later
    than they were sent (by over 0.3 s on a loaded 2-core machine)."""
    with fake_api_process("--rate-limit-rpm", "600", "--rate-limit-burst", "10") as base_url:
        admin = FakeAdminClient(base_url)
        set_connection("budget_60", base_url, max_retries=0, max_requests_per_minute=600)
        batch = admin.create_batch(num_requests=1, ends_after=None)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                hook = MessageBatchHook("budget_60")
                for _ in range(10):
                    hook.retrieve_batch(batch["id"])
            except BaseException as exc:
                errors.append(exc)

        async def async_side() -> None:
            hook = MessageBatchHook("budget_60")
            await asyncio.gather(*(hook.aretrieve_batch(batch["id"]) for _ in range(34)))
            await aclose_shared_clients()

        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        asyncio.run(async_side())
        for thread in threads:
            thread.join()
        assert errors == []
        assert admin.request_count(batch["id"]) == 64
        assert admin.stats()["rate_limited"] == 0


@pytest.mark.parametrize("limit_headers", [True, False], ids=["headers", "no-headers"])
async def test_many_waits_through_the_watcher_receive_no_429_from_a_one_second_window(
    fake: FakeBatchesServer, set_connection: Callable[..., None], limit_headers: bool
) -> None:
    """200 waits of new batches and 6 of old ones behind 8,000 others, on a fake enforcing the
    configured 120 a minute as 2 a second, with or without rate-limit headers: the first cycle
    pages back 9 pages, later ones read a page and retrieve the 6 old batches at once; the
    budget spaces them all, so no request is answered 429."""
    fake.set_rate_limit(120, burst=2, limit_headers=limit_headers)
    set_connection("short_window", fake.base_url, max_retries=3, max_requests_per_minute=120)
    old = [fake.create_batch(num_requests=1, ends_after=8.0)["id"] for _ in range(6)]
    fake.create_batches_bulk(8000, 0.0, 0.0)
    new = fake.create_batches_bulk(200, 0.5, 4.0)["ids"]
    triggers = [MessageBatchTrigger(b, "short_window", poll_interval=0.5) for b in [*old, *new]]
    try:
        events = await run_triggers(triggers, timeout=120)
    finally:
        await aclose_shared_clients()
    assert all(len(e) == 1 and e[0]["status"] == "success" for e in events)
    kinds = request_kinds(fake)
    assert kinds["retrieve"] >= 6, f"the old batches were retrieved together: {kinds}"
    assert fake.rate_limited == 0


async def test_one_429_pauses_every_queued_request_of_the_connection(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    """A 429 with retry-after on one batch's poll holds back the polls of all the others."""
    set_connection("budget_pause", fake.base_url, max_retries=2, max_connections=1)
    batches = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(5)]
    fake.inject_fault(
        Fault("status", status=429, headers={"retry-after": "1"}, batch_id=batches[0], times=1)
    )
    hook = MessageBatchHook("budget_pause")
    try:
        await asyncio.gather(*(hook.aretrieve_batch(batch_id) for batch_id in batches))
    finally:
        await aclose_shared_clients()
    records = fake.requests
    assert len(records) == 6
    refused_at = records[0].received_at
    assert records[0].batch_id == batches[0]
    # Every later request, of any batch, reached the server after the pause.
    assert all(r.received_at >= refused_at + 1.0 for r in records[1:])
    settings = await hook.asettings()
    assert budget_for(settings).paused == 1


@pytest.mark.parametrize("value", ["0", "-5", "fast", "nan", True])
def test_max_requests_per_minute_extra_is_validated(
    fake: FakeBatchesServer, set_connection: Callable[..., None], value: object
) -> None:
    from airflow_provider_batches.exceptions import ConnectionConfigError

    set_connection("budget_bad", fake.base_url, max_requests_per_minute=value)
    with pytest.raises(
        ConnectionConfigError, match=r"max_requests_per_minute. must be a positive number.*got"
    ):
        _ = MessageBatchHook("budget_bad").settings


def test_max_requests_per_minute_defaults_to_tier_one(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection("budget_default", fake.base_url, max_requests_per_minute="")
    assert MessageBatchHook("budget_default").settings.max_requests_per_minute == 50
    set_connection("budget_tier2", fake.base_url, max_requests_per_minute="1000")
    assert MessageBatchHook("budget_tier2").settings.max_requests_per_minute == 1000
