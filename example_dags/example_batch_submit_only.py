"""Submit several batches without holding a slot while they run, then wait in reschedule mode.

``MessageBatchOperator(wait_for_completion=False)`` submits each request set once per task
instance (a retry re-attaches to the batch an earlier try created, it never creates a second
one) and returns the batch id. A reschedule-mode sensor per batch takes that id straight from
``submit.output``: it frees its worker slot between pokes and needs no triggerer.

Trigger with ``{"request_sets": [[<request>, ...], [<request>, ...]]}`` (each request a
``{"custom_id", "params"}`` dict): one batch per request set.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.sensors.batch import MessageBatchSensor

#: Seconds between the sensor's pokes; the slot is free in between.
POKE_SECONDS = float(os.environ.get("BATCH_POKE_SECONDS", "300"))

EXAMPLE_REQUEST = {
    "custom_id": "greeting",
    "params": {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}],
    },
}

with DAG(
    dag_id="example_batch_submit_only",
    schedule=None,
    catchup=False,
    params={"request_sets": Param([[EXAMPLE_REQUEST]], type="array")},
    tags=["example", "anthropic"],
):

    @task
    def request_sets(**context: Any) -> list[list[dict[str, Any]]]:
        return [list(requests) for requests in context["params"]["request_sets"]]

    submit = MessageBatchOperator.partial(
        task_id="submit",
        wait_for_completion=False,
    ).expand(requests=request_sets())

    wait = MessageBatchSensor.partial(
        task_id="wait_for_batch",
        deferrable=False,
        mode="reschedule",
        poke_interval=POKE_SECONDS,
        timeout=timedelta(hours=26),
    ).expand(batch_id=submit.output)

    @task
    def combine(batches: list[dict[str, Any]]) -> dict[str, int]:
        totals = {"batches": 0, "succeeded": 0, "errored": 0}
        for batch in batches:
            totals["batches"] += 1
            totals["succeeded"] += batch["request_counts"]["succeeded"]
            totals["errored"] += batch["request_counts"]["errored"]
        print(f"All batches ended: {totals}")
        return totals

    combine(wait.output)
