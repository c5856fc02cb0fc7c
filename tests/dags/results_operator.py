"""DAGs for the results operator tests: write a batch's results, then read the manifest."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_batches.operators.results import MessageBatchResultsOperator

with DAG(dag_id="results_to_storage", schedule=None, catchup=False):
    write = MessageBatchResultsOperator(
        task_id="write_results",
        batch_id="{{ dag_run.conf['batch_id'] }}",
        results_path="{{ dag_run.conf['results_path'] }}",
        split_by_type=True,
        retries=0,
    )

    @task
    def summarize(manifest: dict[str, Any]) -> dict[str, Any]:
        return {
            "total": manifest["line_counts"]["total"],
            "errored_ids": len(manifest["errored_custom_ids"]),
            "sha256": manifest["results_sha256"],
        }

    summarize(write.output)
