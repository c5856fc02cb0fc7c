"""End to end: batches created directly on the fake (outside Airflow) end at different times;
a real triggerer runs the ``AssetWatcher``'s MessageBatchEventTrigger, the scheduler turns its
events into DAG runs, and each batch reaches a run's ``triggering_asset_events`` exactly once,
also across a SIGKILL and restart of the triggerer (the watermark in ``asset_state_store``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow_cluster import AirflowCluster, ClusterError
from helpers import API_KEY, connection_json
from secrets_audit import audit, snapshot_triggers

from airflow_provider_batches.testing import FakeBatchesServer


def _has_asset_state_store() -> bool:
    try:
        from airflow.sdk.execution_time.context import AssetStateStoreAccessors  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not _has_asset_state_store(),
        reason="the restart guarantee under test needs asset_state_store (Airflow 3.3+)",
    ),
]

DAGS_FOLDER = Path(__file__).parent / "dags_events"
DAG_ID = "e2e_batch_events"  # as in dags_events/e2e_batch_events.py
TASK_ID = "ingest_ended_batches"
ASSET_NAME = "e2e_ended_batches"
CONN_ID = "anthropic_e2e"
TRIGGER_CLASSPATH = "airflow_provider_batches.triggers.events.MessageBatchEventTrigger"


@pytest.fixture
def cluster(
    fake: FakeBatchesServer, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[AirflowCluster]:
    home = Path(tempfile.mkdtemp(prefix="apb-e2e-events-home-"))
    conn = connection_json(fake.base_url, API_KEY, max_retries=2, timeout=10)
    env = {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": conn,
        # A killed triggerer's triggers move to a live one once it looks unhealthy.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
    }
    cluster = AirflowCluster(home, DAGS_FOLDER, env)
    failures_before = request.session.testsfailed
    try:
        yield cluster
    finally:
        forced = cluster.stop()
        stray = [proc.pid for proc in cluster.stray_processes()]
        if request.session.testsfailed > failures_before:
            with capsys.disabled():
                print(f"\n===== Airflow logs (home kept at {home}) =====\n{cluster.log_tails(80)}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    assert not stray, f"processes outlived stop: {stray} (forced: {forced})"


def _list_requests(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.batch_id is None)


def _ingested(cluster: AirflowCluster) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Batch ids over every finished run's triggering_asset_events (duplicates counted)."""
    runs = cluster.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]
    failed = [run["dag_run_id"] for run in runs if run["state"] == "failed"]
    if failed:
        raise ClusterError(f"runs failed: {[cluster.describe_run(DAG_ID, r) for r in failed]}")
    seen: Counter[str] = Counter()
    for run in runs:
        if run["state"] == "success":
            seen.update(item["id"] for item in cluster.xcom(DAG_ID, run["dag_run_id"], TASK_ID))
    return seen, runs


def _all_finished(cluster: AirflowCluster) -> bool:
    _, runs = _ingested(cluster)
    return all(run["state"] == "success" for run in runs)


def _asset_id(cluster: AirflowCluster) -> int:
    assets = cluster.api("GET", "/assets", params={"name_pattern": ASSET_NAME})["assets"]
    return int(next(a["id"] for a in assets if a["name"] == ASSET_NAME))


def _stored_watermark_ids(cluster: AirflowCluster, asset_id: int) -> set[str]:
    body = cluster.api("GET", f"/assets/{asset_id}/state-store")
    return {i for entry in body["asset_state_store"] for i in entry["value"].get("ids", [])}


def _asset_event_batches(cluster: AirflowCluster, asset_id: int) -> Counter[str]:
    body = cluster.api("GET", "/assets/events", params={"asset_id": asset_id, "limit": 100})
    return Counter(event["extra"]["payload"]["id"] for event in body["asset_events"])


