"""MessageBatchTrigger.on_kill: cancel on a user kill, never on a move, restart or timeout.

The triggerer's supervisor channel is replaced by a stand-in that answers ``GetTaskStates``
the way the execution API does (``{run_id: {task_id or task_id_mapindex: state}}``); the
real channel is exercised by tests/e2e/test_operator_e2e.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_batches._compat import supports
from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

pytestmark = [
    pytest.mark.matrix,
    pytest.mark.skipif(
        not supports("trigger_on_kill"),
        reason="Airflow calls a trigger's on_kill from 3.3 on (docs/compatibility.md)",
    ),
]


class StubComms:
    def __init__(self, states: dict[str, Any] | Exception) -> None:
        self.states = states
        self.asked: list[Any] = []

    async def asend(self, message: Any) -> Any:
        from airflow.sdk.execution_time.comms import TaskStatesResult

        if type(message).__name__ != "GetTaskStates":
            raise RuntimeError(f"the stand-in only answers GetTaskStates, not {message!r}")
        self.asked.append(message)
        if isinstance(self.states, Exception):
            raise self.states
        return TaskStatesResult(task_states=self.states)


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    yield
    await aclose_shared_clients()


def _install(monkeypatch: pytest.MonkeyPatch, comms: StubComms | None) -> None:
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)


def _trigger(batch_id: str, conn: str, map_index: int = -1, **kwargs: Any) -> MessageBatchTrigger:
    trigger = MessageBatchTrigger(batch_id, conn, **kwargs)
    trigger.task_instance = SimpleNamespace(  # type: ignore[assignment]
        dag_id="d", run_id="r", task_id="submit", map_index=map_index
    )
    return trigger


@pytest.mark.parametrize(
    ("states", "map_index", "cancels"),
    [
        ({"r": {"submit": "failed"}}, -1, True),
        ({"r": {"submit": "success"}}, -1, True),
        ({"r": {"submit": None}}, -1, True),  # cleared
        ({"r": {"submit": "scheduled"}}, -1, True),  # cleared and queued again
        ({"r": {}}, -1, True),  # the task instance is gone
        ({"r": {"submit": "deferred"}}, -1, False),  # the trigger moved or restarted
        ({"r": {"submit_3": "deferred"}}, 3, False),
        ({"r": {"submit_3": "failed"}}, 3, True),
    ],
)
async def test_on_kill_cancels_only_when_the_task_left_deferred(
    fake: FakeBatchesServer,
    fake_conn: str,
    monkeypatch: pytest.MonkeyPatch,
    states: dict[str, Any],
    map_index: int,
    cancels: bool,
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    comms = StubComms(states)
    _install(monkeypatch, comms)

    await _trigger(batch["id"], fake_conn, map_index, cancel_on_kill=True).on_kill()

    assert fake.request_count(batch["id"], "POST") == (1 if cancels else 0)
    (asked,) = comms.asked
    assert (asked.dag_id, asked.run_ids, asked.task_ids) == ("d", ["r"], ["submit"])
    assert asked.map_index == map_index


@pytest.mark.parametrize(
    "situation", ["option off", "no comms", "comms fail", "no task instance", "deadline passed"]
)
async def test_on_kill_does_not_cancel_when_it_cannot_tell(
    fake: FakeBatchesServer, fake_conn: str, monkeypatch: pytest.MonkeyPatch, situation: str
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    failed = {"r": {"submit": "failed"}}
    comms: StubComms | None = StubComms(failed)
    kwargs: dict[str, Any] = {"cancel_on_kill": situation != "option off"}
    if situation == "no comms":
        comms = None
    elif situation == "comms fail":
        comms = StubComms(RuntimeError("supervisor gone"))
    elif situation == "deadline passed":
        kwargs["deadline"] = time.time() - 1
    _install(monkeypatch, comms)
    trigger = _trigger(batch["id"], fake_conn, **kwargs)
    if situation == "no task instance":
        trigger = MessageBatchTrigger(batch["id"], fake_conn, **kwargs)

    await trigger.on_kill()

    assert fake.request_count(batch["id"], "POST") == 0


async def test_on_kill_after_the_batch_ended_only_logs(
    fake: FakeBatchesServer, fake_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=0)
    _install(monkeypatch, StubComms({"r": {"submit": "failed"}}))
    await _trigger(batch["id"], fake_conn, cancel_on_kill=True).on_kill()
    assert fake.request_count(batch["id"], "POST") == 1
    assert fake.get_batch(batch["id"])["processing_status"] == "ended"


def test_cancel_on_kill_is_serialized() -> None:
    _, kwargs = MessageBatchTrigger("msgbatch_x", "c", cancel_on_kill=True).serialize()
    assert kwargs["cancel_on_kill"] is True
    assert MessageBatchTrigger(**kwargs).cancel_on_kill is True
    assert MessageBatchTrigger("msgbatch_x").serialize()[1]["cancel_on_kill"] is False


def test_sensor_and_operator_pass_cancel_on_kill() -> None:
    from airflow_provider_batches.operators.batch import MessageBatchOperator
    from airflow_provider_batches.sensors.batch import MessageBatchSensor

    sensor = MessageBatchSensor(task_id="s", batch_id="msgbatch_x")
    assert sensor._trigger(None).cancel_on_kill is False
    sensor = MessageBatchSensor(task_id="s", batch_id="msgbatch_x", cancel_on_kill=True)
    assert sensor._trigger(None).cancel_on_kill is True
    operator = MessageBatchOperator(task_id="o", requests=[])
    assert operator._trigger("msgbatch_x", None).cancel_on_kill is True


async def test_on_kill_cancels_the_other_shards_it_names(
    fake: FakeBatchesServer, fake_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deferred split set waits on one shard at a time; a user kill cancels every shard."""
    ids = [fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(3)]
    _install(monkeypatch, StubComms({"r": {"submit": "failed"}}))
    trigger = _trigger(ids[0], fake_conn, cancel_on_kill=True, cancel_with=ids[1:])
    assert MessageBatchTrigger(**trigger.serialize()[1]).cancel_with == ids[1:]

    await trigger.on_kill()

    assert [fake.request_count(batch_id, "POST") for batch_id in ids] == [1, 1, 1]
