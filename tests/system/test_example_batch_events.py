"""The event-driven example DAG: its watcher, and its task on folded events."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_batch_events.py"


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


def test_the_task_writes_the_results_of_every_folded_event(
    example: ModuleType,
    fake: Any,
    fake_conn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    import hashlib
    import json

    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    task = bag.dags["example_batch_events"].get_task("ingest_ended_batches")
    # The task's own module global is what it reads at run time.
    monkeypatch.setitem(task.python_callable.__globals__, "RESULTS_PATH", f"file://{tmp_path}")

    first = fake.create_batch(num_requests=4, outcomes={"succeeded": 3, "errored": 1})
    second = fake.create_batch(num_requests=2)
    for batch in (first, second):
        fake.end_batch(batch["id"])

    def ended(batch_id: str) -> SimpleNamespace:
        return SimpleNamespace(extra={"from_trigger": True, "payload": fake.get_batch(batch_id)})

    events = {example.ENDED_BATCHES: [ended(first["id"]), ended(second["id"])]}
    summaries = task.python_callable(triggering_asset_events=events)

    assert [s["batch_id"] for s in summaries] == [first["id"], second["id"]]
    assert [(s["total"], s["succeeded"]) for s in summaries] == [(4, 3), (2, 2)]
    for summary in summaries:
        written = (tmp_path / summary["batch_id"] / "results.jsonl").read_bytes()
        assert hashlib.sha256(written).hexdigest() == summary["sha256"]
        assert len(written.splitlines()) == summary["total"]
        manifest = json.loads((tmp_path / summary["batch_id"] / "manifest.json").read_text())
        assert manifest["batch_id"] == summary["batch_id"]
    assert f"Batch {second['id']} ended" in capsys.readouterr().out
