"""Submit a batch in one task, wait for it in the next, use its counts in a third.

The sensor's ``batch_id`` comes from the upstream task's XCom, so the id is only known at run
time. ``make demo`` runs this DAG against the embedded fake API.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.sensors.batch import MessageBatchSensor

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
    def submit_batch(**context: Any) -> str:
        params = context["params"]
        requests = [
            {
                "custom_id": f"prompt-{index}",
                "params": {
                    "model": params["model"],
                    "max_tokens": 256,
                    "messages": [{"role": "user", "content": prompt}],
                },
            }
            for index, prompt in enumerate(params["prompts"])
        ]
        batch = MessageBatchHook().create_batch(requests)
        print(f"Submitted batch {batch.id} with {batch.total_requests} requests")
        return batch.id

    wait = MessageBatchSensor(
        task_id="wait_for_batch",
        batch_id=submit_batch(),
        deferrable=True,
        # `make demo` polls every second; against the real API a minute is plenty.
        poke_interval=float(os.environ.get("EXAMPLE_BATCH_POLL_SECONDS", "60")),
    )

    @task
    def use_results(batch: dict[str, Any]) -> dict[str, Any]:
        counts = batch["request_counts"]
        print(
            f"Batch {batch['id']} ended: {counts['succeeded']} succeeded, "
            f"{counts['errored']} errored; results at {batch['results_url']}"
        )
        return {"batch_id": batch["id"], "succeeded": counts["succeeded"]}

    use_results(wait.output)
