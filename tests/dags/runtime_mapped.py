"""DAGs for tests/runtime: a mapped sensor whose bad option arrives through ``.expand()``."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_batches.sensors.batch import MessageBatchSensor

with DAG("runtime_mapped_bad_expand", schedule=None, catchup=False, tags=["test"]) as dag:
    MessageBatchSensor.partial(
        task_id="wait",
        batch_id="{{ dag_run.conf['batch_id'] }}",
        deferrable=False,
        poke_interval=0.2,
    ).expand(max_errored=[-1])
