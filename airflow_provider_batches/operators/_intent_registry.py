"""Open create intents, visible to every task instance of the deployment before a create is sent.

A create whose answer is lost leaves a batch that nobody has recorded or claimed yet. Another
task instance whose own create got no answer, and that lists the batches to find its own, must
not take that batch for its own. So before each create, a task instance writes an *intent*
(which task instance, which requests, when) into a registry every task instance reads; a lister
that finds a candidate batch made while another task instance's intent was open does not adopt
it. The intent is removed once the batch id is recorded, or expires after :data:`INTENT_TTL`.

The registry is :data:`SHARDS` Airflow Variables per API host and request count (candidates
always have the lister's request count); a task instance writes only its own shard, a lister
reads them all. Variables have no compare-and-swap, so publishing an intent is a
read-modify-write followed, after :data:`SETTLE_SECONDS`, by a read-back: an entry that another
writer's stale write erased is written again (after a random pause that grows each round). What
stays open: a writer that stalls longer than :data:`SETTLE_SECONDS` between its read and its
write can erase an entry whose read-back has already passed (see docs/operator.md).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_batches.exceptions import (
    IntentRegistryBusyError,
    UnreadableRecordError,
)
from airflow_provider_batches.operators._task_record import (
    TaskIdentity,
    read_json_variable,
    write_json_variable,
)

log = logging.getLogger(__name__)

REGISTRY_VARIABLE_PREFIX = "anthropic_batches.intents."
#: How long an intent whose task instance never came back stays visible (a retry can come days
#: later, after long retry delays; a stale intent only matters to listers of its own minutes).
INTENT_TTL = 7 * 24 * 3600.0
#: Pause between a write and its read-back.
SETTLE_SECONDS = 0.5
#: Read-modify-write rounds before giving up on a registry that keeps changing.
MAX_WRITE_ROUNDS = 6
#: Variables per host and request count: concurrent writers (a mapped task's indexes all
#: creating at once) mostly land on different ones.
SHARDS = 16


def registry_scope(base_url: str) -> str:
    """The registry's scope: the API host batches are created on (deliberately wide: every
    connection to one host shares it, so two connections to the same account never miss each
    other's intents)."""
    return hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Intent:
    """One task instance's create, from just before it was sent until its batch is recorded.

    ``started_at`` and ``ends_by`` are on the writer's clock: the create cannot have made a
    batch before ``started_at`` nor after ``ends_by``.
    """

    task_instance: TaskIdentity
    fingerprint: str
    started_at: float
    ends_by: float
    token: str

    @classmethod
    def new(
        cls, task_instance: TaskIdentity, fingerprint: str, started_at: float, ends_by: float
    ) -> Intent:
        return cls(task_instance, fingerprint, started_at, ends_by, uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_instance": self.task_instance.to_dict(),
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "ends_by": self.ends_by,
            "token": self.token,
        }

    @classmethod
    def from_dict(cls, value: Any) -> Intent:
        """Raises ``TypeError``, ``KeyError`` or ``ValueError`` for anything else."""
        return cls(
            TaskIdentity(**value["task_instance"]),
            str(value["fingerprint"]),
            float(value["started_at"]),
            float(value["ends_by"]),
            str(value["token"]),
        )


class IntentRegistry:
    """The open intents for batches of ``request_count`` requests on one API host."""

    def __init__(
        self,
        scope: str,
        request_count: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.prefix = f"{REGISTRY_VARIABLE_PREFIX}{scope}.{request_count}."
        self.request_count = request_count
        self._clock = clock
        self._sleep = sleep

    def shard_key(self, identity: TaskIdentity) -> str:
        """The Variable that holds ``identity``'s intent."""
        return f"{self.prefix}{int(identity.digest(), 16) % SHARDS}"

    def entries(self) -> list[Intent]:
        """Every unexpired intent; raises if a Variable cannot be read."""
        return [
            intent for shard in range(SHARDS) for intent in self._read(self.prefix + str(shard))
        ]

    def others(self, identity: TaskIdentity) -> list[Intent]:
        """The open intents of task instances other than ``identity``."""
        return [intent for intent in self.entries() if intent.task_instance != identity]

    def open(self, intent: Intent) -> None:
        """Publish ``intent`` (replacing this task instance's earlier one), verified by reading
        it back; raises :class:`IntentRegistryBusyError` if it never stays."""
        self._change(
            self.shard_key(intent.task_instance),
            lambda entries: (
                [e for e in entries if e.task_instance != intent.task_instance] + [intent]
            ),
            lambda entries: intent in entries,
            what=f"the intent of {intent.task_instance}",
        )

    def close(self, identity: TaskIdentity) -> None:
        """Remove this task instance's intent, if open; never raises (the batch is recorded by
        now: a failure here leaves an intent that expires, not a lost batch)."""
        key = self.shard_key(identity)
        try:
            if all(e.task_instance != identity for e in self._read(key)):
                return
            # Not read back: an intent a stale write brings back names a task instance whose
            # batch is claimed, which listers set aside (submission.rival_intents).
            write_json_variable(
                key,
                self._value([e for e in self._read(key) if e.task_instance != identity]),
                self._description,
            )
        except Exception as error:  # the batch id is recorded: nothing may fail the task now
            log.warning("Could not remove the intent of %s from %s: %s", identity, key, error)

    @property
    def _description(self) -> str:
        return (
            f"Creates of {self.request_count}-request batches under way or in doubt "
            "(airflow-provider-batches)."
        )

    @staticmethod
    def _value(entries: list[Intent]) -> dict[str, Any]:
        return {"intents": [entry.to_dict() for entry in entries]}

    def _read(self, key: str) -> list[Intent]:
        value = read_json_variable(key)
        if value is None:
            return []
        try:
            intents = [Intent.from_dict(entry) for entry in value["intents"]]
        except (TypeError, KeyError, ValueError):
            raise UnreadableRecordError(
                f"Variable {key!r} does not hold the intents of airflow-provider-batches. It "
                "tells task instances which batches may be another's: delete it only when no "
                "create of this many requests is in doubt, then rerun."
            ) from None
        now = self._clock()
        return [intent for intent in intents if intent.started_at + INTENT_TTL > now]

    def _change(
        self,
        key: str,
        update: Callable[[list[Intent]], list[Intent]],
        holds: Callable[[list[Intent]], bool],
        *,
        what: str,
    ) -> None:
        for attempt in range(MAX_WRITE_ROUNDS):
            if attempt:
                log.info("Variable %s changed under a concurrent write: writing again.", key)
                self._sleep(random.uniform(0, SETTLE_SECONDS * 2**attempt))
            write_json_variable(key, self._value(update(self._read(key))), self._description)
            self._sleep(SETTLE_SECONDS)
            if holds(self._read(key)):
                return
        raise IntentRegistryBusyError(
            f"Could not record {what} in Variable {key!r}: other task instances kept changing "
            f"it ({MAX_WRITE_ROUNDS} rounds). Nothing was sent; a retry may pass."
        )
