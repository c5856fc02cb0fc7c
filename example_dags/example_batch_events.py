"""Run a pipeline whenever any Message Batch in the workspace ends, whoever submitted it.

No sensor and no batch id: an ``AssetWatcher`` runs ``MessageBatchEventTrigger`` in the
triggerer, which lists the workspace's batches every ``poll_interval`` seconds and turns each
batch that ends into an asset event whose payload is the ended batch. Airflow may fold several
events into one DAG run, so the task handles every event it was triggered by.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

#: Where each ended batch's results go (any ObjectStoragePath URL, e.g.
#: ``s3://aws_default@my-bucket/batches``); one prefix per batch, manifest.json written last.
RESULTS_PATH = os.environ.get("BATCH_RESULTS_PATH", "file:///tmp/anthropic-batch-results")

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
        from airflow_provider_batches.hooks.batch import MessageBatchHook
        from airflow_provider_batches.models import MessageBatch
        from airflow_provider_batches.results.writer import write_results

        hook = MessageBatchHook("anthropic_default")
        summaries = []
        for event in triggering_asset_events[ENDED_BATCHES]:
            batch = MessageBatch.from_xcom(event.extra["payload"])
            print(f"Batch {batch.progress_summary()}")
            # A rerun finds the complete manifest and downloads nothing again.
            manifest = write_results(hook, batch, RESULTS_PATH)
            summaries.append(
                {
                    "batch_id": batch.id,
                    "total": batch.total_requests,
                    "succeeded": batch.request_counts.succeeded,
                    "results": manifest["files"]["results"]["path"],
                    "sha256": manifest["results_sha256"],
                }
            )
        return summaries

    ingest_ended_batches()
