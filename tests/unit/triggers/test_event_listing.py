"""MessageBatchEventTrigger's poll through the hook's listing: a listing that a guard cut short
(a cursor missing, invalid or repeated, the page cap) is never taken for a complete poll, so
the watermark never moves past batches the poll did not see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

CONN = "event_listing"


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_shared_clients()


@pytest.fixture
def ended(fake: FakeBatchesServer, set_connection: Any) -> dict[str, Any]:
    set_connection(CONN, fake.base_url, max_retries=0, timeout=5)
    batch = fake.create_batch(num_requests=1, ends_after=None)
    return fake.end_batch(batch["id"])


async def _poll(max_pages: int = 100) -> tuple[set[str], bool]:
    """The ids of the ended batches one poll saw, and whether it was complete."""
    trigger = MessageBatchEventTrigger(CONN, max_pages=max_pages)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    batches, complete = await trigger._list_ended(MessageBatchHook(CONN), start)
    return {b.id for b in batches}, complete


@pytest.mark.parametrize(("cursor", "requests"), [("msgbatch_other1/x", 1), (None, 1), ("SAME", 2)])
async def test_a_listing_ended_by_its_cursor_is_incomplete(
    fake: FakeBatchesServer, ended: dict[str, Any], cursor: str | None, requests: int
) -> None:
    """Page one holds an ended batch and says there is more, behind a cursor that is not a
    batch id, missing, or the same again: the batch is reported, the poll is incomplete."""
    last_id = ended["id"] if cursor == "SAME" else cursor
    fake.set_list_hook(lambda query, page: {"data": [ended], "has_more": True, "last_id": last_id})
    assert await _poll() == ({ended["id"]}, False)
    assert fake.request_count() == requests


async def test_a_listing_that_reaches_the_last_page_is_complete(
    fake: FakeBatchesServer, ended: dict[str, Any]
) -> None:
    assert await _poll() == ({ended["id"]}, True)


async def test_a_listing_that_passes_the_window_start_is_complete_even_at_the_page_cap(
    fake: FakeBatchesServer, ended: dict[str, Any]
) -> None:
    old = {**ended, "id": "msgbatch_old", "created_at": "2020-01-01T00:00:00Z"}
    fake.set_list_hook(
        lambda query, page: {"data": [ended, old], "has_more": True, "last_id": "msgbatch_old"}
    )
    assert await _poll(max_pages=1) == ({ended["id"]}, True)
