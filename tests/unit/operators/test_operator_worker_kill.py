"""A worker SIGKILLed right after the create returned: the retry creates nothing.

The first try runs in a subprocess (``operator_kill_runner.py``) that kills itself with SIGKILL the
moment the create has answered, before or after the record is written; the retry is the same
task instance (same DAG run, task and map index) run again with ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, SUPPORT_DIR, wait_until
from operator_dag_runs import requests_for, run_dag

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = [pytest.mark.matrix, pytest.mark.airflow_db]

RUNNER = SUPPORT_DIR / "operator_kill_runner.py"


def _same_airflow_env() -> dict[str, str]:
    """This process's environment, with the Fernet key this process uses.

    ``airflow db migrate`` may have written an ``airflow.cfg`` with a key after this process
    read its configuration without one: the two processes would then disagree on whether
    Variables are encrypted.
    """
    from airflow.configuration import conf

    return {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key", fallback="")}


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _lists(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.batch_id is None)


@pytest.mark.parametrize(
    ("crash_point", "second_lists"), [("after_record", False), ("before_record", True)]
)
def test_retry_after_sigkill_right_after_create_makes_no_second_batch(
    op_fake: FakeBatchesServer, variable_records: None, crash_point: str, second_lists: bool
) -> None:
    second = 7 if crash_point == "after_record" else 8
    when = datetime(2026, 2, 3, 4, 5, second, tzinfo=timezone.utc)
    conf = {"requests": requests_for(3)}
    first = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "operator_deferrable",
            json.dumps(conf),
            when.isoformat(),
            crash_point,
        ],
        env=_same_airflow_env(),
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert first.returncode == -signal.SIGKILL, first.stdout[-3000:] + first.stderr[-3000:]
    assert _creates(op_fake) == 1
    assert op_fake.request_count(method="GET") == 0, "the first try died before any poll"
    lists_before = _lists(op_fake)

    run, states, xcoms = run_dag("operator_deferrable", conf, logical_date=when)

    assert run.state == "success"
    assert states["submit"] == "success"
    assert _creates(op_fake) == 1, "the retry created a second batch"
    assert op_fake.stats()["batches"] == 1
    batch = xcoms[("submit", "return_value")]
    assert batch["request_counts"]["succeeded"] == 3
    assert (_lists(op_fake) > lists_before) is second_lists


@pytest.mark.parametrize("cancel_on_kill", [True, False])
def test_sigterm_in_the_worker_cancels_the_tasks_batch(
    airflow_db: object, set_connection: Any, tmp_path: Path, cancel_on_kill: bool
) -> None:
    """Airflow's task runner turns SIGTERM (a user's mark failed/success or clear of a task
    running in a worker) into ``on_kill``; the operator then cancels the batch it waits for."""
    dag_id = "operator_in_worker" if cancel_on_kill else "operator_in_worker_keep"
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        log = (tmp_path / "run.log").open("wb")
        task = subprocess.Popen(
            [
                sys.executable,
                str(SUPPORT_DIR / "operator_run_dag.py"),
                dag_id,
                json.dumps({"requests": requests_for(2)}),
            ],
            env=_same_airflow_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: fake.request_count(method="GET") >= 3, timeout=180)
            (batch_id,) = {r.batch_id for r in fake.requests if r.batch_id}
            assert fake.request_count(batch_id, "POST") == 0
            task.send_signal(signal.SIGTERM)
            if cancel_on_kill:
                wait_until(lambda: fake.request_count(batch_id, "POST") == 1, timeout=60)
                assert fake.get_batch(batch_id)["cancel_initiated_at"] is not None
            else:
                polls = fake.request_count(batch_id, "GET")
                wait_until(lambda: fake.request_count(batch_id, "GET") >= polls + 3, timeout=60)
                assert fake.request_count(batch_id, "POST") == 0
                assert fake.get_batch(batch_id)["processing_status"] == "in_progress"
        finally:
            task.kill()
            task.wait(timeout=30)
            log.close()
