"""Run many triggers at once and count what the fake saw."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

LIST_PATH = "/v1/messages/batches"


async def run_triggers(
    triggers: list[MessageBatchTrigger], timeout: float = 60
) -> list[list[dict[str, Any]]]:
    """Every trigger's events, in the order given (each run to completion)."""

    async def collect(trigger: MessageBatchTrigger) -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(asyncio.gather(*(collect(t) for t in triggers)), timeout)


def request_kinds(fake: FakeBatchesServer) -> Counter[str]:
    """Requests the fake saw: ``list`` pages and ``retrieve`` calls."""
    kinds: Counter[str] = Counter()
    for record in fake.requests:
        if record.method == "GET" and record.path == LIST_PATH:
            kinds["list"] += 1
        elif record.method == "GET" and record.batch_id is not None:
            kinds["retrieve"] += 1
        else:
            kinds[record.method] += 1
    return kinds


def list_after_ids(fake: FakeBatchesServer) -> list[str | None]:
    return [r.query.get("after_id") for r in fake.requests if r.path == LIST_PATH]
