"""End-to-end DAG: a deferrable MessageBatchSensor, then a task that reads its XCom.

Parsed by the DAG processor of the cluster that ``tests/e2e/test_scheduler_triggerer.py``
starts; the batch id comes from the run's conf and ``anthropic_e2e`` from the environment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from airflow_provider_batches.sensors.batch import MessageBatchSensor

DAG_ID = "e2e_message_batch"
SENSOR_TASK_ID = "wait_for_batch"
DOWNSTREAM_TASK_ID = "summarize_batch"


@dag(dag_id=DAG_ID, schedule=None, catchup=False, max_active_runs=1, tags=["e2e"])
def e2e_message_batch() -> None:
    wait = MessageBatchSensor(
        task_id=SENSOR_TASK_ID,
        batch_id="{{ dag_run.conf['batch_id'] }}",
        conn_id="anthropic_e2e",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    @task(task_id=DOWNSTREAM_TASK_ID)
    def summarize_batch(batch: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(batch, dict), f"expected the batch dict, got {type(batch).__name__}"
        assert batch["type"] == "message_batch", batch
        assert batch["processing_status"] == "ended", batch
        return {
            "batch_id": batch["id"],
            "succeeded": batch["request_counts"]["succeeded"],
            "total": sum(batch["request_counts"].values()),
        }

    summarize_batch(wait.output)


e2e_message_batch()
