"""Restart survival: a triggerer process killed mid-wait, replaced by a fresh one.

Like Airflow's triggerer, the first process runs triggers rebuilt from their serialized kwargs;
it is SIGKILLed while waits are in progress; a fresh process is started from the same
serialized kwargs of every trigger that had not fired (the triggerer reloads exactly those
from the metadata DB). Every wait must end with exactly one event, for the right batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import SUPPORT_DIR, wait_until
from reliability_fixtures import SecretsAudit, run_trigger

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger

WORKER = SUPPORT_DIR / "restart_worker.py"
CONN_ID = "rel_restart"


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start(specs: list[Any], tmp_path: Path, name: str, events: Path) -> subprocess.Popen[bytes]:
    specs_path = tmp_path / f"{name}.json"
    specs_path.write_text(json.dumps(specs))
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(specs_path), str(events)],
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def test_waits_survive_a_sigkilled_triggerer(
    fake: FakeBatchesServer, set_connection: Callable[..., None], tmp_path: Path
) -> None:
    set_connection(CONN_ID, fake.base_url, max_retries=1)
    quick = fake.create_batch(num_requests=2, ends_after=1.0)["id"]
    pending = [fake.create_batch(num_requests=3, ends_after=None)["id"] for _ in range(4)]
    canceling = fake.create_batch(num_requests=2, ends_after=None, cancel_delay=None)["id"]
    fake.cancel_batch(canceling)
    pending.append(canceling)
    specs = [
        list(MessageBatchTrigger(batch_id, conn_id=CONN_ID, poll_interval=0.1).serialize())
        for batch_id in [quick, *pending]
    ]
    # Serialized kwargs are what the metadata DB stores: JSON-simple and secret-free.
    assert json.loads(json.dumps(specs)) == specs
    audit = SecretsAudit()
    audit.text(json.dumps(specs), "serialized triggers")
    assert audit.hits == []

    events = tmp_path / "events.jsonl"
    first = _start(specs, tmp_path, "first", events)
    try:
        # Mid-wait: the quick batch has fired, every other wait has polled a few times (the
        # connection's watcher polls them together: list pages, or retrieves).
        wait_until(
            lambda: (
                any(e["payload"]["batch_id"] == quick for e in _events(events))
                and fake.request_count(method="GET") >= 3 + len(pending)
            ),
            timeout=60,
            interval=0.05,
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL
    polls_before = fake.request_count(method="GET")

    reported = _events(events)
    assert [e["payload"]["batch_id"] for e in reported] == [quick], reported
    assert reported[0]["payload"]["status"] == "success"
    assert reported[0]["pid"] == first.pid

    # The batches end while no triggerer runs; the fresh one must notice.
    for batch_id in pending:
        fake.end_batch(batch_id)
    fired = {e["trigger"] for e in reported}
    still_deferred = [spec for index, spec in enumerate(specs) if index not in fired]
    second = _start(still_deferred, tmp_path, "second", events)
    try:
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)

    everything = _events(events)
    by_batch: dict[str, list[dict[str, Any]]] = {}
    for line in everything:
        by_batch.setdefault(line["payload"]["batch_id"], []).append(line)
    assert sorted(by_batch) == sorted([quick, *pending])
    for batch_id, lines in by_batch.items():
        assert len(lines) == 1, f"{batch_id} got {len(lines)} events: {lines}"
        (line,) = lines
        payload = line["payload"]
        assert line["kwargs"]["batch_id"] == batch_id
        assert payload["status"] == "success"
        assert payload["batch"]["id"] == batch_id
        assert payload["batch"]["processing_status"] == "ended"
        assert payload["batch"] == fake.get_batch(batch_id)
        assert line["pid"] == (first.pid if batch_id == quick else second.pid)
    # The canceled batch ended as canceled; the others with their outcomes.
    assert by_batch[canceling][0]["payload"]["batch"]["request_counts"]["canceled"] == 2
    assert fake.request_count(method="GET") > polls_before
    audit.text(events.read_text(), "event lines")
    assert audit.hits == []


async def test_a_rebuilt_trigger_for_an_ended_batch_reports_the_same_event(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    """If a triggerer dies after a trigger fired but before the event was stored, the trigger
    runs again: the repeated event must be the same one (delivery is at least once, and
    idempotent), never a different outcome."""
    set_connection(CONN_ID, fake.base_url)
    batch_id = fake.create_batch(num_requests=2, ends_after=0)["id"]
    classpath, kwargs = MessageBatchTrigger(
        batch_id, conn_id=CONN_ID, poll_interval=0.05
    ).serialize()
    assert classpath == "airflow_provider_batches.triggers.batch.MessageBatchTrigger"
    try:
        first = await run_trigger(MessageBatchTrigger(**kwargs))
        again = await run_trigger(MessageBatchTrigger(**json.loads(json.dumps(kwargs))))
    finally:
        await aclose_shared_clients()
    assert first == again
    assert [e["status"] for e in first] == ["success"]


@pytest.mark.parametrize("deadline_passed", [True, False])
async def test_a_rebuilt_trigger_keeps_the_original_deadline(
    fake: FakeBatchesServer, set_connection: Callable[..., None], deadline_passed: bool
) -> None:
    """The deadline is absolute (epoch seconds), so a restart neither extends nor resets it."""
    import time

    set_connection(CONN_ID, fake.base_url)
    batch_id = fake.create_batch(num_requests=2, ends_after=None)["id"]
    deadline = time.time() + (-1.0 if deadline_passed else 0.5)
    _, kwargs = MessageBatchTrigger(
        batch_id, conn_id=CONN_ID, poll_interval=0.05, deadline=deadline
    ).serialize()
    assert kwargs["deadline"] == deadline
    try:
        events = await run_trigger(MessageBatchTrigger(**json.loads(json.dumps(kwargs))))
    finally:
        await aclose_shared_clients()
    # Exact timing of a restart against the deadline, on a simulated clock:
    # tests/unit/triggers/test_trigger_deadline.py::test_a_restart_never_extends_the_deadline.
    assert [(e["status"], e.get("reason")) for e in events] == [("timeout", "deadline")]
    if deadline_passed:
        assert fake.request_count(batch_id) == 0
