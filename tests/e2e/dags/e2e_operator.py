"""End-to-end DAGs for tests/e2e/test_operator_e2e.py: MessageBatchOperator on a real cluster.

``e2e_operator_deferred`` waits in the triggerer; ``e2e_operator_worker`` waits in the worker
and is retried once, so that a worker killed mid-wait gets a second try.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_batches.operators.batch import MessageBatchOperator

PROMPTS = ["One.", "Two.", "Three."]

with DAG("e2e_operator_deferred", schedule=None, catchup=False, tags=["e2e"]) as deferred:
    MessageBatchOperator(
        task_id="submit",
        prompts=PROMPTS,
        model="claude-test",
        max_tokens=16,
        conn_id="anthropic_e2e",
        deferrable=True,
        poll_interval=1,
        retries=0,
    )

with DAG("e2e_operator_worker", schedule=None, catchup=False, tags=["e2e"]) as in_worker:
    MessageBatchOperator(
        task_id="submit",
        prompts=PROMPTS,
        model="claude-test",
        max_tokens=16,
        conn_id="anthropic_e2e",
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
