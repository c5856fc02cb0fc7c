"""A DAG for tests/unit/operators/test_operator_spend_guard.py: MessageBatchOperator with a
spend cap.

``claude-test`` is priced at $20 per million output tokens and nothing for input ($10 in a
batch), so the cost bound is $0.00001 per ``max_tokens``: the cap of $0.05 is 5,000 of them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, get_current_context, task

from airflow_provider_batches.operators.batch import MessageBatchOperator

CAP_USD = 0.05
TEST_PRICES = {
    "claude-test": {
        "input": "0",
        "cache_write_5m": "0",
        "cache_write_1h": "0",
        "cache_read": "0",
        "output": "20",
    }
}

with DAG("operator_spend_guard", schedule=None, catchup=False, tags=["test"]) as dag:

    @task
    def make_requests() -> list[dict[str, Any]]:
        return list(get_current_context()["dag_run"].conf["requests"])

    MessageBatchOperator(
        task_id="submit",
        requests=make_requests(),
        deferrable=False,
        poll_interval=0.2,
        retries=0,
        max_cost_usd=CAP_USD,
        prices=TEST_PRICES,
    )
