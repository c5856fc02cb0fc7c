"""Wait for a batch, store its results in object storage, and use the manifest downstream.

``MessageBatchResultsOperator`` streams the results to ``<results_path>/<batch id>/`` and returns
the manifest (counts, token usage, error types, file paths and SHA-256) as XCom. A rerun finds
the complete manifest and downloads nothing. ``results_path`` can be any ``ObjectStoragePath``
URL: ``s3://aws_default@bucket/batches``, ``gs://...``, or ``file:///...`` as here.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_batches.operators.results import MessageBatchResultsOperator
from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG(
    dag_id="example_batch_results",
    schedule=None,
    catchup=False,
    params={
        "batch_id": Param("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", type="string"),
        "results_path": Param("file:///tmp/airflow-batch-results", type="string"),
    },
    tags=["example", "anthropic"],
):
    wait = MessageBatchSensor(
        task_id="wait_for_batch",
        batch_id="{{ params.batch_id }}",
        deferrable=True,
        poke_interval=float(os.environ.get("EXAMPLE_BATCH_POLL_SECONDS", "60")),
        max_errored_ratio=0.5,
    )

    store = MessageBatchResultsOperator(
        task_id="store_results",
        batch_id="{{ params.batch_id }}",
        results_path="{{ params.results_path }}",
        split_by_type=True,
    )

    @task
    def report(manifest: dict[str, Any]) -> dict[str, Any]:
        counts = manifest["line_counts"]
        usage = manifest["usage"]
        print(
            f"Batch {manifest['batch_id']}: {counts['succeeded']} succeeded, "
            f"{counts['errored']} errored {manifest['error_types']}; "
            f"{usage['input_tokens']} input and {usage['output_tokens']} output tokens"
        )
        # The per-type files are plain JSONL: read the errored lines back from storage.
        errored = ObjectStoragePath(manifest["files"]["errored"]["path"])
        with errored.open("rb") as lines:
            first = lines.readline()  # not next(iter(lines)): Airflow 3.0's files cannot iterate
        if first:
            print("First error:", json.loads(first)["result"]["error"]["error"])
        return {"succeeded": counts["succeeded"], "sha256": manifest["results_sha256"]}

    wait >> store
    report(store.output)
