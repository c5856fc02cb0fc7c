"""Wait for a Message Batch in reschedule mode: no triggerer needed, the slot is freed between
pokes. Good for a few long waits on deployments without a triggerer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG(
    dag_id="example_batch_reschedule",
    schedule=None,
    catchup=False,
    params={"batch_id": Param("msgbatch_replace_me", type="string")},
    tags=["example", "anthropic"],
):
    wait = MessageBatchSensor(
        task_id="wait_for_batch",
        batch_id="{{ params.batch_id }}",
        deferrable=False,
        mode="reschedule",
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(hours=26),
        on_fully_canceled="skip",
    )

    @task
    def report(batch: dict[str, Any]) -> int:
        print(f"Batch {batch['id']} ended at {batch['ended_at']}")
        return int(batch["request_counts"]["succeeded"])

    report(wait.output)
