"""The DAGs of ``benchmarks/split_submit.py`` (its Airflow dags folder): one
MessageBatchOperator with ``split_oversized=True`` reading a JSONL file and writing the results,
both from ``dag_run.conf`` (``path``, ``results_path``), waiting in the worker or deferring."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_batches.operators.batch import MessageBatchOperator

for dag_id, deferrable in (("split_submit", False), ("split_submit_deferrable", True)):
    with DAG(dag_id, schedule=None, catchup=False, tags=["benchmark"]) as dag:
        MessageBatchOperator(
            task_id="submit",
            requests="{{ dag_run.conf['path'] }}",
            split_oversized=True,
            results_path="{{ dag_run.conf['results_path'] }}",
            deferrable=deferrable,
            poll_interval=2.0,
            retries=0,
        )
    globals()[dag_id] = dag
