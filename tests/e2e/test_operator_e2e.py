"""End to end: MessageBatchOperator under a real scheduler, triggerer, DAG processor and API
server, against the embedded fake API (processing never ends by itself here: the test ends
batches when it wants).

* a user clears the task while it is deferred: the batch is canceled (by the trigger's
  on_kill, or by the next try if the scheduler started it first) and the next try submits anew;
* a user marks the deferred task failed: the trigger's on_kill asks the execution API for the
  task instance's state, sees it left ``deferred``, and cancels;
* the triggerer is SIGKILLed and restarted mid-wait: nothing is canceled, the run succeeds;
* the worker is SIGKILLed mid-wait: the retry re-attaches through ``task_state_store``, so
  the fake sees one create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_cluster import AirflowCluster, ClusterError
from helpers import API_KEY, connection_json

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DAGS_FOLDER = Path(__file__).parent / "dags"
DEFERRED = "e2e_operator_deferred"
IN_WORKER = "e2e_operator_worker"
CONN_ID = "anthropic_e2e"


@pytest.fixture(scope="module")
def slow_fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=86_000) as server:
        yield server


@pytest.fixture(scope="module")
def cluster(slow_fake: FakeBatchesServer) -> Iterator[AirflowCluster]:
    home = Path(tempfile.mkdtemp(prefix="apb-e2e-operator-"))
    conn = connection_json(slow_fake.base_url, API_KEY, max_retries=2, timeout=10)
    cluster = AirflowCluster(home, DAGS_FOLDER, {f"AIRFLOW_CONN_{CONN_ID.upper()}": conn})
    try:
        cluster.start(timeout=300)
        for dag_id in (DEFERRED, IN_WORKER):
            cluster.wait_for_dag(dag_id, timeout=120)
            cluster.unpause(dag_id)
        yield cluster
    except ClusterError:
        print(f"\n===== Airflow logs (home kept at {home}) =====\n{cluster.log_tails(80)}")
        raise
    finally:
        cluster.stop()
    shutil.rmtree(home, ignore_errors=True)


def _batch_ids(fake: FakeBatchesServer) -> list[str]:
    """Batch ids in the order they were first polled (the order they were created here)."""
    seen: list[str] = []
    for request in fake.requests:
        if request.batch_id and request.batch_id not in seen:
            seen.append(request.batch_id)
    return seen


def _create_count(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _deferred_in_triggerer(cluster: AirflowCluster, dag_id: str, run_id: str) -> Any:
    ti = cluster.task_instance(dag_id, run_id, "submit")
    if ti["state"] in ("failed", "upstream_failed", "skipped"):
        raise ClusterError(f"submit ended up {ti['state']}: {cluster.describe_run(dag_id, run_id)}")
    return ti if ti["state"] == "deferred" and ti["triggerer_job"] is not None else None


def _run_state(cluster: AirflowCluster, dag_id: str, run_id: str, wanted: str) -> bool:
    state = cluster.dag_run(dag_id, run_id)["state"]
    if state == "failed" and wanted != "failed":
        raise ClusterError(f"run failed: {cluster.describe_run(dag_id, run_id)}")
    return state == wanted


def _polled(fake: FakeBatchesServer, at_least: int) -> list[str] | None:
    ids = _batch_ids(fake)
    return ids if len(ids) >= at_least else None


def test_clear_while_deferred_cancels_the_batch(
    slow_fake: FakeBatchesServer, cluster: AirflowCluster
) -> None:
    slow_fake.reset()
    run_id = cluster.trigger(DEFERRED, {})
    cluster.wait_for(
        lambda: _deferred_in_triggerer(cluster, DEFERRED, run_id),
        timeout=240,
        what="submit deferred and picked up by the triggerer",
        describe=lambda: cluster.describe_run(DEFERRED, run_id),
    )
    (first,) = cluster.wait_for(lambda: _polled(slow_fake, 1), 60, "the trigger polls the batch")
    cluster.wait_for(
        lambda: slow_fake.request_count(first, "GET") >= 3, 60, "three polls from the trigger"
    )
    assert slow_fake.request_count(first, "POST") == 0

    cluster.api(
        "POST",
        f"/dags/{DEFERRED}/clearTaskInstances",
        json={"dry_run": False, "only_failed": False, "dag_run_id": run_id, "task_ids": ["submit"]},
    )

    cluster.wait_for(
        lambda: slow_fake.request_count(first, "POST") == 1,
        timeout=120,
        what="the trigger's on_kill cancels the batch after the clear",
    )
    assert slow_fake.get_batch(first)["cancel_initiated_at"] is not None
    # The cleared task runs again: its recorded batch was canceled, so it submits a new one.
    ids = cluster.wait_for(lambda: _polled(slow_fake, 2), 180, "the new try's batch is polled")
    second = ids[1]
    assert _create_count(slow_fake) == 2
    slow_fake.end_batch(second)
    cluster.wait_for(lambda: _run_state(cluster, DEFERRED, run_id, "success"), 180, "run success")
    assert cluster.xcom(DEFERRED, run_id, "submit")["id"] == second
    assert slow_fake.request_count(second, "POST") == 0


def test_mark_failed_while_deferred_cancels_through_on_kill(
    slow_fake: FakeBatchesServer, cluster: AirflowCluster
) -> None:
    slow_fake.reset()
    run_id = cluster.trigger(DEFERRED, {})
    cluster.wait_for(
        lambda: _deferred_in_triggerer(cluster, DEFERRED, run_id),
        timeout=240,
        what="submit deferred and picked up by the triggerer",
        describe=lambda: cluster.describe_run(DEFERRED, run_id),
    )
    (batch_id,) = cluster.wait_for(lambda: _polled(slow_fake, 1), 60, "the trigger polls")

    cluster.api(
        "PATCH",
        f"/dags/{DEFERRED}/dagRuns/{run_id}/taskInstances/submit",
        json={"new_state": "failed"},
    )

    cluster.wait_for(
        lambda: slow_fake.request_count(batch_id, "POST") == 1,
        timeout=120,
        what="the trigger's on_kill cancels the batch after mark failed",
    )
    assert slow_fake.get_batch(batch_id)["cancel_initiated_at"] is not None
    assert _create_count(slow_fake) == 1
    log = cluster.task_log(DEFERRED, run_id, "submit")
    assert "the task instance is now failed: a user action" in log


def test_triggerer_sigkill_and_restart_cancels_nothing(
    slow_fake: FakeBatchesServer, cluster: AirflowCluster
) -> None:
    slow_fake.reset()
    run_id = cluster.trigger(DEFERRED, {})
    cluster.wait_for(
        lambda: _deferred_in_triggerer(cluster, DEFERRED, run_id),
        timeout=240,
        what="submit deferred and picked up by the triggerer",
        describe=lambda: cluster.describe_run(DEFERRED, run_id),
    )
    (batch_id,) = cluster.wait_for(lambda: _polled(slow_fake, 1), 60, "the trigger polls")

    for pid in sorted(cluster.component_tree("triggerer"), reverse=True):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cluster.processes["triggerer"].wait(timeout=30)
    polls_after_kill = slow_fake.request_count(batch_id, "GET")
    cluster._spawn("triggerer")

    cluster.wait_for(
        lambda: slow_fake.request_count(batch_id, "GET") >= polls_after_kill + 3,
        timeout=240,
        what="the restarted triggerer polls the batch again",
    )
    assert slow_fake.request_count(batch_id, "POST") == 0, "the restart canceled the batch"
    assert cluster.task_instance(DEFERRED, run_id, "submit")["state"] == "deferred"
    slow_fake.end_batch(batch_id)
    cluster.wait_for(lambda: _run_state(cluster, DEFERRED, run_id, "success"), 180, "run success")
    assert slow_fake.request_count(batch_id, "POST") == 0
    assert _create_count(slow_fake) == 1
    assert cluster.xcom(DEFERRED, run_id, "submit") == slow_fake.get_batch(batch_id)


def test_worker_sigkill_mid_wait_retries_without_a_second_batch(
    slow_fake: FakeBatchesServer, cluster: AirflowCluster
) -> None:
    slow_fake.reset()
    run_id = cluster.trigger(IN_WORKER, {})
    (batch_id,) = cluster.wait_for(lambda: _polled(slow_fake, 1), 240, "the worker polls")
    cluster.wait_for(lambda: slow_fake.request_count(batch_id, "GET") >= 2, 60, "two polls")
    port = [r for r in slow_fake.requests if r.batch_id == batch_id][-1].client[1]
    worker = cluster.wait_for(
        lambda: cluster.pid_of_local_port(port, slow_fake.port), 30, "the polling process"
    )
    os.kill(worker, signal.SIGKILL)

    def second_try_polls() -> bool:
        ti = cluster.task_instance(IN_WORKER, run_id, "submit")
        return ti["try_number"] == 2 and ti["state"] == "running"

    cluster.wait_for(
        second_try_polls,
        240,
        "the retry runs",
        describe=lambda: cluster.describe_run(IN_WORKER, run_id),
    )
    polls = slow_fake.request_count(batch_id, "GET")
    cluster.wait_for(
        lambda: slow_fake.request_count(batch_id, "GET") > polls, 120, "the retry polls the batch"
    )
    slow_fake.end_batch(batch_id)
    cluster.wait_for(lambda: _run_state(cluster, IN_WORKER, run_id, "success"), 180, "success")
    assert _create_count(slow_fake) == 1, "the retry created a second batch"
    assert slow_fake.request_count(batch_id, "POST") == 0, "the kill canceled the batch"
    assert cluster.xcom(IN_WORKER, run_id, "submit") == slow_fake.get_batch(batch_id)
