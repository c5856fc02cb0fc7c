"""Wait for several batches at once with dynamic task mapping, then combine their counts.

Trigger with ``{"batch_ids": ["msgbatch_a", "msgbatch_b"]}``: one deferred sensor per batch,
all sharing one HTTP connection pool in the triggerer.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG(
    dag_id="example_batch_mapped",
    schedule=None,
    catchup=False,
    params={"batch_ids": Param(["msgbatch_replace_me"], type="array")},
    tags=["example", "anthropic"],
):

    @task
    def batch_ids(**context: Any) -> list[str]:
        return list(context["params"]["batch_ids"])

    waits = MessageBatchSensor.partial(
        task_id="wait_for_batch",
        deferrable=True,
        poke_interval=60,
    ).expand(batch_id=batch_ids())

    @task
    def combine(batches: list[dict[str, Any]]) -> dict[str, int]:
        totals = {"batches": 0, "succeeded": 0, "errored": 0, "expired": 0, "canceled": 0}
        for batch in batches:
            totals["batches"] += 1
            for outcome in ("succeeded", "errored", "expired", "canceled"):
                totals[outcome] += batch["request_counts"][outcome]
        print(f"All batches ended: {totals}")
        return totals

    combine(waits.output)
