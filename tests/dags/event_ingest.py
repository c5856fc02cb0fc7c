"""An event-driven DAG for tests/unit/testing/test_testing_events.py: it runs on the ended batches
that this deployment's operators submitted, and returns what it saw of each."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

OUR_BATCHES = Asset(
    name="test_our_ended_batches",
    uri="anthropic-batches://anthropic_default/ours",
    watchers=[
        AssetWatcher(
            name="our_batch_ended",
            trigger=MessageBatchEventTrigger(
                conn_id="anthropic_default", poll_interval=0.2, origin="this_deployment"
            ),
        )
    ],
)

with DAG(dag_id="event_ingest", schedule=[OUR_BATCHES], catchup=False, tags=["test"]):

    @task
    def ingest(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        return [
            {
                "id": event.extra["payload"]["id"],
                "succeeded": event.extra["payload"]["request_counts"]["succeeded"],
            }
            for event in triggering_asset_events[OUR_BATCHES]
        ]

    ingest()
