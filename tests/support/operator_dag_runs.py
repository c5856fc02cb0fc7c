"""Helpers for the operator's ``dag.test()`` tests and their subprocess runners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from helpers import DAGS_DIR

DAG_FILE = DAGS_DIR / "operator_batches.py"


def requests_for(count: int, prefix: str = "req") -> list[dict[str, Any]]:
    params = {"model": "claude-test", "max_tokens": 8}
    return [
        {
            "custom_id": f"{prefix}-{i}",
            "params": {**params, "messages": [{"role": "user", "content": f"n{i}"}]},
        }
        for i in range(count)
    ]


def use_variable_records(monkeypatch: Any = None) -> None:
    """Keep records in Variables (the 3.0-3.2 fallback): until ``monkeypatch`` undoes it, or for
    the rest of this process without one (a subprocess runner).

    ``dag.test()`` deletes and recreates the DAG run it re-runs, and with it the run's
    ``task_state_store`` rows; Variables survive, so re-runs of one logical date behave like a
    clear of the same task instance.
    """
    from airflow_provider_batches.operators import _task_record as task_record

    def variable_records(context: Any, identity: Any) -> Any:
        return task_record.VariableRecords(identity)

    if monkeypatch is None:
        task_record.record_store_for = variable_records
    else:
        monkeypatch.setattr(task_record, "record_store_for", variable_records)


def load_dag(dag_id: str) -> Any:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def read_run(run: Any) -> tuple[dict[str, str], dict[tuple[str, str], Any]]:
    """A finished DAG run's task states, and its XCom values by (task_id, key)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        states = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id)
        )
        return states, {(row.task_id, row.key): row.value for row in rows}


def run_dag(
    dag_id: str, conf: dict[str, Any], logical_date: datetime | None = None
) -> tuple[Any, dict[str, str], dict[tuple[str, str], Any]]:
    """Run the DAG once; return the run, task states and XCom values by (task_id, key).

    The same ``logical_date`` twice is the same DAG run: the second call clears its task
    instances and runs them again, as a user's clear does.
    """

    kwargs: dict[str, Any] = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = kwargs["run_after"] = logical_date
    run = load_dag(dag_id).test(**kwargs)
    return (run, *read_run(run))
