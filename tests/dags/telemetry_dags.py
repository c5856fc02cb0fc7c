"""DAGs for tests/telemetry/: a batch submitted from a JSONL path with its results written,
then the same results stored again by MessageBatchResultsOperator (for metrics and lineage).

``dag_run.conf``: ``path`` (the requests file) and ``results`` (where results go); the
connection is ``anthropic_default``.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.operators.results import MessageBatchResultsOperator

with DAG("telemetry_batch", schedule=None, catchup=False, tags=["test"]) as telemetry_batch:
    submit = MessageBatchOperator(
        task_id="submit",
        requests="{{ dag_run.conf['path'] }}",
        results_path="{{ dag_run.conf['results'] }}",
        deferrable=True,
        poll_interval=0.2,
        retries=0,
    )
    store = MessageBatchResultsOperator(
        task_id="store",
        batch_id="{{ ti.xcom_pull(task_ids='submit')['id'] }}",
        results_path="{{ dag_run.conf['results'] }}/again",
        retries=0,
    )
    submit >> store
