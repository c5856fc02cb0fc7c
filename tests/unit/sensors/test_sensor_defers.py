"""The deferrable sensor really hands the wait to MessageBatchTrigger, and no kwargs it stores
for the triggerer ever hold the API key, even once the key has been loaded in this process.

(The DAG-level proof that the trigger runs and polls after the deferral is in
test_sensor_dag.py, which spies on ``MessageBatchTrigger.run`` under ``dag.test()``.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import API_KEY

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.sensors.batch import MessageBatchSensor
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger


def _deferral(sensor: MessageBatchSensor) -> Any:
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})  # type: ignore[arg-type]
    return deferred.value


def test_deferrable_sensor_hands_an_unfinished_batch_to_the_trigger(
    fake: FakeBatchesServer, fake_conn: str
) -> None:
    batch_id = fake.create_batch(num_requests=2, ends_after=None)["id"]
    # timeout/poke_interval keep a sensor that wrongly pokes instead from running for long.
    sensor = MessageBatchSensor(
        task_id="wait", batch_id=batch_id, deferrable=True, timeout=2, poke_interval=0.1
    )

    deferral = _deferral(sensor)

    assert isinstance(deferral.trigger, MessageBatchTrigger)
    assert deferral.method_name == "execute_complete"
    _, kwargs = deferral.trigger.serialize()
    assert (kwargs["batch_id"], kwargs["conn_id"], kwargs["poll_interval"]) == (
        batch_id,
        fake_conn,
        0.1,
    )
    assert kwargs["deadline"] is not None
    # One check on the worker, then nothing more until the trigger polls.
    assert fake.request_count(batch_id) == 1


async def test_trigger_kwargs_hold_no_key_after_the_key_was_loaded(
    fake: FakeBatchesServer, fake_conn: str
) -> None:
    batch_id = fake.create_batch(num_requests=2, ends_after=None)["id"]
    sensor = MessageBatchSensor(task_id="wait", batch_id=batch_id, deferrable=True, timeout=60)
    # The worker's check loads the connection, and so the key, before the sensor defers.
    deferral = _deferral(sensor)
    assert MessageBatchHook(fake_conn).settings.api_key == API_KEY

    classpath, kwargs = deferral.trigger.serialize()
    assert API_KEY not in json.dumps(kwargs)
    # The trigger loads the key too (asettings, then a poll): its kwargs still hold none.
    trigger = MessageBatchTrigger(**kwargs)
    fake.end_batch(batch_id)
    try:
        events = [event.payload async for event in trigger.run()]
    finally:
        await aclose_shared_clients()
    assert [event["status"] for event in events] == ["success"]
    after_run = trigger.serialize()
    assert API_KEY not in json.dumps(after_run)
    assert after_run == (classpath, kwargs)