def _kill_triggerer(cluster: AirflowCluster) -> list[int]:
    """SIGKILL the triggerer and its trigger runner, as a crash would; returns their pids."""
    pids = sorted(cluster.component_tree("triggerer"))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cluster.processes["triggerer"].wait(timeout=30)
    psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=30)
    return pids


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_each_ended_batch_reaches_a_run_exactly_once_across_a_triggerer_restart(
    fake: FakeBatchesServer,
    cluster: AirflowCluster,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started, 1)

    # Ended before the watcher first ran: within its lookback, so reported on the first start
    # (and, without the watermark, again after every restart).
    ended_before = fake.create_batch(num_requests=1, ends_after=None)
    fake.end_batch(ended_before["id"])
    first = fake.create_batch(num_requests=2, ends_after=None)
    second = fake.create_batch(
        num_requests=3, ends_after=None, outcomes={"succeeded": 2, "errored": 1}
    )
    third = fake.create_batch(num_requests=1, ends_after=None)

    cluster.start(timeout=300)
    phase("cluster healthy")
    cluster.wait_for_dag(DAG_ID, timeout=120)
    cluster.unpause(DAG_ID)
    polls = cluster.wait_for(
        lambda: _list_requests(fake) >= 2 and _list_requests(fake),
        timeout=180,
        what="the watcher listing batches from the triggerer",
    )
    phase("watcher polling")
    cluster.wait_for(
        lambda: _ingested(cluster)[0][ended_before["id"]] >= 1,
        timeout=180,
        what="a run triggered by the batch that ended within the lookback",
    )

    # ---- two batches end at different times -------------------------------------------------
    fake.end_batch(first["id"])
    cluster.wait_for(
        lambda: _ingested(cluster)[0][first["id"]] >= 1,
        timeout=180,
        what="a run triggered by the first batch",
    )
    phase("first batch ingested")
    fake.end_batch(second["id"])
    cluster.wait_for(
        lambda: _ingested(cluster)[0][second["id"]] >= 1,
        timeout=180,
        what="a run triggered by the second batch",
    )
    phase("second batch ingested")
    asset_id = _asset_id(cluster)
    cluster.wait_for(
        lambda: (
            {ended_before["id"], first["id"], second["id"]}
            <= _stored_watermark_ids(cluster, asset_id)
        ),
        timeout=60,
        what="the watermark covering the three ended batches in asset_state_store",
    )
    phase("watermark stored")

    # ---- the triggerer crashes and comes back -----------------------------------------------
    killed = _kill_triggerer(cluster)
    phase("triggerer killed")
    before_restart = _list_requests(fake)
    cluster._spawn("triggerer")
    cluster.wait_for(
        lambda: _list_requests(fake) >= before_restart + 5,
        timeout=240,
        what="the restarted triggerer listing batches again",
    )
    phase("watcher polling again")
    new_tree = cluster.component_tree("triggerer")
    assert not new_tree & set(killed), "the old triggerer is still around"
    fake.end_batch(third["id"])
    cluster.wait_for(
        lambda: _ingested(cluster)[0][third["id"]] >= 1,
        timeout=180,
        what="a run triggered by the third batch, after the restart",
    )
    after_third = _list_requests(fake)
    cluster.wait_for(
        lambda: _list_requests(fake) >= after_third + 5 and _all_finished(cluster),
        timeout=180,
        what="more polls after the third batch, and every run finished",
    )
    phase("third batch ingested")

    ingested, runs = _ingested(cluster)
    events = _asset_event_batches(cluster, asset_id)
    expected = Counter({b["id"]: 1 for b in (ended_before, first, second, third)})
    assert ingested == expected, f"triggering_asset_events over {len(runs)} runs: {ingested}"
    assert events == expected, f"asset events: {events}"
    payloads = {
        event["extra"]["payload"]["id"]: event["extra"]["payload"]
        for event in cluster.api("GET", "/assets/events", params={"asset_id": asset_id})[
            "asset_events"
        ]
    }
    assert payloads[second["id"]] == fake.get_batch(second["id"])
    assert API_KEY not in json.dumps(payloads)
    (watcher,) = snapshot_triggers(cluster.home, cluster.fernet_key)
    assert watcher["classpath"] == TRIGGER_CLASSPATH
    assert CONN_ID in watcher["kwargs"]
    assert API_KEY not in watcher["kwargs"]

    # ---- secrets audit of the whole Airflow home, with Airflow stopped ------------------------
    cluster.stop()
    report = audit(cluster.home, cluster.fernet_key, {"key": API_KEY, "batch": second["id"]})
    assert report.places("key") == {}, f"API key found in {report.places('key')}"
    # Positive controls: the same search finds the batch where the events and watermark live.
    for place in ("db:asset_event.extra", "db:asset_state_store.value"):
        assert place in report.places("batch"), report.places("batch")

    summary = {
        "duration_s": round(time.monotonic() - started, 1),
        "phases_s": phases,
        "runs": len(runs),
        "list_requests": _list_requests(fake),
        "list_requests_when_polling_started": polls,
        "killed_triggerer_pids": killed,
    }
    record_property("e2e_events_summary", json.dumps(summary))
    with capsys.disabled():
        print(f"\n[e2e events] {json.dumps(summary, indent=2)}")
