"""The event-driven example DAG: its watcher, and its task on folded events."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

EXAMPLE = Path(__file__).parents[2] / "example_dags" / "example_batch_events.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_batch_events", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_asset_is_watched_by_the_event_trigger(example: ModuleType) -> None:
    (watcher,) = example.ENDED_BATCHES.watchers
    assert isinstance(watcher.trigger, MessageBatchEventTrigger)
    assert watcher.trigger.serialize()[1]["conn_id"] == "anthropic_default"


def test_the_task_handles_every_folded_event(example: ModuleType, capsys: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    task = bag.dags["example_batch_events"].get_task("ingest_ended_batches")

    def ended(batch_id: str, succeeded: int, errored: int) -> SimpleNamespace:
        counts = {"processing": 0, "succeeded": succeeded, "errored": errored}
        payload = {
            "id": batch_id,
            "request_counts": {**counts, "canceled": 0, "expired": 0},
            "results_url": f"https://api.anthropic.com/v1/messages/batches/{batch_id}/results",
        }
        return SimpleNamespace(extra={"from_trigger": True, "payload": payload})

    events = {example.ENDED_BATCHES: [ended("msgbatch_a", 3, 1), ended("msgbatch_b", 2, 0)]}
    summaries = task.python_callable(triggering_asset_events=events)
    assert [s["batch_id"] for s in summaries] == ["msgbatch_a", "msgbatch_b"]
    assert summaries[0] == {
        "batch_id": "msgbatch_a",
        "total": 4,
        "succeeded": 3,
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_a/results",
    }
    assert "Batch msgbatch_b ended: 2/2 succeeded" in capsys.readouterr().out
