"""Run a pipeline whenever any Message Batch in the workspace ends, whoever submitted it.

No sensor and no batch id: an ``AssetWatcher`` runs ``MessageBatchEventTrigger`` in the
triggerer, which lists the workspace's batches every ``poll_interval`` seconds and turns each
batch that ends into an asset event whose payload is the ended batch. Airflow may fold several
events into one DAG run, so the task handles every event it was triggered by.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

ENDED_BATCHES = Asset(
    name="anthropic_ended_batches",
    uri="anthropic-batches://anthropic_default/ended",
    watchers=[
        AssetWatcher(
            name="anthropic_batch_ended",
            trigger=MessageBatchEventTrigger(
                conn_id="anthropic_default",
                poll_interval=60,
                lookback=6 * 60 * 60,
                min_requests=1,
            ),
        )
    ],
)

with DAG(
    dag_id="example_batch_events",
    schedule=[ENDED_BATCHES],
    catchup=False,
    tags=["example", "anthropic"],
):

    @task
    def ingest_ended_batches(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        summaries = []
        for event in triggering_asset_events[ENDED_BATCHES]:
            batch = event.extra["payload"]
            counts = batch["request_counts"]
            total = sum(counts.values())
            print(
                f"Batch {batch['id']} ended: {counts['succeeded']}/{total} succeeded, "
                f"{counts['errored']} errored, {counts['expired']} expired, "
                f"{counts['canceled']} canceled"
            )
            # Results writer hook-up point: write this batch's results here (write_results).
            summaries.append(
                {
                    "batch_id": batch["id"],
                    "total": total,
                    "succeeded": counts["succeeded"],
                    "results_url": batch["results_url"],
                }
            )
        return summaries

    ingest_ended_batches()
