"""Trigger rows stored in the metadata database by an earlier version still load and run.

Airflow stores ``serialize()``'s class path and kwargs in the ``trigger`` table and rebuilds the
trigger from them after a triggerer restart or an upgrade. The rows below are what the provider
wrote before its modules were regrouped; they must import, rebuild the same row (Airflow
deduplicates triggers by it) and run.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from reliability_fixtures import run_trigger

from airflow_provider_batches.hooks.batch import aclose_shared_clients
from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = pytest.mark.matrix

WAIT_ROW = (
    "airflow_provider_batches.triggers.batch.MessageBatchTrigger",
    {
        "batch_id": "msgbatch_stored",
        "conn_id": "stored_row",
        "poll_interval": 0.05,
        "deadline": None,
        "expiry_grace": 3600.0,
        "max_consecutive_errors": 10,
        "error_tolerance": 1800.0,
        "log_interval": 600.0,
        "cancel_on_kill": False,
    },
)
EVENT_ROW = (
    "airflow_provider_batches.triggers.events.MessageBatchEventTrigger",
    {
        "conn_id": "stored_row",
        "poll_interval": 60.0,
        "lookback": 3600.0,
        "created_after": None,
        "min_requests": 0,
        "outcome": "any",
        "policy": None,
        "include_canceled": True,
        "expiry_grace": 3600.0,
        "page_size": 100,
        "max_pages": 50,
    },
)


def _rebuild(row: tuple[str, dict[str, Any]]) -> Any:
    """What the triggerer does with a stored row: import the class path, pass the kwargs."""
    classpath, kwargs = row
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


@pytest.mark.parametrize("row", [WAIT_ROW, EVENT_ROW], ids=["wait", "events"])
def test_a_stored_row_rebuilds_the_same_row(row: tuple[str, dict[str, Any]]) -> None:
    assert _rebuild(row).serialize() == row


async def test_a_stored_wait_row_resumes_and_reports_its_batch(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection("stored_row", fake.base_url)
    batch_id = fake.create_batch(num_requests=2, ends_after=0)["id"]
    classpath, kwargs = WAIT_ROW
    try:
        events = await run_trigger(_rebuild((classpath, {**kwargs, "batch_id": batch_id})))
    finally:
        await aclose_shared_clients()
    assert [(e["status"], e["batch_id"]) for e in events] == [("success", batch_id)]
