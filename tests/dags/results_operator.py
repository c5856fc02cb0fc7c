"""DAGs for the results operator tests: write a batch's results, then read the manifest; and
validate the answers against a pydantic model defined here (resolved when the task runs)."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import DAG, task
from pydantic import BaseModel

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


class Verdict(BaseModel):
    label: str
    score: float


@task
def first_label(manifest: dict[str, Any]) -> str:
    from airflow.sdk import ObjectStoragePath

    with ObjectStoragePath(manifest["files"]["parsed"]["path"]).open("rb") as rows:
        return str(json.loads(next(iter(rows)))["output"]["label"])


# ``results_structured`` fails past the ratio, ``results_structured_skip`` skips.
for dag_id, action in (("results_structured", "fail"), ("results_structured_skip", "skip")):
    with DAG(dag_id=dag_id, schedule=None, catchup=False):
        validate = MessageBatchResultsOperator(
            task_id="write_results",
            batch_id="{{ dag_run.conf['batch_id'] }}",
            results_path="{{ dag_run.conf['results_path'] }}",
            output_type=Verdict,
            max_invalid_ratio=0.5,
            on_too_many_invalid=action,
            retries=0,
        )
        first_label(validate.output)
