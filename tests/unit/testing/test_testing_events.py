"""Testing an event-driven DAG against the fake: ``events_from`` runs the event trigger and
``run_dag_with_asset_events`` runs the consuming DAG on its events; and the trigger's
``origin="this_deployment"`` filter keeps only the batches this deployment's operators claimed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import API_KEY, DAGS_DIR

from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.testing.events import events_from, run_dag_with_asset_events
from airflow_provider_batches.triggers.events import MessageBatchEventTrigger


@pytest.fixture
def conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    set_connection("batches_events", fake.base_url, max_retries=1, timeout=2)
    return "batches_events"


def test_events_from_returns_the_payload_of_each_ended_batch(
    fake: FakeBatchesServer, conn: str
) -> None:
    batches = [fake.create_batch(num_requests=n, ends_after=0.0) for n in (1, 2, 3)]
    trigger = MessageBatchEventTrigger(conn_id=conn, poll_interval=0.05)

    payloads = events_from(trigger, max_events=2, timeout=30)

    assert len(payloads) == 2, "it stops after max_events, though a third batch has ended"
    ids = {b["id"] for b in batches}
    assert {p["id"] for p in payloads} < ids
    for payload in payloads:
        assert payload == fake.get_batch(payload["id"])


def test_events_from_stops_when_until_holds_or_at_the_timeout(
    fake: FakeBatchesServer, conn: str
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=0.0)
    trigger = MessageBatchEventTrigger(conn_id=conn, poll_interval=0.05)
    seen = events_from(trigger, until=lambda got: batch["id"] in {p["id"] for p in got})
    assert [p["id"] for p in seen] == [batch["id"]]

    quiet = MessageBatchEventTrigger(conn_id=conn, poll_interval=0.05, lookback=0)
    assert events_from(quiet, timeout=0.5) == []
    with pytest.raises(ValueError, match="max_events"):
        events_from(quiet, max_events=0)


def test_origin_is_checked_and_serialized_only_when_set() -> None:
    default = MessageBatchEventTrigger().serialize()[1]
    assert "origin" not in default, "watchers made before origin keep their trigger row hash"
    ours = MessageBatchEventTrigger(origin="this_deployment")
    assert ours.serialize()[1]["origin"] == "this_deployment"
    assert MessageBatchEventTrigger(**ours.serialize()[1]).serialize() == ours.serialize()
    assert ours.watermark_key != MessageBatchEventTrigger().watermark_key
    with pytest.raises(ValueError, match="origin must be one of"):
        MessageBatchEventTrigger(origin="mine")  # type: ignore[arg-type]


def test_a_failed_claim_lookup_fails_the_poll_and_drops_no_event(
    fake: FakeBatchesServer, conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_batches.operators import _task_record as task_record

    batch = fake.create_batch(num_requests=1, ends_after=0.0)
    lookups: list[str] = []

    def is_claimed(batch_id: str) -> bool:
        lookups.append(batch_id)
        if len(lookups) == 1:
            raise RuntimeError("the Variables backend is down")
        return True

    monkeypatch.setattr(task_record, "is_claimed", is_claimed)
    trigger = MessageBatchEventTrigger(conn_id=conn, poll_interval=0.05, origin="this_deployment")
    payloads = events_from(trigger, max_events=1, timeout=15)
    assert [p["id"] for p in payloads] == [batch["id"]]
    assert lookups == [batch["id"], batch["id"]]


@pytest.fixture
def dag_fake(airflow_db: object, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.3) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


def _load(path: str, dag_id: str) -> Any:
    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(DAGS_DIR / path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def test_an_event_driven_dag_runs_on_the_batches_this_deployment_submitted(
    dag_fake: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    requests = [
        {
            "custom_id": f"r{i}",
            "params": {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "x"}],
            },
        }
        for i in range(2)
    ]
    submitted = _load("operator_submit_only.py", "operator_submit_only_retry").test(
        run_conf={"requests": requests}
    )
    assert submitted.state == "success"
    foreign = dag_fake.create_batch(num_requests=5, ends_after=0.0)
    # The claims are Variables in the metadata DB, which a triggerer reads through the API
    # server; a test process outside a task reads them like a server process does.
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")

    ingest_dag = _load("event_ingest.py", "event_ingest")
    asset = ingest_dag.get_task("ingest").python_callable.__globals__["OUR_BATCHES"]
    watcher_trigger = asset.watchers[0].trigger
    payloads = events_from(watcher_trigger, max_events=1, timeout=30)
    # Our batch is the only one; the workspace's other batch never comes, whatever the wait.
    assert events_from(watcher_trigger, timeout=2) == payloads
    ours = payloads[0]["id"]
    assert ours != foreign["id"]

    run = run_dag_with_asset_events(ingest_dag, asset, payloads)

    assert run.state == "success"
    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == "event_ingest",
                XComModel.run_id == run.run_id,
                XComModel.task_id == "ingest",
            )
        )
    assert value == [{"id": ours, "succeeded": 2}]
