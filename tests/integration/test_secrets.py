"""Secrets audit: where the API key goes, and where it must never be found.

The matrix (test_fault_matrix.py) and the task-level runs (test_task_level.py) audit their own
artefacts; this module covers the masker, servers that echo the key back, the key's only way on
the wire, and checks that the audit itself finds a planted key.
"""

from __future__ import annotations

import pickle
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from helpers import API_KEY
from reliability_fixtures import (
    LEAK_WINDOW,
    PUBLIC_KEY_PREFIX,
    SecretsAudit,
    find_secrets,
    key_fragments,
    run_trigger,
)

from airflow_provider_batches._http.clients import aclose_shared_clients, close_shared_sync_clients
from airflow_provider_batches._http.send import MAX_MESSAGE_CHARS
from airflow_provider_batches.exceptions import APIError, BadRequestError, BatchPermanentError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.sensors.batch import MessageBatchSensor
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.triggers.batch import MessageBatchTrigger


def _redact(value: str) -> object:
    """Airflow's task-SDK secrets masker (the one ``mask_secret`` feeds)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow < 3.1
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    return redact(value)


def _fresh_key() -> str:
    """A key the process-wide masker cannot know yet."""
    return f"{PUBLIC_KEY_PREFIX}MASKTEST-{uuid.uuid4().hex}-{uuid.uuid4().hex[:8]}"


# ---- the masker knows the key wherever the hook loads it ------------------------------------


def test_masker_knows_the_key_once_the_worker_hook_loads_the_connection(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    key = _fresh_key()
    set_connection("rel_mask_sync", fake.base_url, api_key=key)
    assert _redact(key) == key  # not known before
    assert MessageBatchHook("rel_mask_sync").settings.api_key == key
    assert _redact(key) == "***"
    assert _redact(f"header x-api-key: {key}!") == "header x-api-key: ***!"
    assert _redact({"nested": [f"{key}"]}) == {"nested": ["***"]}


async def test_masker_knows_the_key_once_the_trigger_loads_the_connection(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    key = _fresh_key()
    set_connection("rel_mask_async", fake.base_url, api_key=key)
    assert _redact(key) == key
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    # The fake accepts only its own key, so this wait fails with 401: loading is what counts.
    try:
        events = await run_trigger(
            MessageBatchTrigger(batch_id, conn_id="rel_mask_async", poll_interval=0.05)
        )
    finally:
        await aclose_shared_clients()
    assert events[0]["error"]["status_code"] == 401
    assert _redact(key) == "***"
    assert key not in repr(events)


def test_masker_knows_the_suite_key_after_the_hook_loaded_it(
    fake_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recognizable key of the whole suite (helpers.API_KEY). Earlier tests of this process
    may have taught the process-wide masker that key already, so the masker starts this test
    empty (its patterns are put back afterwards): only this hook's loading can teach it."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    monkeypatch.setattr(masker, "patterns", set())
    monkeypatch.setattr(masker, "replacer", None)
    assert _redact(API_KEY) == API_KEY  # not known before
    MessageBatchHook(fake_conn).settings  # noqa: B018 - loading is the point
    assert _redact(API_KEY) == "***"


def test_the_hook_masks_the_key_itself_not_only_through_airflow() -> None:
    """Airflow's Connection masks its password when it loads it; the hook masks the key again
    itself, so a connection object that did not come through Airflow's loading (a custom
    secrets path, an older Airflow) is covered too."""
    from types import SimpleNamespace

    key = _fresh_key()
    conn = SimpleNamespace(
        conn_id="rel_mask_plain", host=None, schema=None, port=None, password=key, extra_dejson={}
    )
    assert _redact(key) == key
    assert MessageBatchHook._load_settings(conn).api_key == key
    assert _redact(key) == "***"


# ---- servers that echo the key -------------------------------------------------------------


def _echo_fault(batch_id: str, message: str, error_type: str | None = None) -> Fault:
    return Fault(
        kind="status",
        status=400,
        message=message,
        error_type=error_type,
        headers={"request-id": f"req_{API_KEY}"},
        times=-1,
        batch_id=batch_id,
    )


def _hook_error(conn_id: str, batch_id: str) -> APIError:
    close_shared_sync_clients()
    with pytest.raises(APIError) as raised:
        MessageBatchHook(conn_id).retrieve_batch(batch_id)
    return raised.value


def test_key_echoed_in_an_error_body_is_redacted(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection("rel_echo", fake.base_url, max_retries=0)
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    fake.inject_fault(
        _echo_fault(batch_id, f"Invalid key {API_KEY} for this workspace", f"bad_{API_KEY}")
    )
    error = _hook_error("rel_echo", batch_id)
    assert isinstance(error, BadRequestError)
    assert "[redacted]" in error.message
    audit = SecretsAudit()
    audit.obj(error, "hook exception")
    audit.obj(error.to_dict(), "error dict")
    audit.obj(pickle.loads(pickle.dumps(error)), "unpickled exception")
    assert audit.hits == []


@pytest.mark.parametrize("field", ["message", "error_type"])
def test_key_echoed_across_the_truncation_limit_is_not_leaked(
    fake: FakeBatchesServer, set_connection: Callable[..., None], field: str
) -> None:
    """A server echoes the key so that the provider's 500-character cut falls inside it.

    Redacting after truncating finds no whole key to replace, so all but the key's last
    character would be kept.
    """
    set_connection("rel_echo_cut", fake.base_url, max_retries=0)
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    echoed = "x" * (MAX_MESSAGE_CHARS - len(API_KEY) + 1) + API_KEY
    if field == "message":
        fake.inject_fault(_echo_fault(batch_id, echoed))
    else:
        fake.inject_fault(_echo_fault(batch_id, "bad request", echoed))
    error = _hook_error("rel_echo_cut", batch_id)
    audit = SecretsAudit()
    audit.obj(error, f"hook exception ({field})")
    audit.obj(error.to_dict(), f"error dict ({field})")
    assert audit.hits == [], "\n".join(audit.hits)


async def test_key_echoed_across_the_truncation_limit_stays_out_of_events(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    """The same echo through a trigger: the event (stored in the metadata DB) and the task's
    exception must not carry the key's first 54 characters."""
    set_connection("rel_echo_cut_event", fake.base_url, max_retries=0)
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    fake.inject_fault(_echo_fault(batch_id, "x" * (MAX_MESSAGE_CHARS - len(API_KEY) + 1) + API_KEY))
    try:
        events = await run_trigger(
            MessageBatchTrigger(batch_id, conn_id="rel_echo_cut_event", poll_interval=0.05)
        )
    finally:
        await aclose_shared_clients()
    audit = SecretsAudit()
    audit.obj(events, "trigger events")
    sensor = MessageBatchSensor(task_id="w", batch_id=batch_id, conn_id="rel_echo_cut_event")
    with pytest.raises(BatchPermanentError) as raised:
        sensor.execute_complete(context={}, event=events[0])  # type: ignore[arg-type]
    audit.obj(raised.value, "sensor exception")
    assert audit.hits == [], "\n".join(audit.hits)


