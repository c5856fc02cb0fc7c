"""Where a task instance remembers the batch it submitted, so that no retry submits it again.

* Airflow 3.3+: the task instance's ``task_state_store`` (scoped to dag, run, task and map
  index; kept across retries and clears; deleted with the DAG run).
* Airflow 3.0 to 3.2: an Airflow Variable named after a hash of the same four fields. XCom
  cannot hold it: a task instance's XCom is cleared when a new try starts.

A *claim* (one Variable per batch, in every release) says which task instance owns a batch,
so that a task that lost the answer of its create never adopts another task's batch (with the
intents of :mod:`.intent_registry`, also kept in Variables through the helpers here).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from airflow_provider_batches.exceptions import UnreadableRecordError

RECORD_KEY = "anthropic_message_batch"
RECORD_VARIABLE_PREFIX = "anthropic_batches.record."
CLAIM_VARIABLE_PREFIX = "anthropic_batches.claim."
_MAX_VARIABLE_KEY = 250


@dataclass(frozen=True)
class TaskIdentity:
    """The task instance a batch belongs to (its tries share it); ``shard`` (from 0) names one
    batch of a split set, each with its own record, claim and intents."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    shard: int = -1

    @classmethod
    def from_context(cls, context: Any) -> TaskIdentity:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))

    def to_dict(self) -> dict[str, Any]:
        value = asdict(self)
        if self.shard < 0:  # the form (and digest) of records and claims written before shards
            del value["shard"]
        return value

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def __str__(self) -> str:
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        shard = f" (shard {self.shard})" if self.shard >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{suffix}{shard} in run {self.run_id}"


class RecordStore(Protocol):
    """Get and set the one record of a task instance (a JSON-simple dict)."""

    description: str

    def get(self) -> dict[str, Any] | None: ...

    def set(self, record: dict[str, Any]) -> None: ...


class TaskStateStoreRecords:
    """The record in Airflow 3.3's ``task_state_store``."""

    def __init__(self, accessor: Any, key: str = RECORD_KEY) -> None:
        self._accessor = accessor
        self.key = key
        self.description = "task_state_store" if key == RECORD_KEY else f"task_state_store {key}"

    def get(self) -> dict[str, Any] | None:
        value = self._accessor.get(self.key)
        return value if isinstance(value, dict) else None

    def set(self, record: dict[str, Any]) -> None:
        self._accessor.set(self.key, record)


class VariableRecords:
    """The record in an Airflow Variable, for releases without ``task_state_store``."""

    def __init__(self, identity: TaskIdentity) -> None:
        self.identity = identity
        self.key = RECORD_VARIABLE_PREFIX + identity.digest()
        self.description = f"Variable {self.key}"

    def get(self) -> dict[str, Any] | None:
        value = read_json_variable(self.key)
        return value if isinstance(value, dict) else None

    def set(self, record: dict[str, Any]) -> None:
        write_json_variable(
            self.key,
            {**record, "task_instance": self.identity.to_dict()},
            f"Message batch submitted by {self.identity} (airflow-provider-batches).",
        )


def record_store_for(context: Any, identity: TaskIdentity) -> RecordStore:
    """``task_state_store`` where Airflow offers it (3.3+), else the Variable fallback."""
    accessor = context.get("task_state_store") if hasattr(context, "get") else None
    if accessor is not None:
        key = RECORD_KEY if identity.shard < 0 else f"{RECORD_KEY}.shard.{identity.shard}"
        return TaskStateStoreRecords(accessor, key)
    return VariableRecords(identity)


def claim_key(batch_id: str) -> str:
    key = CLAIM_VARIABLE_PREFIX + batch_id
    if len(key) > _MAX_VARIABLE_KEY:
        key = CLAIM_VARIABLE_PREFIX + hashlib.sha256(batch_id.encode()).hexdigest()
    return key


def read_claim(batch_id: str) -> TaskIdentity | None:
    """The task instance that claimed ``batch_id``, or ``None``."""
    value = read_json_variable(claim_key(batch_id))
    if not isinstance(value, dict):
        return None
    try:
        return TaskIdentity(**value)
    except TypeError:
        return None


def is_claimed(batch_id: str) -> bool:
    """Whether a task of this deployment claimed ``batch_id`` (its claim Variable exists)."""
    from airflow.sdk import Variable

    return Variable.get(claim_key(batch_id), default=None) is not None


def write_claim(batch_id: str, identity: TaskIdentity) -> None:
    write_json_variable(
        claim_key(batch_id),
        identity.to_dict(),
        f"Batch {batch_id} belongs to {identity} (airflow-provider-batches).",
    )


def read_json_variable(key: str) -> Any:
    """The Variable's JSON value; ``None`` if it does not exist.

    Read raw and decoded here: Airflow's own decoding logs a failure and answers "missing",
    which would make an unreadable record look like no record, and bill a second batch.
    """
    from airflow.sdk import Variable

    raw = Variable.get(key, default=None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise UnreadableRecordError(
            f"Variable {key!r} exists but does not hold JSON (was it written with another "
            "Fernet key?). It records a submitted batch: fix or delete it, then rerun."
        ) from None


def write_json_variable(key: str, value: dict[str, Any], description: str) -> None:
    from airflow.sdk import Variable

    Variable.set(key, value, description=description, serialize_json=True)


def mark_waiting(store: RecordStore, try_number: int, deadline: float | None) -> None:
    """Note that try ``try_number`` is deferring on the recorded batch."""
    record = store.get() or {}
    store.set({**record, "deferred_try": try_number, "deadline": deadline})


def mark_resumed(store: RecordStore) -> None:
    """The deferred try came back (whatever the event): its wait was not interrupted."""
    record = store.get()
    if record is not None and record.get("deferred_try") is not None:
        store.set({**record, "deferred_try": None})


def recorded_batch_ids(record: dict[str, Any] | None) -> list[str]:
    """The batches a task instance's record names: its batch, or every shard of a split set."""
    if record is None:
        return []
    if isinstance(record.get("batch_id"), str):
        return [record["batch_id"]]
    shards = record.get("shard_batch_ids")
    return [str(batch_id) for batch_id in shards] if isinstance(shards, list) else []


def interrupted_wait(record: dict[str, Any] | None, try_number: int) -> bool:
    """Whether an earlier try deferred on the recorded batch (or shards) and never resumed.

    A new try only starts while an earlier one is deferred when a user cleared (or marked and
    then cleared) the task: a triggerer restart or move keeps the same try.
    """
    if record is None or not recorded_batch_ids(record):
        return False
    waiting = record.get("deferred_try")
    return isinstance(waiting, int) and waiting < try_number
