"""End-to-end DAG: scheduled by an asset whose watcher is a MessageBatchEventTrigger.

Parsed by the DAG processor of the cluster that ``tests/e2e/test_batch_events.py`` starts;
``anthropic_e2e`` comes from the environment. The task returns the ids of the batches in its
run's ``triggering_asset_events`` (one entry per event, duplicates included).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

DAG_ID = "e2e_batch_events"
TASK_ID = "ingest_ended_batches"
ASSET_NAME = "e2e_ended_batches"

ENDED_BATCHES = Asset(
    name=ASSET_NAME,
    uri="anthropic-batches://anthropic_e2e/ended",
    watchers=[
        AssetWatcher(
            name="e2e_batch_ended",
            trigger=MessageBatchEventTrigger(
                conn_id="anthropic_e2e", poll_interval=1, lookback=3600
            ),
        )
    ],
)

with DAG(dag_id=DAG_ID, schedule=[ENDED_BATCHES], catchup=False, tags=["e2e"]):

    @task(task_id=TASK_ID)
    def ingest_ended_batches(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        ingested = []
        for event in triggering_asset_events[ENDED_BATCHES]:
            batch = event.extra["payload"]
            assert batch["processing_status"] == "ended", batch
            ingested.append({"id": batch["id"], "succeeded": batch["request_counts"]["succeeded"]})
        return ingested

    ingest_ended_batches()
