"""Wait for a Message Batch in the triggerer, then act on its request counts downstream.

Trigger with ``{"batch_id": "msgbatch_..."}`` as the run's conf. The sensor frees its worker
slot while it waits; the downstream task gets the ended batch from XCom.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG(
    dag_id="example_batch_deferrable",
    schedule=None,
    catchup=False,
    params={"batch_id": Param("msgbatch_replace_me", type="string")},
    tags=["example", "anthropic"],
):
    wait = MessageBatchSensor(
        task_id="wait_for_batch",
        batch_id="{{ params.batch_id }}",
        conn_id="anthropic_default",
        deferrable=True,
        poke_interval=60,
        timeout=26 * 60 * 60,
        max_errored_ratio=0.05,
    )

    @task
    def summarize(batch: dict[str, Any]) -> dict[str, Any]:
        counts = batch["request_counts"]
        total = MessageBatch.from_xcom(batch).total_requests  # every count, known or not
        summary = {
            "batch_id": batch["id"],
            "total": total,
            "succeeded": counts["succeeded"],
            "needs_rerun": counts["errored"] + counts["expired"],
            "results_url": batch["results_url"],
        }
        print(f"Batch {batch['id']}: {counts['succeeded']}/{total} succeeded")
        return summary

    summarize(wait.output)
