"""The trigger's deadline bounds a whole poll, retries included.

``timeout`` bounds each read only: a server trickling bytes, or long ``retry-after`` answers
times ``max_retries``, used to stretch one poll far past the wait's deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

DEADLINE_IN = 2.0
HANG_GUARD = 30.0  # only stops a broken build from hanging; no timing is asserted
TRICKLE_BODY = b'{"id": "msgbatch_slow", "type": "message_batch"' + b" " * 300 + b"}"


class TrickleServer:
    """Answers every request with a valid status line and headers, then one body byte per
    0.3 s: each read gets data in time, so only an overall bound can stop the poll."""

    def __init__(self) -> None:
        self.requests = 0
        self.body_bytes_sent = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(TRICKLE_BODY)
            )
            for index in range(len(TRICKLE_BODY)):
                writer.write(TRICKLE_BODY[index : index + 1])
                await writer.drain()
                self.body_bytes_sent += 1
                await asyncio.sleep(0.3)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> TrickleServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def trickle() -> AsyncIterator[TrickleServer]:
    async with TrickleServer() as server:
        yield server


async def _events(trigger: MessageBatchTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    try:
        return await asyncio.wait_for(collect(), HANG_GUARD)
    finally:
        await aclose_shared_clients()


async def test_a_trickling_answer_ends_at_the_deadline(
    trickle: TrickleServer, set_connection: Callable[..., None]
) -> None:
    set_connection("trickle", f"http://127.0.0.1:{trickle.port}", max_retries=0, timeout=10)
    trigger = MessageBatchTrigger(
        "msgbatch_slow", conn_id="trickle", deadline=time.time() + DEADLINE_IN
    )
    events = await _events(trigger)
    assert [(e["status"], e.get("reason")) for e in events] == [("timeout", "deadline")]
    # The deadline ended the poll while the answer was still arriving.
    assert trickle.requests == 1
    assert 0 < trickle.body_bytes_sent < len(TRICKLE_BODY)


async def test_retry_after_waits_do_not_stretch_a_poll_past_the_deadline(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    fake.inject_fault(Fault(kind="status", status=529, headers={"retry-after": "20"}, times=-1))
    set_connection("overloaded", fake.base_url, max_retries=5)
    trigger = MessageBatchTrigger(
        batch_id, conn_id="overloaded", deadline=time.time() + DEADLINE_IN
    )
    events = await _events(trigger)
    assert [(e["status"], e.get("reason")) for e in events] == [("timeout", "deadline")]
    # One attempt, then the first 20 s retry wait was cut short by the deadline.
    assert fake.request_count(batch_id) == 1


async def test_no_deadline_leaves_the_poll_unbounded_by_it(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    set_connection("no_deadline", fake.base_url, max_retries=0)
    events = await _events(MessageBatchTrigger(batch_id, conn_id="no_deadline"))
    assert [e["status"] for e in events] == ["success"]
