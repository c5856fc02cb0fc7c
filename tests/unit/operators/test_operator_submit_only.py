"""MessageBatchOperator(wait_for_completion=False): submit once, return the batch id, and let a
sensor and the results operator take it; a retry or a clear never creates a second batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, DAGS_DIR
from operator_dag_runs import requests_for, use_variable_records

from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.airflow_db

DAG_FILE = DAGS_DIR / "operator_submit_only.py"


@pytest.fixture
def op_fake(airflow_db: object, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _run(
    dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None
) -> tuple[Any, dict[str, str], dict[tuple[str, str], Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = kwargs["run_after"] = logical_date
    run = bag.dags[dag_id].test(**kwargs)
    with create_session() as session:
        tis = run.get_task_instances(session=session)
        states = {ti.task_id: ti.state for ti in tis}
        tries = {ti.task_id: ti.try_number for ti in tis}
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        )
        xcoms = {(row.task_id, row.key): row.value for row in rows}
    xcoms[("_tries", "")] = tries
    return run, states, xcoms


def test_submit_only_returns_the_id_that_the_sensor_and_results_operator_take(
    op_fake: FakeBatchesServer, tmp_path: Path
) -> None:
    conf = {"requests": requests_for(3), "results_path": f"file://{tmp_path}"}
    _, states, xcoms = _run("operator_submit_only", conf)

    assert states == {
        "make_requests": "success",
        "submit": "success",
        "wait": "success",
        "store": "success",
    }
    batch_id = xcoms[("submit", "return_value")]
    assert isinstance(batch_id, str)
    assert _creates(op_fake) == 1
    ended = op_fake.get_batch(batch_id)
    assert xcoms[("wait", "return_value")] == ended
    assert xcoms[("store", "return_value")]["line_counts"]["succeeded"] == 3
    assert (tmp_path / batch_id / "manifest.json").exists()


def test_a_clear_after_the_create_re_attaches(
    op_fake: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    use_variable_records(monkeypatch)
    when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    conf = {"requests": requests_for(2), "results_path": f"file://{tmp_path}"}
    _, _, first = _run("operator_submit_only", conf, logical_date=when)
    _, states, second = _run("operator_submit_only", conf, logical_date=when)

    assert states["submit"] == "success"
    assert _creates(op_fake) == 1
    assert second[("submit", "return_value")] == first[("submit", "return_value")]


def test_a_retry_after_a_lost_create_answer_finds_that_batch(
    op_fake: FakeBatchesServer,
) -> None:
    op_fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    # The first try's search for it fails too (both attempts of its one list request): only
    # the retry can find it.
    op_fake.inject_fault(Fault("status", status=500, endpoint="list", times=2))
    _, states, xcoms = _run("operator_submit_only_retry", {"requests": requests_for(2)})

    assert states == {"submit": "success"}
    assert xcoms[("_tries", "")]["submit"] == 2, "the first try failed after the create"
    assert _creates(op_fake) == 1
    (batch_id,) = [b["id"] for b in _listed(op_fake)]
    assert xcoms[("submit", "return_value")] == batch_id


def _listed(fake: FakeBatchesServer) -> list[dict[str, Any]]:
    import httpx

    response = httpx.get(
        f"{fake.base_url}/v1/messages/batches",
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
    )
    return list(json.loads(response.text)["data"])


def test_results_path_without_waiting_fails_at_parse() -> None:
    from airflow_provider_batches.operators.batch import MessageBatchOperator

    with pytest.raises(ValueError, match="results_path needs wait_for_completion=True"):
        MessageBatchOperator(
            task_id="t", requests=requests_for(1), wait_for_completion=False, results_path="/x"
        )
    with pytest.raises(ValueError, match="results_path needs wait_for_completion=True"):
        MessageBatchOperator.partial(task_id="t", wait_for_completion=False, results_path="/x")
    with pytest.raises(ValueError, match="wait_for_completion must be True or False"):
        MessageBatchOperator(task_id="t", requests=requests_for(1), wait_for_completion="no")
