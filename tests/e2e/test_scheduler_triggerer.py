"""End to end: a real scheduler, triggerer, DAG processor and API server run a deferrable
MessageBatchSensor against the embedded fake API; then the Airflow home is audited for the key.

The fake runs in this process; Airflow runs as separate processes with their own temporary
``AIRFLOW_HOME`` (not the one conftest.py sets for in-process tests) and SQLite. The API key
reaches Airflow only through ``AIRFLOW_CONN_ANTHROPIC_E2E`` in the components' environment.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_cluster import AirflowCluster, ClusterError
from helpers import API_KEY, connection_json
from secrets_audit import REQUIRED_TABLES, audit, snapshot_triggers

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = [pytest.mark.matrix, pytest.mark.e2e, pytest.mark.timeout(900)]

DAGS_FOLDER = Path(__file__).parent / "dags"
DAG_ID = "e2e_message_batch"  # as in dags/e2e_message_batch.py
SENSOR = "wait_for_batch"
DOWNSTREAM = "summarize_batch"
CONN_ID = "anthropic_e2e"
TRIGGER_CLASSPATH = "airflow_provider_batches.triggers.batch.MessageBatchTrigger"
#: A slice of the key too, in case something prints it truncated.
KEY_FRAGMENT = API_KEY[len(API_KEY) // 4 : 3 * len(API_KEY) // 4]
BAD_STATES = {"failed", "up_for_retry", "upstream_failed", "skipped", "removed"}


@pytest.fixture
def cluster(
    fake: FakeBatchesServer, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[AirflowCluster]:
    """An Airflow cluster (not started yet) pointing at the fake; stopped and removed after.

    If the test failed, the last lines of every log are printed (with or without ``-s``) and
    the home is kept for a look.
    """
    home = Path(tempfile.mkdtemp(prefix="apb-e2e-airflow-home-"))
    conn = connection_json(fake.base_url, API_KEY, max_retries=2, timeout=10)
    cluster = AirflowCluster(home, DAGS_FOLDER, {f"AIRFLOW_CONN_{CONN_ID.upper()}": conn})
    failures_before = request.session.testsfailed
    try:
        yield cluster
    finally:
        forced = cluster.stop()
        listening = cluster.listening_ports()
        stray = [proc.pid for proc in cluster.stray_processes()]
        if request.session.testsfailed > failures_before:
            with capsys.disabled():
                print(f"\n===== Airflow logs (home kept at {home}) =====\n{cluster.log_tails(80)}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    assert not listening, f"still listening after stop: {listening} (forced: {forced})"
    assert not stray, f"processes outlived stop: {stray}"


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _sensor_in_triggerer(cluster: AirflowCluster, run_id: str) -> dict[str, Any] | None:
    """The sensor's task instance once deferred and its trigger assigned to a triggerer."""
    ti = cluster.task_instance(DAG_ID, run_id, SENSOR)
    if ti["state"] in BAD_STATES:
        raise ClusterError(f"sensor ended up {ti['state']}: {cluster.describe_run(DAG_ID, run_id)}")
    picked_up = ti["trigger"] is not None and ti["triggerer_job"] is not None
    return ti if ti["state"] == "deferred" and picked_up else None


