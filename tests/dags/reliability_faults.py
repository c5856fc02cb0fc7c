"""DAGs for tests/integration/test_task_level.py: one deferrable wait under injected faults.

Each waits for ``dag_run.conf["batch_id"]`` on connection ``reliability_dag`` (set per test
through ``AIRFLOW_CONN_RELIABILITY_DAG``); the fault itself is injected into the fake API.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_batches.sensors.batch import MessageBatchSensor

#: dag_id -> sensor timeout in seconds (the trigger's deadline follows from it).
RELIABILITY_DAGS = {"reliability_wait": 60.0, "reliability_wait_short": 1.5}

for _dag_id, _timeout in RELIABILITY_DAGS.items():
    with DAG(_dag_id, schedule=None, catchup=False, tags=["test", "reliability"]) as _dag:
        MessageBatchSensor(
            task_id="wait",
            batch_id="{{ dag_run.conf['batch_id'] }}",
            conn_id="reliability_dag",
            deferrable=True,
            poke_interval=0.1,
            timeout=_timeout,
            max_consecutive_errors=2,
            retries=0,
        )
    globals()[_dag_id] = _dag
