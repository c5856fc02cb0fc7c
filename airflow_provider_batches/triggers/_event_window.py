"""The bookkeeping behind MessageBatchEventTrigger, free of I/O: filters, the window of batches
each poll must cover, the per-life seen-set and the watermark kept across restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.policy import OutcomePolicy

Outcome = Literal["any", "passing", "failing"]
OUTCOMES: tuple[str, ...] = ("any", "passing", "failing")
POLICY_KEYS: frozenset[str] = frozenset(f.name for f in fields(OutcomePolicy))
#: A batch is considered visible as ended in the list within this long after a batch that
#: ended later is seen; a watermark keeps the ids of every batch that ended this close to the
#: newest one, so a batch shown late within the margin is still emitted after a restart.
REORDER_MARGIN = timedelta(minutes=10)
#: At most this many ids in a stored watermark (about 40 KB of JSON).
MAX_WATERMARK_IDS = 1000
WATERMARK_VERSION = 1


@dataclass(frozen=True)
class EventFilter:
    """Which ended batches produce an event."""

    created_after: datetime | None = None
    min_requests: int = 0
    outcome: Outcome = "any"
    policy: OutcomePolicy | None = None
    include_canceled: bool = True

    def accepts(self, batch: MessageBatch) -> bool:
        if self.created_after is not None and batch.created_at <= self.created_after:
            return False
        if batch.total_requests < self.min_requests:
            return False
        if not self.include_canceled and batch.is_fully_canceled:
            return False
        if self.outcome == "any":
            return True
        action = (self.policy or OutcomePolicy()).evaluate(batch).action
        return action == ("succeed" if self.outcome == "passing" else "fail")


@dataclass(frozen=True)
class Watermark:
    """Every ended batch with ``ended_at`` before ``horizon``, and every id in ``ids``, has
    been handled (emitted or filtered out) and must not produce an event again.
    """

    horizon: datetime
    ids: frozenset[str] = frozenset()

    def covers(self, batch: MessageBatch) -> bool:
        assert batch.ended_at is not None
        return batch.ended_at < self.horizon or batch.id in self.ids

    def to_json(self) -> dict[str, Any]:
        return {
            "version": WATERMARK_VERSION,
            "horizon": self.horizon.isoformat(),
            "ids": sorted(self.ids),
        }

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """The stored watermark, or None if ``value`` is not one this version wrote."""
        if not isinstance(value, dict) or value.get("version") != WATERMARK_VERSION:
            return None
        horizon, ids = value.get("horizon"), value.get("ids")
        if not isinstance(horizon, str) or not isinstance(ids, list):
            return None
        if not all(isinstance(i, str) for i in ids):
            return None
        try:
            parsed = datetime.fromisoformat(horizon.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return cls(parsed, frozenset(ids))

    @classmethod
    def earliest(cls, marks: Iterable[Watermark]) -> Watermark | None:
        """The most conservative of several (one per watched asset): re-emitting beats missing."""
        return min(marks, key=lambda mark: mark.horizon, default=None)


def next_watermark(handled: Mapping[str, datetime], previous: Watermark) -> Watermark:
    """The watermark after handling ``handled`` (id -> ended_at): the horizon trails the newest
    ``ended_at`` by :data:`REORDER_MARGIN` and never moves back. While it stays put, the
    previous ids are kept (some may have left the list window). At most
    :data:`MAX_WATERMARK_IDS` ids: when more ended within the margin, the horizon moves up.
    """
    if not handled:
        return previous
    horizon = max(previous.horizon, max(handled.values()) - REORDER_MARGIN)
    carried = previous.ids - handled.keys() if horizon == previous.horizon else frozenset()
    recent = sorted((ended for ended in handled.values() if ended >= horizon), reverse=True)
    if len(recent) + len(carried) > MAX_WATERMARK_IDS:
        carried = frozenset()
        if len(recent) > MAX_WATERMARK_IDS:
            # Everything at or after the new horizon must fit; ties at the cut move past it.
            cut = recent[MAX_WATERMARK_IDS - 1]
            horizon = cut if recent[MAX_WATERMARK_IDS] < cut else cut + _TICK
        # Dropping the carried ids is safe only with the horizon past them.
        horizon = max(horizon, previous.horizon + _TICK)
    ids = frozenset(batch_id for batch_id, ended in handled.items() if ended >= horizon)
    return Watermark(horizon, ids | carried)


_TICK = timedelta(microseconds=1)


@dataclass
class SeenBatch:
    created_at: datetime
    ended_at: datetime


class SeenSet:
    """Ended batches already handled in this triggerer's life, keyed by id.

    Bounded by the window: a batch created before the current coverage start is never listed
    again, so it is forgotten.
    """

    def __init__(self) -> None:
        self._seen: dict[str, SeenBatch] = {}

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, batch: MessageBatch) -> None:
        assert batch.ended_at is not None
        self._seen[batch.id] = SeenBatch(batch.created_at, batch.ended_at)

    def prune(self, coverage_start: datetime) -> None:
        stale = [i for i, seen in self._seen.items() if seen.created_at < coverage_start]
        for batch_id in stale:
            del self._seen[batch_id]

    def ended_at_by_id(self) -> dict[str, datetime]:
        return {batch_id: seen.ended_at for batch_id, seen in self._seen.items()}


def coverage_start(
    now: datetime,
    max_batch_age: timedelta,
    created_after: datetime | None,
    catch_up_from: datetime | None,
) -> datetime:
    """The oldest ``created_at`` a poll must reach: any batch still able to end was created
    after it. Until the first complete poll, ``catch_up_from`` (the startup watermark's
    horizon) reaches back further, for batches that ended while no triggerer was running.
    """
    start = now - max_batch_age
    if catch_up_from is not None:
        start = min(start, catch_up_from - max_batch_age)
    if created_after is not None:
        start = max(start, created_after)
    return start
