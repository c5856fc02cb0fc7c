"""A cancel of a request's caller (a trigger the triggerer cancels) is never lost.

``asyncio.wait_for`` before Python 3.12 returns the result instead of raising ``CancelledError``
when the cancel arrives in the loop step in which the awaited work finishes; the event trigger
then went on polling after its cancel (seen as a hung ``RunningTrigger.__aexit__``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.send import ApiRequest, asend
from airflow_provider_batches._http.timeouts import wait_within
from airflow_provider_batches.hooks.batch import parse_batch
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.testing import FakeBatchesServer


async def test_a_cancel_arriving_as_the_work_finishes_raises_cancelled() -> None:
    finished: list[str] = []

    async def work_that_sees_the_cancel_arrive() -> str:
        caller.cancel()  # the cancel lands in the very step in which the work completes
        finished.append("work")
        return "result"

    caller = asyncio.create_task(wait_within(work_that_sees_the_cancel_arrive(), 30))
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["work"]


async def test_the_timeout_still_applies_and_stops_the_work() -> None:
    stopped = asyncio.Event()

    async def endless() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with pytest.raises(asyncio.TimeoutError):
        await wait_within(endless(), 0.05)
    assert stopped.is_set()  # no work runs on after the call ended


async def test_a_cancel_while_waiting_stops_the_work_before_it_propagates() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def endless() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    caller = asyncio.create_task(wait_within(endless(), 30))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert stopped.is_set()


async def test_errors_and_results_pass_through() -> None:
    async def fails() -> None:
        raise ValueError("the work's own error")

    async def answers() -> int:
        return 42

    with pytest.raises(ValueError, match="the work's own error"):
        await wait_within(fails(), 30)
    assert await wait_within(answers(), 30) == 42


class _StreamCancellingOnClose(httpx.AsyncByteStream):
    def __init__(self, stream: Any, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close = on_close

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
        self._on_close()


class _CancelCallerAsTheResponseCloses(httpx.AsyncBaseTransport):
    """Real HTTP to the fake API; the caller is cancelled as the response's body is closed,
    the last step of a request attempt."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.caller: asyncio.Task[Any] | None = None
        self.cancels = 0

    def _cancel_caller(self) -> None:
        if self.caller is not None and self.cancels == 0:
            self.cancels += 1
            self.caller.cancel()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        response.stream = _StreamCancellingOnClose(response.stream, self._cancel_caller)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_request_cancelled_as_its_response_completes_raises_cancelled(
    fake: FakeBatchesServer,
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    settings = ClientSettings(conn_id="cancel", base_url=fake.base_url, api_key=fake.api_key)
    request = ApiRequest("GET", settings.batch_url(batch["id"]), batch["id"])
    transport = _CancelCallerAsTheResponseCloses()
    async with httpx.AsyncClient(transport=transport) as client:
        caller: asyncio.Task[MessageBatch] = asyncio.create_task(
            asend(client, asyncio.Semaphore(1), settings, request, parse_batch)
        )
        transport.caller = caller
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert transport.cancels == 1
    assert fake.request_count(method="GET") == 1


async def test_a_batch_trigger_poll_with_a_deadline_cancelled_as_it_completes_raises_cancelled(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    from airflow_provider_batches.hooks.batch import MessageBatchHook
    from airflow_provider_batches.triggers.batch import MessageBatchTrigger

    set_connection("cancel_poll", fake.base_url)
    batch = fake.create_batch(num_requests=1, ends_after=None)

    class CancelsTheCallerAsTheAnswerArrives:
        """Serves the poll as the shared watcher does, with a real request."""

        def __init__(self) -> None:
            self.hook = MessageBatchHook("cancel_poll")

        async def poll(self, batch_id: str, within: float) -> MessageBatch:
            answer = await self.hook.aretrieve_batch(batch_id)
            caller.cancel()
            return answer

    trigger = MessageBatchTrigger(batch["id"], "cancel_poll", deadline=time.time() + 3600)
    watcher: Any = CancelsTheCallerAsTheAnswerArrives()
    caller = asyncio.create_task(trigger._poll(watcher, within=0.0))
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert fake.request_count(method="GET") == 1
