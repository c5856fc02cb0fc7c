"""DAGs for the operator tests (tests/unit/operators/): MessageBatchOperator submits, waits
and hands the batch on.

Requests come from ``dag_run.conf`` (through an upstream task's XCom, a JSONL path, or
prompts); the connection is ``anthropic_default``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, get_current_context, task
from pydantic import BaseModel

from airflow_provider_batches.operators.batch import MessageBatchOperator

OPERATOR_VARIANTS: dict[str, dict[str, Any]] = {
    "operator_deferrable": {"deferrable": True},
    "operator_in_worker": {"deferrable": False},
    "operator_in_worker_keep": {"deferrable": False, "cancel_on_kill": False},
    "operator_timeout": {"deferrable": True, "timeout": 1.5},
    "operator_timeout_keep": {"deferrable": False, "timeout": 1.5, "cancel_on_timeout": False},
    "operator_timeout_deferred_keep": {
        "deferrable": True,
        "timeout": 1.5,
        "cancel_on_timeout": False,
    },
    "operator_resubmit": {"deferrable": True, "resubmit": True},
    # The timeout bounds the test if the failure streak never ended the wait.
    "operator_errors": {"deferrable": True, "max_consecutive_errors": 2, "timeout": 20},
}

for dag_id, operator_kwargs in OPERATOR_VARIANTS.items():
    with DAG(dag_id, schedule=None, catchup=False, tags=["test"]) as dag:

        @task
        def make_requests() -> list[dict[str, Any]]:
            conf = get_current_context()["dag_run"].conf
            return list(conf["requests"])

        submit = MessageBatchOperator(
            task_id="submit",
            requests=make_requests(),
            poll_interval=0.2,
            retries=0,
            **operator_kwargs,
        )

        @task
        def received(batch: dict[str, Any]) -> dict[str, Any]:
            return {"id": batch["id"], "succeeded": batch["request_counts"]["succeeded"]}

        received(submit.output)
    globals()[dag_id] = dag

# split_oversized=True: the tests lower the limits so that a few requests make several shards.
for dag_id, operator_kwargs in {
    "operator_split": {"deferrable": True},
    "operator_split_in_worker": {"deferrable": False},
    "operator_split_timeout": {"deferrable": False, "timeout": 1.5},
}.items():
    with DAG(dag_id, schedule=None, catchup=False, tags=["test"]) as dag:

        @task
        def make_requests() -> list[dict[str, Any]]:
            conf = get_current_context()["dag_run"].conf
            return list(conf["requests"])

        submit = MessageBatchOperator(
            task_id="submit",
            requests=make_requests(),
            split_oversized=True,
            results_path="{{ dag_run.conf.get('results_path', '') }}",
            poll_interval=0.2,
            retries=0,
            **operator_kwargs,
        )

        @task
        def received(batch: dict[str, Any]) -> dict[str, Any]:
            return {"shards": batch["batch_ids"], "succeeded": batch["request_counts"]["succeeded"]}

        received(submit.output)
    globals()[dag_id] = dag

with DAG("operator_from_path", schedule=None, catchup=False, tags=["test"]) as from_path:
    MessageBatchOperator(
        task_id="submit",
        requests="{{ dag_run.conf['path'] }}",
        deferrable=True,
        poll_interval=0.2,
    )

with DAG("operator_prompts", schedule=None, catchup=False, tags=["test"]) as prompts_dag:
    MessageBatchOperator(
        task_id="submit",
        prompts=["Say hi.", "Say bye."],
        model="claude-test",
        max_tokens=16,
        system="Be brief.",
        deferrable=False,
        poll_interval=0.2,
    )


class Answer(BaseModel):
    text: str


# The fake answers in prose, so every answer is invalid against a JSON output type: the task
# fails (``operator_results_structured``) or is skipped (``..._skip``).
for dag_id, action in (
    ("operator_results_structured", "fail"),
    ("operator_results_structured_skip", "skip"),
):
    with DAG(dag_id, schedule=None, catchup=False, tags=["test"]):
        MessageBatchOperator(
            task_id="submit",
            requests="{{ dag_run.conf['path'] }}",
            results_path="{{ dag_run.conf['results_path'] }}",
            results_output_type=Answer,
            results_max_invalid_ratio=0.5,
            results_on_too_many_invalid=action,
            deferrable=True,
            poll_interval=0.2,
            retries=0,
        )

with DAG("operator_results", schedule=None, catchup=False, tags=["test"]) as results_dag:
    submit_and_store = MessageBatchOperator(
        task_id="submit",
        requests="{{ dag_run.conf['path'] }}",
        results_path="{{ dag_run.conf['results_path'] }}",
        results_split_by_type=True,
        deferrable=True,
        poll_interval=0.2,
        retries=0,
    )

# A list pushed by an upstream task and pulled by a template: rendered as Python text (the
# default), or as JSON with ``| tojson``. Retries are allowed: bad input must not use them.
for dag_id, template in {
    "operator_rendered_list": "{{ ti.xcom_pull(task_ids='make_requests') }}",
    "operator_rendered_json": "{{ ti.xcom_pull(task_ids='make_requests') | tojson }}",
}.items():
    with DAG(dag_id, schedule=None, catchup=False, tags=["test"]) as dag:

        @task
        def make_requests() -> list[dict[str, Any]]:
            conf = get_current_context()["dag_run"].conf
            return list(conf["requests"])

        make_requests() >> MessageBatchOperator(
            task_id="submit",
            requests=template,
            deferrable=True,
            poll_interval=0.2,
            retries=2,
            retry_delay=0,
        )
    globals()[dag_id] = dag