def test_sensor_defers_to_triggerer_and_resumes_on_worker(
    fake: FakeBatchesServer,
    cluster: AirflowCluster,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started, 1)

    batch = fake.create_batch(
        num_requests=5, ends_after=None, outcomes={"succeeded": 4, "errored": 1}
    )
    batch_id = batch["id"]

    # ---- start Airflow -------------------------------------------------------------------
    cluster.start(timeout=300)
    phase("cluster healthy")
    triggerer_env = cluster.process_environ("triggerer")
    assert API_KEY in triggerer_env.get(f"AIRFLOW_CONN_{CONN_ID.upper()}", ""), (
        "the connection (with the key) is configured through the components' environment"
    )
    cluster.wait_for_dag(DAG_ID, timeout=120)
    cluster.unpause(DAG_ID)
    phase("DAG parsed")
    run_id = cluster.trigger(DAG_ID, {"batch_id": batch_id})

    # ---- the sensor defers: the trigger polls from the triggerer process ------------------
    deferred = cluster.wait_for(
        lambda: _sensor_in_triggerer(cluster, run_id),
        timeout=180,
        what=f"{SENSOR} deferred and its trigger picked up by the triggerer",
        describe=lambda: cluster.describe_run(DAG_ID, run_id),
    )
    phase("sensor deferred")
    assert deferred["trigger"]["classpath"] == TRIGGER_CLASSPATH, deferred["trigger"]
    assert deferred["triggerer_job"]["job_type"] == "TriggererJob", deferred["triggerer_job"]
    assert deferred["triggerer_job"]["state"] == "running", deferred["triggerer_job"]
    trigger_created = _parse_time(deferred["trigger"]["created_date"])
    polls_at_deferral = fake.request_count(batch_id, "GET")
    cluster.wait_for(
        lambda: fake.request_count(batch_id, "GET") >= polls_at_deferral + 3,
        timeout=60,
        what="three polls of the batch while the sensor is deferred",
        describe=lambda: f"{fake.request_count(batch_id, 'GET')} polls so far",
    )

    # Whichever process holds the socket of the latest poll made it; the trigger's client
    # keeps its connection open between polls.
    def latest_poll_port() -> int:
        return [r for r in fake.requests if r.batch_id == batch_id][-1].client[1]

    poller = cluster.wait_for(
        lambda: cluster.pid_of_local_port(latest_poll_port(), fake.port),
        timeout=30,
        what="the process holding the trigger's connection to the fake",
        interval=0.05,
    )
    triggerer_tree = cluster.component_tree("triggerer")
    assert poller in triggerer_tree, (
        f"poll came from pid {poller}, not the triggerer {sorted(triggerer_tree)}"
    )
    assert poller not in cluster.component_tree("scheduler"), "polled from a worker"
    still = cluster.task_instance(DAG_ID, run_id, SENSOR)
    assert still["state"] == "deferred", f"sensor left deferral early: {still['state']}"
    triggers = snapshot_triggers(cluster.home, cluster.fernet_key)
    assert [t["classpath"] for t in triggers] == [TRIGGER_CLASSPATH], triggers
    trigger_kwargs = triggers[0]["kwargs"]
    assert batch_id in trigger_kwargs, trigger_kwargs
    assert CONN_ID in trigger_kwargs, trigger_kwargs
    assert API_KEY not in trigger_kwargs, "trigger kwargs hold the API key"
    assert KEY_FRAGMENT not in trigger_kwargs, "trigger kwargs hold part of the API key"
    phase("polls seen from triggerer")

    # ---- the batch ends: the trigger fires, the sensor resumes on a worker -----------------
    ended_at = time.time()
    fake.end_batch(batch_id)
    expected_batch = fake.get_batch(batch_id)

    def run_finished() -> str | None:
        state = cluster.dag_run(DAG_ID, run_id)["state"]
        if state == "failed":
            raise ClusterError(f"DAG run failed: {cluster.describe_run(DAG_ID, run_id)}")
        return state if state == "success" else None

    cluster.wait_for(
        run_finished,
        timeout=180,
        what="DAG run success",
        describe=lambda: cluster.describe_run(DAG_ID, run_id),
    )
    phase("run succeeded")

    # ---- read the outcome back from Airflow's REST API ------------------------------------
    tis = cluster.task_instances(DAG_ID, run_id)
    sensor_ti, downstream_ti = tis[SENSOR], tis[DOWNSTREAM]
    assert sensor_ti["state"] == "success", sensor_ti
    assert sensor_ti["try_number"] == 1, "the sensor resumed, it was not retried"
    assert sensor_ti["pid"] not in triggerer_tree, "the sensor finished inside the triggerer"
    assert downstream_ti["state"] == "success", downstream_ti
    sensor_xcom = cluster.xcom(DAG_ID, run_id, SENSOR)
    downstream_xcom = cluster.xcom(DAG_ID, run_id, DOWNSTREAM)
    assert sensor_xcom == expected_batch
    assert downstream_xcom == {"batch_id": batch_id, "succeeded": 4, "total": 5}

    gets = [r for r in fake.requests if r.batch_id == batch_id and r.method == "GET"]
    before_deferral = [r for r in gets if r.received_at < trigger_created]
    assert len(before_deferral) == 1, "the worker checks the batch once before deferring"
    # The trigger polled at most twice more (one poll may have been in flight at end_batch)...
    after_end = [r for r in gets if r.received_at >= ended_at]
    assert 1 <= len(after_end) <= 2, f"{len(after_end)} polls after the batch ended"
    # ...and then stopped: nothing polls the batch any more.
    time.sleep(2.5)
    assert fake.request_count(batch_id, "GET") == len(gets), "the batch is still polled"

    sensor_log = cluster.task_log(DAG_ID, run_id, SENSOR)
    for expected_line in (
        "Pausing task as DEFERRED",  # worker, before deferring
        f"Batch {batch_id} in_progress",  # the trigger, in the triggerer
        "Trigger fired event",  # the triggerer
        f"Batch {batch_id} ended",  # worker again, in execute_complete
    ):
        assert expected_line in sensor_log, f"{expected_line!r} not in the sensor's log"
    logs_via_api = sensor_log + cluster.task_log(DAG_ID, run_id, DOWNSTREAM)

    # ---- stop everything -------------------------------------------------------------------
    forced = cluster.stop()
    phase("cluster stopped")
    assert cluster.listening_ports() == {}, "a component still listens after stop"
    assert cluster.stray_processes() == [], "a process of the cluster outlived stop"

    # ---- secrets audit ---------------------------------------------------------------------
    needles = {"api_key": API_KEY, "key_fragment": KEY_FRAGMENT, "batch_id": batch_id}
    report = audit(cluster.home, cluster.fernet_key, needles)
    phase("audit done")
    assert API_KEY not in logs_via_api, "the task logs served by the API show the key"
    assert KEY_FRAGMENT not in logs_via_api, "the task logs served by the API show part of the key"
    assert report.places("api_key") == {}, f"API key found in {report.places('api_key')}"
    assert report.places("key_fragment") == {}, f"key part in {report.places('key_fragment')}"
    # Positive controls: the same search does find the batch id where it must be.
    batch_places = report.places("batch_id")
    # SQLite may still hold the rows in its write-ahead log (no checkpoint before the stop):
    # the raw scan must find them in one of the database's files.
    db_files = {"file:airflow.db", "file:airflow.db-wal"}
    assert db_files & set(batch_places), f"audit did not see the batch id in {db_files}"
    for place in (
        "db:xcom.value",
        "db:rendered_task_instance_fields.rendered_fields",
        "db:dag_run.conf",
    ):
        assert place in batch_places, f"audit did not see the batch id in {place}: {batch_places}"
    assert any(p.startswith("file:logs/dag_id=") and ".trigger." in p for p in batch_places), (
        f"audit did not see the batch id in the trigger's log file: {batch_places}"
    )
    for table in ("xcom", "task_instance", "rendered_task_instance_fields", "log"):
        assert report.db_rows_scanned[table] > 0, f"no rows in {table} to audit"

    duration = round(time.monotonic() - started, 1)
    summary = {
        "duration_s": duration,
        "phases_s": phases,
        "cluster_timings_s": {k: round(v, 1) for k, v in cluster.timings.items()},
        "polls": len(gets),
        "poller_pid": poller,
        "triggerer_pids": sorted(triggerer_tree),
        "sensor_worker_pid": sensor_ti["pid"],
        "trigger_kwargs_while_deferred": json.loads(trigger_kwargs),
        "forced_kills": forced,
        "sensor_xcom": sensor_xcom,
        "downstream_xcom": downstream_xcom,
        "audit": {
            "files_scanned": report.files_scanned,
            "db_rows_scanned": {t: report.db_rows_scanned[t] for t in REQUIRED_TABLES},
            "api_key_hits": report.places("api_key"),
            "key_fragment_hits": report.places("key_fragment"),
            "batch_id_found_in": sorted(batch_places),
        },
    }
    record_property("e2e_summary", json.dumps(summary))
    with capsys.disabled():
        print(f"\n[e2e] {json.dumps(summary, indent=2)}")
