"""DAGs for tests/unit/operators/test_request_defaults.py: requests completed by the task.

``records_from_connection``: a JSONL file of records (path in ``dag_run.conf``) mapped by a
prompt template, the model from the connection's ``default_model`` extra.
``mapped_prompts_no_model``: mapped prompts with no model anywhere (retries set, so a retried
failure would show as a second try).
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_batches.operators.batch import MessageBatchOperator

with DAG("records_from_connection", schedule=None, catchup=False, tags=["test"]) as records:
    MessageBatchOperator(
        task_id="submit",
        requests="{{ dag_run.conf['path'] }}",
        prompt_template="Classify: {review}",
        custom_id_field="id",
        max_tokens=16,
        deferrable=True,
        poll_interval=0.2,
        retries=0,
    )

with DAG("mapped_prompts_no_model", schedule=None, catchup=False, tags=["test"]) as mapped:
    MessageBatchOperator.partial(
        task_id="submit", max_tokens=16, deferrable=True, poll_interval=0.2, retries=2
    ).expand(prompts=[["one"], ["two"]])
