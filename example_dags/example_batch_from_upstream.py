"""Build requests in one task, submit and wait for them with MessageBatchOperator, use the counts.

The requests come from the upstream task's XCom, so they are only known at run time. The
operator submits them once per task instance (a retry or a clear re-attaches to the batch
instead of paying for a second one), waits in the triggerer, and returns the ended batch.
``make demo`` runs this DAG against the embedded fake API.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.operators.batch import MessageBatchOperator

with DAG(
    dag_id="example_batch_from_upstream",
    schedule=None,
    catchup=False,
    params={
        "prompts": Param(
            ["Summarize the Iliad in one line.", "Name three prime numbers."], type="array"
        ),
        "model": Param("claude-sonnet-4-5", type="string"),
    },
    tags=["example", "anthropic"],
):

    @task
    def build_requests(**context: Any) -> list[dict[str, Any]]:
        from airflow_provider_batches.request_set import requests_from_prompts

        params = context["params"]
        return requests_from_prompts(params["prompts"], model=params["model"], max_tokens=256)

    submit = MessageBatchOperator(
        task_id="submit_and_wait",
        requests=build_requests(),
        deferrable=True,
        # `make demo` polls every second; against the real API a minute is plenty.
        poll_interval=float(os.environ.get("EXAMPLE_BATCH_POLL_SECONDS", "60")),
        max_errored_ratio=0.1,
    )

    @task
    def use_results(batch: dict[str, Any]) -> dict[str, Any]:
        counts = batch["request_counts"]
        print(
            f"Batch {batch['id']} ended: {counts['succeeded']} succeeded, "
            f"{counts['errored']} errored; results at {batch['results_url']}"
        )
        return {"batch_id": batch["id"], "succeeded": counts["succeeded"]}

    use_results(submit.output)