# ---- the key's only way on the wire --------------------------------------------------------


def test_key_travels_only_in_the_x_api_key_header(fake: FakeBatchesServer, fake_conn: str) -> None:
    batch_id = fake.create_batch(num_requests=1, ends_after=0)["id"]
    close_shared_sync_clients()
    MessageBatchHook(fake_conn).retrieve_batch(batch_id)
    (request,) = [r for r in fake.requests if r.batch_id == batch_id]
    assert request.authenticated
    assert request.headers["x-api-key"] == "<redacted>"  # the fake redacts what it records
    assert "authorization" not in request.headers
    assert find_secrets(request.raw_target, "request target") == []
    assert find_secrets(repr(request.query), "query") == []


def test_trigger_serialization_and_sensor_trigger_args_hold_no_key(fake_conn: str) -> None:
    MessageBatchHook(fake_conn).settings  # noqa: B018 - a loaded key must not leak into these
    trigger = MessageBatchTrigger("msgbatch_x", conn_id=fake_conn)
    sensor = MessageBatchSensor(
        task_id="w", batch_id="msgbatch_x", conn_id=fake_conn, deferrable=True, timeout=60
    )
    audit = SecretsAudit()
    audit.obj(trigger.serialize(), "serialize()")
    audit.obj(sensor._trigger(deadline=1.0).serialize(), "sensor's trigger")
    audit.obj(repr(MessageBatchHook(fake_conn)), "hook repr")
    audit.obj(repr(MessageBatchHook(fake_conn).settings), "settings repr")
    assert audit.hits == []


# ---- the audit finds what it looks for -----------------------------------------------------


def test_the_audit_finds_a_planted_key(tmp_path: Path) -> None:
    """Guards against an audit that passes because it cannot see."""
    fragments = key_fragments(API_KEY)
    assert API_KEY in fragments
    assert all(len(f) >= LEAK_WINDOW for f in fragments)
    assert not any(f in PUBLIC_KEY_PREFIX + "x" * 40 for f in fragments)  # prefix is public

    assert find_secrets(f"a {API_KEY} b", "text")
    assert find_secrets(API_KEY[:-1], "truncated key")
    assert find_secrets(API_KEY[5:30].encode(), "bytes fragment")
    assert not find_secrets(API_KEY[: LEAK_WINDOW - 1], "too short to matter")
    assert not find_secrets("sk-ant-api03-[redacted]", "redacted")

    audit = SecretsAudit()
    audit.obj(ValueError(f"boom {API_KEY}"), "exception")
    assert len(audit.hits) >= 3  # str, repr, pickle
    db = tmp_path / "planted.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (a TEXT, b BLOB)")
        conn.execute("INSERT INTO t VALUES (?, ?)", ("clean", f"x{API_KEY}".encode()))
        conn.commit()
    audit = SecretsAudit()
    assert audit.sqlite(db, "db") == 1
    assert len(audit.hits) == 1
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "task.log").write_text(f"line\nkey={API_KEY[3:40]}\n")
    audit = SecretsAudit()
    audit.files(tmp_path / "logs", "files")
    assert len(audit.hits) == 1
