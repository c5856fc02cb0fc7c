"""Task-level outcomes of a representative subset of the fault matrix, through ``dag.test()``.

``dag.test()`` runs the sensor on an in-process worker, runs the deferred trigger in-line and
resumes the task, so each case shows the final task state, the XCom value and how many
requests the fake API saw, for real. Each run is also audited for the API key: the run's output,
its XCom and task instance rows; the last test audits the whole test Airflow home (metadata DB
and every file, logs included).

The first ``dag.test()`` of a process pays a one-off ~20 s start of Airflow's in-process
execution API; later runs take about a second.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, DAGS_DIR, TriggerSpy
from reliability_fixtures import SecretsAudit

from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.airflow_db

DAG_FILE = DAGS_DIR / "reliability_faults.py"
CONN_ID = "reliability_dag"


@dataclass(frozen=True)
class TaskCase:
    id: str
    dag_id: str
    extras: dict[str, Any]
    arrange: Callable[[FakeBatchesServer], str]
    state: str
    returns_batch: bool
    requests: int | tuple[int, int]
    #: Text that must appear in the run's log output (names the cause).
    logged: tuple[str, ...] = ()
    #: Requests made by the deferred trigger (after the worker's check); None: never deferred.
    trigger_requests: int | tuple[int, int] | None = None


def _transient(fake: FakeBatchesServer) -> str:
    batch_id = fake.create_batch(num_requests=3, ends_after=0)["id"]
    fake.inject_fault(Fault(kind="status", status=503, times=3, batch_id=batch_id))
    return batch_id


def _missing(fake: FakeBatchesServer) -> str:
    return "msgbatch_reliabilityTaskLevel404"


def _never_ends(fake: FakeBatchesServer) -> str:
    return fake.create_batch(num_requests=3, ends_after=None)["id"]


def _always_503(fake: FakeBatchesServer) -> str:
    batch_id = fake.create_batch(num_requests=3, ends_after=0)["id"]
    fake.inject_fault(Fault(kind="status", status=503, times=-1, batch_id=batch_id))
    return batch_id


TASK_CASES = (
    # The worker's first check fails after 3 attempts (max_retries=2), the task defers, and
    # the trigger's first poll finds the batch ended: 3 + 1 requests.
    TaskCase(
        "transient-503-then-success",
        "reliability_wait",
        {"max_retries": 2},
        _transient,
        "success",
        True,
        4,
        trigger_requests=1,
    ),
    # A 404 on the worker's first check fails the task at once: no deferral, no retry.
    TaskCase(
        "404-fails-fast",
        "reliability_wait",
        {"max_retries": 2},
        _missing,
        "failed",
        False,
        1,
        ("BatchPermanentError", "HTTP 404", "not_found_error"),
    ),
    # The batch never ends; the trigger's deadline (sensor timeout 1.5 s) ends the wait.
    TaskCase(
        "timeout",
        "reliability_wait_short",
        {"max_retries": 2},
        _never_ends,
        "failed",
        False,
        (2, 20),
        ("BatchWaitTimeoutError", "deadline passed"),
        trigger_requests=(1, 19),
    ),
    # 503 for good: 1 failed check on the worker, then 2 failed polls in the trigger
    # (max_consecutive_errors=2), no hook retries (max_retries=0): 3 requests.
    TaskCase(
        "transient-outlasts-tolerance",
        "reliability_wait",
        {"max_retries": 0},
        _always_503,
        "failed",
        False,
        3,
        ("BatchWaitError", "gave up after 2 consecutive failed polls"),
        trigger_requests=2,
    ),
)

#: What each run left behind, for the Airflow-home audit at the end of the module.
RUNS: list[str] = []


@pytest.fixture(scope="module")
def module_fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY) as server:
        yield server


def _load_dag(dag_id: str) -> Any:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _run(case: TaskCase, fake: FakeBatchesServer, set_connection: Callable[..., None]) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    set_connection(CONN_ID, fake.base_url, **case.extras)
    close_shared_sync_clients()  # the worker's client is cached per process
    batch_id = case.arrange(fake)
    run = _load_dag(case.dag_id).test(run_conf={"batch_id": batch_id})
    RUNS.append(run.run_id)
    with create_session() as session:
        states = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
        xcoms = {
            (row.task_id, row.key): row.value
            for row in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == case.dag_id, XComModel.run_id == run.run_id
                )
            )
        }
        ti_rows = [
            {column.name: getattr(ti, column.name) for column in TaskInstance.__table__.columns}
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == case.dag_id, TaskInstance.run_id == run.run_id
                )
            )
        ]
    return {
        "batch_id": batch_id,
        "run": run,
        "states": states,
        "xcoms": xcoms,
        "ti_rows": ti_rows,
        "requests": fake.request_count(batch_id),
    }


@pytest.mark.parametrize("case", TASK_CASES, ids=[c.id for c in TASK_CASES])
def test_task_outcome(
    case: TaskCase,
    airflow_db: Path,
    module_fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    spy = TriggerSpy(module_fake).install(monkeypatch)
    result = _run(case, module_fake, set_connection)

    assert result["states"] == {"wait": case.state}
    expected_state = "success" if case.state == "success" else "failed"
    assert result["run"].state == expected_state
    value = result["xcoms"].get(("wait", "return_value"))
    if case.returns_batch:
        assert value == module_fake.get_batch(result["batch_id"])
        assert value["processing_status"] == "ended"
    else:
        assert value is None
    seen = result["requests"]
    low, high = (case.requests, case.requests) if isinstance(case.requests, int) else case.requests
    assert low <= seen <= high, f"the API saw {seen} requests, expected {case.requests}"
    # Deferral is proven by the trigger having run, not by a count a poking sensor reaches too.
    trigger_runs = spy.runs_for(result["batch_id"])
    if case.trigger_requests is None:
        assert trigger_runs == []
    else:
        (trigger_run,) = trigger_runs
        by_trigger = seen - trigger_run["requests_before"]
        low, high = (
            (case.trigger_requests,) * 2
            if isinstance(case.trigger_requests, int)
            else case.trigger_requests
        )
        assert low <= by_trigger <= high, f"the trigger sent {by_trigger} requests"
        assert len(trigger_run["events"]) == 1

    out, err = capfd.readouterr()
    logged = out + err + "\n".join(record.getMessage() for record in caplog.records)
    for text in case.logged:
        assert text in logged, f"{text!r} not in the run's log output"

    audit = SecretsAudit()
    audit.text(out, f"{case.id} stdout")
    audit.text(err, f"{case.id} stderr")
    audit.log_records(caplog.records, case.id)
    audit.obj(result["xcoms"], f"{case.id} XCom")
    audit.obj(result["ti_rows"], f"{case.id} task instance rows")
    assert audit.hits == []


def test_zz_airflow_home_holds_no_secret(
    airflow_db: Path,
    module_fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """After the runs above: no key in any table of the metadata DB or any file of the home."""
    if not RUNS:  # this test was selected alone: make one run to audit
        _run(TASK_CASES[0], module_fake, set_connection)
    capfd.readouterr()
    db_path = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    assert db_path.exists()
    audit = SecretsAudit()
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        stored_connections = db.execute("SELECT COUNT(*) FROM connection").fetchone()[0]
        runs_in_db = db.execute(
            "SELECT COUNT(*) FROM dag_run WHERE run_id IN (%s)" % ",".join("?" * len(RUNS)),  # noqa: UP031
            RUNS,
        ).fetchone()[0]
    assert runs_in_db == len(RUNS)
    rows = audit.sqlite(db_path, "metadata DB")
    assert rows > 0
    # Every file of the Airflow home: config, logs and, when no connection is stored in the DB
    # (this suite's connections come from the environment), the DB file's raw bytes too, which
    # also covers deleted rows still on free pages.
    skip = [] if stored_connections == 0 else [db_path]
    files = audit.files(db_path.parent, "AIRFLOW_HOME", skip=skip)
    print(f"\nAirflow home audit: {rows} DB rows, files {files}, {audit.searched} texts searched")
    assert audit.hits == []
