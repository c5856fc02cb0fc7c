"""`make demo`: run example_dags/example_batch_from_upstream.py end to end on the fake API.

A throwaway Airflow home with a fresh SQLite DB; the embedded fake Batches API on loopback; the
DAG builds requests, MessageBatchOperator submits them and defers to MessageBatchTrigger (run
in-line by ``dag.test()``), and the downstream task reads the ended batch from XCom. Prints
what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "example_batch_from_upstream"
DEMO_KEY = "sk-ant-demo-key-not-a-real-secret"


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="batches-demo-airflow-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "EXAMPLE_BATCH_POLL_SECONDS": "1",
        }
    )
    try:
        return _run(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(home: Path) -> int:
    step("Creating a throwaway Airflow metadata DB", home)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from airflow_provider_batches.testing import FakeBatchesServer

    # Batches take 6 s to process, long enough that the operator really defers.
    with FakeBatchesServer(api_key=DEMO_KEY, processing_seconds=6) as fake:
        step("Fake Message Batches API listening at", fake.base_url)
        os.environ["AIRFLOW_CONN_ANTHROPIC_DEFAULT"] = json.dumps(
            {"conn_type": "anthropic_batches", "password": DEMO_KEY, "host": fake.base_url}
        )
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(REPO / "example_dags" / f"{DAG_ID}.py"))
        if bag.import_errors:
            print(bag.import_errors, file=sys.stderr)
            return 1
        step("Running DAG", f"{DAG_ID} (build requests -> submit and wait -> use results)")
        started = time.monotonic()
        run = bag.dags[DAG_ID].test()
        elapsed = time.monotonic() - started
        return report(fake, run, elapsed)


def report(fake: object, run: object, elapsed: float) -> int:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = run.get_task_instances(session=session)  # type: ignore[attr-defined]
        states = {ti.task_id: ti.state for ti in tis}
        xcoms = {
            row.task_id: row.value
            for row in session.scalars(
                select(XComModel).where(
                    XComModel.run_id == run.run_id,  # type: ignore[attr-defined]
                    XComModel.key == "return_value",
                )
            )
        }
    requests = fake.requests  # type: ignore[attr-defined]
    posts = sum(1 for r in requests if r.method == "POST")
    polls = sum(1 for r in requests if r.method == "GET" and r.batch_id)
    print()
    step("DAG run", f"{run.state} in {elapsed:.1f} s")  # type: ignore[attr-defined]
    for task_id, state in states.items():
        print(f"     {task_id:<16} {state}")
    step("API calls the fake saw", f"{posts} create, {polls} retrieve polls")
    print("     (the create on the worker, the polls from MessageBatchTrigger after it deferred)")
    step("The operator's XCom (what the downstream task received):", "")
    print(json.dumps(xcoms.get("submit_and_wait"), indent=2))
    step("The downstream task returned:", json.dumps(xcoms.get("use_results")))
    ok = run.state == "success" and posts == 1 and polls >= 2  # type: ignore[attr-defined]
    print("\nDemo " + ("succeeded." if ok else "FAILED."))
    return 0 if ok else 1


def step(title: str, detail: object) -> None:
    print(f"==> {title} {detail}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
