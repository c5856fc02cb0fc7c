"""One connection lookup per task run, however many pokes; and a bad
option given to ``.expand()`` fails its mapped task before any request (item 9)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import API_KEY, DAGS_DIR, wait_until

from airflow_provider_batches.hooks import batch as hook_module
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.sensors.batch import MessageBatchSensor
from airflow_provider_batches.testing import FakeBatchesServer

POKES = 4


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Counts connection lookups and mask messages, passing each through to the real one."""
    seen: dict[str, list[str]] = {"connections": [], "masks": []}
    real_get_connection = MessageBatchHook.get_connection
    real_mask = hook_module._mask

    def get_connection(cls: type[MessageBatchHook], conn_id: str) -> Any:
        seen["connections"].append(conn_id)
        return real_get_connection(conn_id)

    def mask(secret: str) -> None:
        seen["masks"].append("masked")
        real_mask(secret)

    monkeypatch.setattr(MessageBatchHook, "get_connection", classmethod(get_connection))
    monkeypatch.setattr(hook_module, "_mask", mask)
    return seen


def test_pokes_of_one_run_share_one_hook(
    fake: FakeBatchesServer, fake_conn: str, lookups: dict[str, list[str]]
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    sensor = MessageBatchSensor(task_id="wait", batch_id=batch_id, deferrable=False)
    for _ in range(POKES):
        assert sensor.poke({}).is_done is False
    assert fake.request_count(batch_id) == POKES
    assert lookups["connections"] == [fake_conn]
    assert lookups["masks"] == ["masked"]


def test_a_new_conn_id_after_templating_gets_a_new_hook(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    lookups: dict[str, list[str]],
) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=None)["id"]
    set_connection("first_conn", fake.base_url)
    set_connection("second_conn", fake.base_url)
    sensor = MessageBatchSensor(task_id="wait", batch_id=batch_id, conn_id="first_conn")
    sensor.poke({})
    sensor.conn_id = "second_conn"  # what rendering a templated conn_id does
    sensor.poke({})
    sensor.poke({})
    assert lookups["connections"] == ["first_conn", "second_conn"]


# ---- in real Airflow --------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def dag_env(
    airflow_db: object, module_fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> FakeBatchesServer:
    set_connection("anthropic_default", module_fake.base_url, max_retries=1)
    return module_fake


def _run(file: str, dag_id: str, batch_id: str) -> dict[str, str]:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(DAGS_DIR / file))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[dag_id].test(run_conf={"batch_id": batch_id})
    with create_session() as session:
        return {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}


@pytest.mark.airflow_db
def test_poke_mode_looks_the_connection_up_once_per_run(
    dag_env: FakeBatchesServer, lookups: dict[str, list[str]]
) -> None:
    batch_id = dag_env.create_batch(num_requests=1, ends_after=None)["id"]

    def end_after_polls() -> None:
        wait_until(lambda: dag_env.request_count(batch_id) >= POKES, timeout=120)
        dag_env.end_batch(batch_id)

    ender = threading.Thread(target=end_after_polls, daemon=True)
    ender.start()
    states = _run("sensor_modes.py", "sensor_poke", batch_id)
    ender.join(timeout=5)
    assert states["wait"] == "success"
    assert dag_env.request_count(batch_id) >= POKES
    assert lookups["connections"] == ["anthropic_default"]
    assert lookups["masks"] == ["masked"]


@pytest.mark.airflow_db
def test_a_bad_option_from_expand_fails_the_mapped_task_before_any_request(
    dag_env: FakeBatchesServer,
) -> None:
    """Airflow builds a mapped operator only when its task instance runs: that is the
    earliest a value given to ``.expand()`` can be checked."""
    batch_id = dag_env.create_batch(num_requests=1)["id"]
    states = _run("runtime_mapped.py", "runtime_mapped_bad_expand", batch_id)
    assert states == {"wait": "failed"}
    assert dag_env.request_count(batch_id) == 0
