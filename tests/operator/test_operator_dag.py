"""MessageBatchOperator in real Airflow through ``dag.test()``: submit, wait, XCom, re-runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY
from operator_dag_runs import requests_for, run_dag, use_variable_records

from airflow_provider_batches._compat import supports
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.airflow_db


@pytest.fixture
def op_fake(airflow_db: object, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=1.0) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


@pytest.fixture
def variable_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_batches import task_record

    monkeypatch.setattr(task_record, "record_store_for", task_record.record_store_for)
    use_variable_records()


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _lists(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.batch_id is None)


@pytest.mark.parametrize("dag_id", ["operator_deferrable", "operator_in_worker"])
def test_submit_wait_and_return_the_ended_batch(op_fake: FakeBatchesServer, dag_id: str) -> None:
    run, states, xcoms = run_dag(dag_id, {"requests": requests_for(3)})

    assert run.state == "success"
    assert states == {"make_requests": "success", "submit": "success", "received": "success"}
    assert _creates(op_fake) == 1
    batch = xcoms[("submit", "return_value")]
    assert batch == op_fake.get_batch(batch["id"])
    assert batch["processing_status"] == "ended"
    assert batch["request_counts"]["succeeded"] == 3
    assert xcoms[("received", "return_value")] == {"id": batch["id"], "succeeded": 3}
    assert op_fake.request_count(batch["id"], "GET") >= 1
    if supports("task_state_store"):
        assert _state_store_record(run)["batch_id"] == batch["id"], "in task_state_store"


def _state_store_record(run: Any) -> dict[str, Any]:
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        (value,) = session.scalars(
            select(TaskStateStoreModel.value).where(
                TaskStateStoreModel.dag_id == run.dag_id,
                TaskStateStoreModel.run_id == run.run_id,
                TaskStateStoreModel.task_id == "submit",
                TaskStateStoreModel.key == "anthropic_message_batch",
            )
        )
    record: dict[str, Any] = json.loads(value)
    return record


def test_a_clear_re_attaches_to_the_recorded_batch(
    op_fake: FakeBatchesServer, variable_records: None
) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    conf = {"requests": requests_for(2)}
    _, _, first = run_dag("operator_deferrable", conf, logical_date=when)
    _, states, second = run_dag("operator_deferrable", conf, logical_date=when)

    assert states["submit"] == "success"
    assert _creates(op_fake) == 1
    assert second[("submit", "return_value")] == first[("submit", "return_value")]
    assert _lists(op_fake) == 0, "re-attached through the record, not by searching"


def test_new_requests_or_resubmit_start_a_new_batch(
    op_fake: FakeBatchesServer, variable_records: None
) -> None:
    when = datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc)
    run_dag("operator_deferrable", {"requests": requests_for(2)}, logical_date=when)
    _, _, changed = run_dag("operator_deferrable", {"requests": requests_for(3)}, logical_date=when)
    assert _creates(op_fake) == 2
    assert changed[("submit", "return_value")]["request_counts"]["succeeded"] == 3

    conf = {"requests": requests_for(1)}
    run_dag("operator_resubmit", conf, logical_date=when)
    run_dag("operator_resubmit", conf, logical_date=when)
    assert _creates(op_fake) == 4


def test_requests_from_a_jsonl_path(op_fake: FakeBatchesServer, tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [json.dumps(r) for r in requests_for(4)]
    path.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")

    run, _, xcoms = run_dag("operator_from_path", {"path": str(path)})

    assert run.state == "success"
    assert xcoms[("submit", "return_value")]["request_counts"]["succeeded"] == 4


def test_prompts_build_the_requests(op_fake: FakeBatchesServer) -> None:
    run, _, xcoms = run_dag("operator_prompts", {})
    assert run.state == "success"
    batch = xcoms[("submit", "return_value")]
    assert batch["request_counts"]["succeeded"] == 2


@pytest.mark.parametrize(
    ("dag_id", "canceled"), [("operator_timeout", True), ("operator_timeout_keep", False)]
)
def test_giving_up_cancels_only_when_asked(
    airflow_db: object,
    set_connection: Any,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    canceled: bool,
) -> None:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        run, states, _ = run_dag(dag_id, {"requests": requests_for(2)})
        (batch_id,) = {r.batch_id for r in fake.requests if r.batch_id}
        cancels = fake.request_count(batch_id, "POST")
        status = fake.get_batch(batch_id)["processing_status"]

    assert states["submit"] == "failed"
    assert run.state == "failed"
    assert _creates(fake) == 1
    assert cancels == (1 if canceled else 0)
    assert status == ("canceling" if canceled else "in_progress")
    output = capfd.readouterr().out
    assert "BatchWaitTimeoutError" in output, "a give-up, not an outcome failure"
    if canceled:
        assert f"gave up while batch {batch_id} still ran: canceled it" in output
    else:
        assert f"Batch {batch_id} was left running (cancel_on_timeout=False)" in output


def test_a_create_answer_lost_after_the_batch_was_made_leaves_one_batch(
    op_fake: FakeBatchesServer,
) -> None:
    op_fake.inject_fault(Fault("drop", method="POST", after_effect=True))

    run, _, xcoms = run_dag("operator_deferrable", {"requests": requests_for(2)})

    assert run.state == "success"
    assert op_fake.stats()["batches"] == 1
    assert _creates(op_fake) == 1
    (batch,) = [op_fake.get_batch(r.batch_id) for r in op_fake.requests if r.batch_id][:1]
    assert xcoms[("submit", "return_value")] == batch
    assert _lists(op_fake) >= 1, "found through the list, not created again"


def test_too_many_failed_polls_give_up_and_cancel(
    airflow_db: object, set_connection: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        fake.inject_fault(Fault("status", status=503, method="GET", times=-1))
        _, states, _ = run_dag("operator_errors", {"requests": requests_for(1)})
        (batch_id,) = {r.batch_id for r in fake.requests if r.batch_id}
        cancels = fake.request_count(batch_id, "POST")
        canceled_at = fake.get_batch(batch_id)["cancel_initiated_at"]

    assert states["submit"] == "failed"
    assert cancels == 1
    assert canceled_at is not None
    output = capfd.readouterr().out
    assert "BatchWaitError" in output
    assert f"gave up while batch {batch_id} still ran: canceled it" in output


def test_results_path_stores_the_results_and_pushes_the_manifest(
    op_fake: FakeBatchesServer, tmp_path: Path
) -> None:
    import hashlib

    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(r) + "\n" for r in requests_for(3)))
    store = tmp_path / "results"

    run, _, xcoms = run_dag(
        "operator_results", {"path": str(requests_file), "results_path": f"file://{store}"}
    )

    assert run.state == "success"
    batch = xcoms[("submit", "return_value")]
    assert batch == op_fake.get_batch(batch["id"]), "the return value stays the ended batch"
    manifest = xcoms[("submit", "manifest")]
    assert manifest["batch_id"] == batch["id"]
    written = (store / batch["id"] / "results.jsonl").read_bytes()
    assert hashlib.sha256(written).hexdigest() == manifest["results_sha256"]
    custom_ids = sorted(json.loads(line)["custom_id"] for line in written.splitlines())
    assert custom_ids == ["req-0", "req-1", "req-2"]
    assert (store / batch["id"] / "succeeded.jsonl").exists()
    assert json.loads((store / batch["id"] / "manifest.json").read_text()) == manifest
