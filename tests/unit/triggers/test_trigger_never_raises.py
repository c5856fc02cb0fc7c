"""Every failure of a trigger's wait ends in exactly one error event.

Only cancellation may leave ``run()`` as an exception: the triggerer cannot resume a task from
an exception, and Airflow would report it without the batch id or a fix.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from helpers import API_KEY, wait_until

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

HANG_GUARD = 30.0


async def _events(trigger: MessageBatchTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    try:
        return await asyncio.wait_for(collect(), HANG_GUARD)
    finally:
        await aclose_shared_clients()


def _assert_one_clean_error(events: list[dict[str, Any]], batch_id: str) -> dict[str, Any]:
    assert [e["status"] for e in events] == ["error"]
    (event,) = events
    assert event["batch_id"] == batch_id
    assert batch_id in event["message"]
    serialized = json.dumps(event)  # what the metadata DB stores
    assert API_KEY not in serialized
    return event


async def test_a_connection_missing_in_the_triggerer_is_one_error_event(
    fake: FakeBatchesServer,
) -> None:
    batch_id = fake.create_batch(num_requests=1)["id"]
    events = await _events(MessageBatchTrigger(batch_id, conn_id="defined_nowhere"))
    event = _assert_one_clean_error(events, batch_id)
    assert "'defined_nowhere' is not defined where the trigger runs" in event["message"]
    assert "AIRFLOW_CONN_DEFINED_NOWHERE" in event["message"]
    assert event["error"]["error_class"] == "ConnectionConfigError"
    assert fake.request_count() == 0


@pytest.mark.parametrize(
    "extra", [{"workspace_id": "wrkspc_café"}, {"betas": ["message-batches-2024-09-24", "bêta"]}]
)
async def test_a_header_value_that_cannot_be_encoded_is_one_error_event(
    fake: FakeBatchesServer, set_connection: Callable[..., None], extra: dict[str, Any]
) -> None:
    batch_id = fake.create_batch(num_requests=1)["id"]
    set_connection("non_ascii", fake.base_url, max_retries=0, **extra)
    events = await _events(MessageBatchTrigger(batch_id, conn_id="non_ascii"))
    event = _assert_one_clean_error(events, batch_id)
    (field,) = extra
    assert field in event["message"]  # the message names the field to fix
    assert fake.request_count(batch_id) == 0


async def test_any_unexpected_exception_is_one_error_event_without_the_key(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug of ours or of a library: nothing real raises it on purpose, so it is injected."""
    batch_id = fake.create_batch(num_requests=1)["id"]
    set_connection("unexpected", fake.base_url, max_retries=0)

    async def broken(self: MessageBatchHook, batch_id: str, **_: Any) -> Any:
        await self.asettings()
        raise KeyError(f"internal state {API_KEY}")

    monkeypatch.setattr(MessageBatchHook, "aretrieve_batch", broken)
    events = await _events(MessageBatchTrigger(batch_id, conn_id="unexpected"))
    event = _assert_one_clean_error(events, batch_id)
    assert "failed unexpectedly (KeyError" in event["message"]
    assert event["error"]["error_class"] == "KeyError"


async def test_a_non_ascii_api_key_is_one_error_event_without_the_key(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    batch_id = fake.create_batch(num_requests=1)["id"]
    key = "sk-ant-api03-clé-NONASCII-DO-NOT-LEAK"
    set_connection("non_ascii_key", fake.base_url, api_key=key, max_retries=0)
    events = await _events(MessageBatchTrigger(batch_id, conn_id="non_ascii_key"))
    event = _assert_one_clean_error(events, batch_id)
    assert "Password" in event["message"]
    serialized = json.dumps(event, ensure_ascii=False)
    assert key not in serialized
    assert key.encode("unicode_escape").decode() not in json.dumps(event)
    assert fake.request_count(batch_id) == 0


async def test_cancellation_still_propagates(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    set_connection("cancelled", fake.base_url, max_retries=0)
    trigger = MessageBatchTrigger(batch_id, conn_id="cancelled", poll_interval=0.05)
    events: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(collect())
    await asyncio.to_thread(wait_until, lambda: fake.request_count(batch_id) >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await aclose_shared_clients()
    assert events == []
