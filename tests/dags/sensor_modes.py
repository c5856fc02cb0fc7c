"""DAGs for tests/unit/sensors/test_sensor_dag.py: one per sensor mode and outcome policy.

Each waits for ``dag_run.conf["batch_id"]`` on connection ``anthropic_default`` and hands the
batch to a downstream task that returns what it received.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_batches._compat import supports
from airflow_provider_batches.sensors.batch import MessageBatchSensor

SENSOR_VARIANTS: dict[str, dict[str, Any]] = {
    "sensor_deferrable": {"deferrable": True},
    "sensor_poke": {"deferrable": False, "mode": "poke"},
    "sensor_reschedule": {"deferrable": False, "mode": "reschedule"},
    "sensor_max_errored": {"deferrable": True, "max_errored": 0},
    "sensor_max_errored_ratio_poke": {"deferrable": False, "max_errored_ratio": 0.25},
    "sensor_canceled_skip": {"deferrable": True, "on_fully_canceled": "skip"},
    "sensor_canceled_fail": {"deferrable": False, "on_fully_canceled": "fail"},
    "sensor_soft_fail": {"deferrable": True, "max_expired": 0, "soft_fail": True},
    "sensor_timeout": {"deferrable": True, "timeout": 1},
    "sensor_timeout_soft_fail": {"deferrable": True, "timeout": 1, "soft_fail": True},
    "sensor_start_from_trigger": {"deferrable": True, "start_from_trigger": True},
}
if not supports("templated_start_from_trigger"):
    # Before Airflow 3.3 a templated batch_id with start_from_trigger is refused at parse time
    # (tests/unit/_compat/test_compat.py checks that); the other variants must still load.
    del SENSOR_VARIANTS["sensor_start_from_trigger"]

for dag_id, sensor_kwargs in SENSOR_VARIANTS.items():
    with DAG(dag_id, schedule=None, catchup=False, tags=["test"]) as dag:
        wait = MessageBatchSensor(
            task_id="wait",
            batch_id="{{ dag_run.conf['batch_id'] }}",
            poke_interval=0.2,
            **sensor_kwargs,
        )

        @task
        def received(batch: dict[str, Any]) -> dict[str, Any]:
            return {"id": batch["id"], "succeeded": batch["request_counts"]["succeeded"]}

        received(wait.output)
    globals()[dag_id] = dag
