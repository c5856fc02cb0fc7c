"""The bookkeeping behind MessageBatchEventTrigger, free of I/O: which list entries it can use,
filters, the window of batches each poll must cover, the per-life seen-set and the watermark
kept across restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from airflow_provider_batches.batch_ids import validate_batch_id
from airflow_provider_batches.exceptions import InvalidBatchIdError
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.utils.policy import OutcomePolicy

Outcome = Literal["any", "passing", "failing"]
OUTCOMES: tuple[str, ...] = ("any", "passing", "failing")
POLICY_KEYS: frozenset[str] = frozenset(f.name for f in fields(OutcomePolicy))
#: A batch is considered visible as ended in the list within this long after a batch that
#: ended later is seen; a watermark keeps the ids of every batch that ended this close to the
#: newest one, so a batch shown late within the margin is still emitted after a restart.
REORDER_MARGIN = timedelta(minutes=10)
#: At most this many ids in a stored watermark (about 80 KB of JSON).
MAX_WATERMARK_IDS = 1000
WATERMARK_VERSION = 2
#: Version 1 stored ids without their ``ended_at``; it is still read.
_IDS_ONLY_VERSION = 1
_EARLIEST_HORIZON = datetime(2000, 1, 1, tzinfo=timezone.utc)


def unusable_reason(batch: MessageBatch) -> str | None:
    """Why the trigger cannot use this list entry (it is skipped and logged), or None.

    Checks every field the window, the filters and the watermark read beyond what the model
    validates: the id (it becomes a cursor, a watermark entry and, downstream, a URL), an
    ``ended`` batch's ``ended_at``, time order, and request counts that add up.
    """
    try:
        validate_batch_id(batch.id)
    except InvalidBatchIdError:
        return "its id is not a batch id"
    if batch.is_ended and batch.ended_at is None:
        return "it is ended but has no ended_at"
    if batch.ended_at is not None and batch.ended_at < batch.created_at:
        return "it ended before it was created"
    extra_counts = (batch.request_counts.model_extra or {}).values()
    if any(isinstance(n, int) and not isinstance(n, bool) and n < 0 for n in extra_counts):
        return "a request count is negative"
    return None


@dataclass(frozen=True)
class EndedBatch:
    """A usable list entry that has ended: its ``ended_at`` is known."""

    batch: MessageBatch
    ended_at: datetime

    @property
    def id(self) -> str:
        return self.batch.id

    @property
    def created_at(self) -> datetime:
        return self.batch.created_at


@dataclass(frozen=True)
class PageWindow:
    """What one list page holds for a poll whose window starts at some ``created_at``.

    ``ended``: the usable ended batches created in the window. ``passed_start``: the page ends
    (its last usable entry) with a batch created before the window; the list is newest first,
    so no later page can hold a batch of the window. An entry out of order anywhere else on the
    page ends nothing. ``unusable``: ``(id, reason)`` of every entry skipped.
    """

    ended: list[EndedBatch]
    passed_start: bool
    unusable: list[tuple[str, str]]


def read_page(batches: Iterable[MessageBatch], start: datetime) -> PageWindow:
    usable: list[MessageBatch] = []
    unusable: list[tuple[str, str]] = []
    for batch in batches:
        reason = unusable_reason(batch)
        if reason is None:
            usable.append(batch)
        else:
            unusable.append((batch.id, reason))
    ended = [
        EndedBatch(batch, batch.ended_at)
        for batch in usable
        if batch.is_ended and batch.ended_at is not None and batch.created_at >= start
    ]
    passed_start = bool(usable) and usable[-1].created_at < start
    return PageWindow(ended, passed_start, unusable)


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

    ``ids`` maps each id to its batch's ``ended_at``, so that an id is dropped only once the
    horizon covers it: a later watermark covers everything an earlier one did, even batches
    the list stopped showing for a while.
    """

    horizon: datetime
    ids: Mapping[str, datetime] = field(default_factory=dict)

    def covers(self, batch: EndedBatch) -> bool:
        return batch.ended_at < self.horizon or batch.id in self.ids

    def not_after(self, now: datetime) -> Watermark:
        """This watermark with its horizon no later than ``now``: a horizon past the clock
        (written by an earlier release after a batch reported an end in the future) would
        silence every batch that ends until then.
        """
        if self.horizon <= now:
            return self
        return Watermark(now, self.ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": WATERMARK_VERSION,
            "horizon": self.horizon.isoformat(),
            "ids": {batch_id: self.ids[batch_id].isoformat() for batch_id in sorted(self.ids)},
        }

    @classmethod
    def from_json(cls, value: Any) -> Watermark | None:
        """The stored watermark, or None if ``value`` is not one this version can read."""
        if not isinstance(value, dict):
            return None
        version, ids = value.get("version"), value.get("ids")
        horizon = _aware(value.get("horizon"))
        if horizon is None or horizon < _EARLIEST_HORIZON:
            return None  # not one the trigger wrote (and window arithmetic would overflow)
        if version == _IDS_ONLY_VERSION and isinstance(ids, list):
            # Their ends are unknown: at the horizon, so they go once the horizon moves.
            if not all(isinstance(i, str) for i in ids):
                return None
            return cls(horizon, dict.fromkeys(ids, horizon))
        if version != WATERMARK_VERSION or not isinstance(ids, dict):
            return None
        ended = {batch_id: _aware(at) for batch_id, at in ids.items()}
        if not all(isinstance(i, str) and at is not None for i, at in ended.items()):
            return None
        return cls(horizon, {i: at for i, at in ended.items() if at is not None})

    @classmethod
    def earliest(cls, marks: Iterable[Watermark]) -> Watermark | None:
        """The most conservative of several (one per watched asset): re-emitting beats missing."""
        return min(marks, key=lambda mark: mark.horizon, default=None)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None and parsed.utcoffset() is not None else None


def next_watermark(
    handled: Mapping[str, datetime], previous: Watermark, now: datetime
) -> Watermark:
    """The watermark after handling ``handled`` (id -> ended_at) at ``now`` (the trigger's
    clock): the horizon trails the newest ``ended_at`` by :data:`REORDER_MARGIN`, never moves
    back, and never passes ``now``, whatever ``ended_at`` a batch reports. An id is kept until
    the horizon covers it. At most :data:`MAX_WATERMARK_IDS` ids: when more ended within the
    margin, the horizon moves up to cover the earliest (never past ``now``; beyond that, the
    ids of the batches reporting the latest ends are dropped: reported again after a restart).
    """
    previous = previous.not_after(now)
    newest = min(max(handled.values(), default=previous.horizon), now)
    horizon = max(previous.horizon, newest - REORDER_MARGIN)
    known = {**previous.ids, **handled}
    recent = sorted(((ended, i) for i, ended in known.items() if ended >= horizon), reverse=True)
    if len(recent) > MAX_WATERMARK_IDS:
        # Everything at or after the new horizon should fit; ties at the cut move past it.
        cut = recent[MAX_WATERMARK_IDS - 1][0]
        horizon = min(cut if recent[MAX_WATERMARK_IDS][0] < cut else cut + _TICK, now)
        recent = [(ended, i) for ended, i in recent if ended >= horizon][-MAX_WATERMARK_IDS:]
    return Watermark(horizon, {i: ended for ended, i in recent})


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

    def add(self, batch: EndedBatch) -> None:
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
