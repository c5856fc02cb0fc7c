"""MessageBatchOperator in real Airflow through ``dag.test()``: submit, wait, XCom, re-runs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, harness_needs_airflow_31
from operator_dag_runs import requests_for, run_dag

from airflow_provider_batches._compat import supports
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = [pytest.mark.matrix, pytest.mark.airflow_db]


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
@harness_needs_airflow_31
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
        assert f"deadline passed while batch {batch_id} still ran: canceled it" in output
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


@harness_needs_airflow_31
def test_too_many_failed_polls_leave_the_batch_running_for_the_next_try(
    airflow_db: object,
    set_connection: Any,
    variable_records: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A wait that ends in an error fails the task but never cancels the batch (it still
    works); the next try re-attaches to it: no second create, no cancel."""
    when = datetime(2026, 1, 2, 3, 4, 7, tzinfo=timezone.utc)
    conf = {"requests": requests_for(1)}
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        fake.inject_fault(Fault("status", status=503, method="GET", times=-1))
        _, states, _ = run_dag("operator_errors", conf, logical_date=when)
        (batch_id,) = {r.batch_id for r in fake.requests if r.batch_id}
        cancels_after_error = fake.request_count(batch_id, "POST")
        status_after_error = fake.get_batch(batch_id)["processing_status"]
        output = capfd.readouterr().out

        fake.clear_faults()
        fake.end_batch(batch_id)
        _, next_states, xcoms = run_dag("operator_errors", conf, logical_date=when)
        creates = _creates(fake)
        cancels = fake.request_count(batch_id, "POST")

    assert states["submit"] == "failed"
    assert "BatchWaitError" in output
    assert cancels_after_error == 0
    assert status_after_error == "in_progress"
    assert f"Batch {batch_id} was left running: an error ends the wait" in output
    assert next_states["submit"] == "success"
    assert xcoms[("submit", "return_value")]["id"] == batch_id
    assert creates == 1
    assert cancels == 0


def _triggerer_fails_the_trigger(
    monkeypatch: pytest.MonkeyPatch, error: str, meanwhile: Any = None
) -> None:
    """The triggerer fails the trigger without an event, as ``Trigger.submit_failure`` (the
    trigger class would not import, or it crashed) and the scheduler's deferral timeout do:
    Airflow resumes the task instance with ``next_method="__fail__"`` and the reason in
    ``next_kwargs``. ``dag.test()`` has no such path of its own, so the deferral it hands to
    its in-line trigger is rewritten to exactly that; the task's resumption is Airflow's own.
    ``meanwhile`` runs where the trigger would have (time passing in the triggerer)."""
    from airflow.sdk.definitions import dag as dag_module
    from airflow.sdk.execution_time import supervisor

    real_run_task = supervisor.run_task_in_process

    def run_task(ti: Any, task: Any, client: Any = None) -> Any:
        result = real_run_task(ti, task) if client is None else real_run_task(ti, task, client)
        if type(result.msg).__name__ == "DeferTask":
            failure = {"error": error, "traceback": ["emulated trigger failure\n"]}
            result.msg = result.msg.model_copy(
                update={"next_method": "__fail__", "next_kwargs": failure}
            )
        return result

    def no_event(trigger: Any, ti: Any = None) -> None:  # Airflow 3.0 passes no ti
        if meanwhile is not None:
            meanwhile()

    monkeypatch.setattr(supervisor, "run_task_in_process", run_task)
    monkeypatch.setattr(dag_module, "_run_inline_trigger", no_event)


def _only_batch_id() -> str:
    """The one batch on the fake (listed: no poll ever named it)."""
    from airflow_provider_batches.hooks.batch import MessageBatchHook

    (batch,) = MessageBatchHook("anthropic_default").list_batches().data
    return batch.id


def _end_each_batch_once_waited(monkeypatch: pytest.MonkeyPatch, fake: FakeBatchesServer) -> None:
    """The batch a trigger starts waiting for ends at once (bounds a wait on a long batch)."""
    from airflow_provider_batches.triggers.batch import MessageBatchTrigger

    real_run = MessageBatchTrigger.run

    async def run(trigger: Any) -> Any:
        fake.end_batch(trigger.batch_id)
        async for event in real_run(trigger):
            yield event

    monkeypatch.setattr(MessageBatchTrigger, "run", run)


def test_a_trigger_the_triggerer_failed_leaves_the_batch_to_the_next_try(
    airflow_db: object,
    set_connection: Any,
    variable_records: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The triggerer fails the deferred task's trigger (``__fail__``): an infrastructure
    failure, not a user kill. The next try must not read the unfinished deferral as a kill:
    it re-attaches to the still running batch, cancels nothing and creates nothing."""
    when = datetime(2026, 1, 2, 3, 4, 8, tzinfo=timezone.utc)
    conf = {"requests": requests_for(2)}
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        with monkeypatch.context() as patched:
            _triggerer_fails_the_trigger(patched, "Trigger failure")
            _, states, _ = run_dag("operator_deferrable", conf, logical_date=when)
        batch_id = _only_batch_id()
        status_after_failure = fake.get_batch(batch_id)["processing_status"]
        output = capfd.readouterr().out

        _end_each_batch_once_waited(monkeypatch, fake)
        _, next_states, xcoms = run_dag("operator_deferrable", conf, logical_date=when)
        creates = _creates(fake)
        cancels = fake.request_count(batch_id, "POST")

    assert states["submit"] == "failed"
    assert "TaskDeferralError" in output
    assert status_after_failure == "in_progress"
    assert f"Batch {batch_id} was left running: its wait failed in the triggerer" in output
    assert next_states["submit"] == "success"
    assert xcoms[("submit", "return_value")]["id"] == batch_id
    assert creates == 1
    assert cancels == 0


@pytest.mark.parametrize(
    ("dag_id", "canceled"), [("operator_timeout", True), ("operator_timeout_deferred_keep", False)]
)
def test_a_deferral_timeout_past_the_deadline_cancels_only_when_asked(
    airflow_db: object,
    set_connection: Any,
    variable_records: None,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    canceled: bool,
) -> None:
    """Airflow's deferral timeout (the trigger gave no event by the wait's deadline plus a
    margin): the wait's own deadline has passed, so ``cancel_on_timeout`` decides, at once."""
    import time

    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        _triggerer_fails_the_trigger(
            monkeypatch, "Trigger timeout", meanwhile=lambda: time.sleep(1.6)
        )
        _, states, _ = run_dag(dag_id, {"requests": requests_for(2)})
        batch_id = _only_batch_id()
        cancels = fake.request_count(batch_id, "POST")

    assert states["submit"] == "failed"
    assert cancels == (1 if canceled else 0)


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
