"""DAGs for tests/unit/operators/test_operator_submit_only.py: submit without waiting, then hand the
batch id to a sensor and to the results operator.

Requests come from ``dag_run.conf["requests"]``; results go under ``conf["results_path"]``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.operators.results import MessageBatchResultsOperator
from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG("operator_submit_only", schedule=None, catchup=False, tags=["test"]) as submit_only:

    @task
    def make_requests() -> list[dict[str, Any]]:
        return list(get_current_context()["dag_run"].conf["requests"])

    submit = MessageBatchOperator(
        task_id="submit", requests=make_requests(), wait_for_completion=False, retries=0
    )
    wait = MessageBatchSensor(
        task_id="wait", batch_id=submit.output, deferrable=True, poke_interval=0.2, timeout=60
    )
    store = MessageBatchResultsOperator(
        task_id="store",
        batch_id=submit.output,
        results_path="{{ dag_run.conf['results_path'] }}",
    )
    wait >> store

with DAG("operator_submit_only_retry", schedule=None, catchup=False, tags=["test"]) as retried:
    # The create's answer is lost (the fake drops it after creating): the first try fails and
    # the retry must find the batch that create made, not create a second one.
    MessageBatchOperator(
        task_id="submit",
        requests="{{ dag_run.conf['requests'] | tojson }}",
        wait_for_completion=False,
        retries=1,
        retry_delay=0,
    )
