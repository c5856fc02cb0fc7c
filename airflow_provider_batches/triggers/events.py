"""MessageBatchEventTrigger: an asset event for every batch in the workspace that ends.

For ``AssetWatcher``; see docs/events.md for the delivery guarantees on each Airflow release.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_batches._compat import AirflowNotFoundException
from airflow_provider_batches.exceptions import APIError, MessageBatchError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.triggers._event_store import WatermarkStore, asset_state_accessors
from airflow_provider_batches.triggers._event_window import (
    OUTCOMES,
    POLICY_KEYS,
    EndedBatch,
    EventFilter,
    Outcome,
    SeenSet,
    Watermark,
    coverage_start,
    next_watermark,
    read_page,
)
from airflow_provider_batches.utils.policy import OutcomePolicy
from airflow_provider_batches.utils.wait_defaults import DEFAULT_EXPIRY_GRACE, DEFAULT_POLL_INTERVAL

Origin = Literal["any", "this_deployment"]
ORIGINS: tuple[str, ...] = ("any", "this_deployment")
DEFAULT_LOOKBACK = 3600.0
DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_PAGES = 100
#: Batches expire 24 h after creation; older ones cannot end any more.
BATCH_LIFETIME = timedelta(hours=24)
#: Longest wait between polls while errors persist.
MAX_ERROR_BACKOFF = 1800.0
#: Seconds between yielding events and writing the watermark that covers them, so the
#: triggerer has stored the events first (it hands them over about once a second).
WATERMARK_SETTLE = 10.0
POLL_JITTER = 0.1
#: The longest duration any argument takes (10 years).
MAX_SECONDS = 10 * 365 * 86400.0


class MessageBatchEventTrigger(BaseEventTrigger):
    """Watches the workspace's batches and yields one event per batch that reaches ``ended``.

    The payload is the ended batch in the API's own shape (``MessageBatch.to_xcom()``). Each
    poll lists batches newest first (``page_size`` per request) back to the oldest one that can
    still end: created within 24 h plus ``expiry_grace``, or after ``created_after``.

    :param conn_id: Airflow connection holding the API key and base URL.
    :param poll_interval: Seconds between polls (each poll is one list request per page).
    :param lookback: Seconds: when no watermark is stored (first start, or Airflow < 3.3), also
        emit batches that ended this long before the trigger started.
    :param created_after: Only batches created after this aware datetime (or ISO 8601 string).
    :param min_requests: Only batches with at least this many requests.
    :param outcome: ``"any"``, or only batches whose outcome ``policy`` judges ``"passing"``
        (the task would succeed) or ``"failing"`` (it would fail).
    :param policy: :class:`~airflow_provider_batches.utils.policy.OutcomePolicy` arguments as a
        dict, e.g. ``{"max_errored_ratio": 0.05}``; only with ``outcome`` other than ``"any"``.
    :param include_canceled: Whether batches whose every request was canceled produce events.
    :param expiry_grace: Seconds past a batch's 24 h expiry during which it may still end.
    :param page_size: Batches per list request (1 to 1000).
    :param max_pages: Most list requests in one poll; a poll that needs more is incomplete
        (logged) and does not advance the watermark.
    :param origin: ``"any"`` (default): every batch of the workspace. ``"this_deployment"``:
        only batches that this Airflow deployment's ``MessageBatchOperator`` tasks submitted
        (each claims its batch in a Variable ``anthropic_batches.claim.<batch id>``); one
        Variable lookup per new ended batch, in a thread, never on the event loop.
    """

    def __init__(
        self,
        conn_id: str = MessageBatchHook.default_conn_name,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        lookback: float = DEFAULT_LOOKBACK,
        created_after: datetime | str | None = None,
        min_requests: int = 0,
        outcome: Outcome = "any",
        policy: Mapping[str, Any] | None = None,
        include_canceled: bool = True,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        origin: Origin = "any",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(conn_id, str) or not conn_id:
            raise ValueError(f"conn_id must be a non-empty string, got {conn_id!r}.")
        self.conn_id = conn_id
        self.poll_interval = _seconds("poll_interval", poll_interval, positive=True)
        self.lookback = _seconds("lookback", lookback)
        self.expiry_grace = _seconds("expiry_grace", expiry_grace)
        self.created_after = _aware_iso("created_after", created_after)
        self.min_requests = _count("min_requests", min_requests, minimum=0)
        self.page_size = _count("page_size", page_size, minimum=1)
        if self.page_size > 1000:
            raise ValueError(f"page_size must be at most 1000 (the API's limit), got {page_size}.")
        self.max_pages = _count("max_pages", max_pages, minimum=1)
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {list(OUTCOMES)}, got {outcome!r}.")
        self.outcome: Outcome = outcome
        self.policy = _policy(policy, outcome)
        if not isinstance(include_canceled, bool):
            raise ValueError(f"include_canceled must be True or False, got {include_canceled!r}.")
        self.include_canceled = include_canceled
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {list(ORIGINS)}, got {origin!r}.")
        self.origin: Origin = origin

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Trigger rows are deduplicated by a hash of these: plain, deterministic values only.
        # ``origin`` appears only when set, so watchers written before it keep their hash.
        only_when_set = {} if self.origin == "any" else {"origin": self.origin}
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
                "created_after": self.created_after,
                "min_requests": self.min_requests,
                "outcome": self.outcome,
                "policy": self.policy,
                "include_canceled": self.include_canceled,
                "expiry_grace": self.expiry_grace,
                "page_size": self.page_size,
                "max_pages": self.max_pages,
                **only_when_set,
            },
        )

    @property
    def event_filter(self) -> EventFilter:
        created_after = self.created_after
        return EventFilter(
            created_after=None if created_after is None else datetime.fromisoformat(created_after),
            min_requests=self.min_requests,
            outcome=self.outcome,
            policy=None if self.policy is None else OutcomePolicy(**self.policy),
            include_canceled=self.include_canceled,
        )

    @property
    def watermark_key(self) -> str:
        """The state-store key: changes with what selects batches, not with the cadence."""
        selection = {
            "conn_id": self.conn_id,
            "created_after": self.created_after,
            "min_requests": self.min_requests,
            "outcome": self.outcome,
            "policy": self.policy,
            "include_canceled": self.include_canceled,
            **({} if self.origin == "any" else {"origin": self.origin}),
        }
        digest = hashlib.sha256(json.dumps(selection, sort_keys=True).encode()).hexdigest()
        return f"message_batch_events:{digest[:16]}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = MessageBatchHook(self.conn_id)
        store = WatermarkStore(asset_state_accessors(self), self.watermark_key)
        stored = await store.load()
        if stored is None:
            startup = Watermark(_now() - timedelta(seconds=self.lookback))
            self.log.info(
                "No stored watermark (%s): emitting batches that ended since %s.",
                "first start" if store.available else "no asset state store before Airflow 3.3",
                startup.horizon.isoformat(),
            )
        elif stored.horizon > _now():
            # Written by an earlier release after a batch reported an end in the future: it
            # says nothing about what ended lately, so the lookback window applies.
            startup = Watermark(_now() - timedelta(seconds=self.lookback), stored.ids)
            self.log.warning(
                "The stored watermark's horizon %s is past this triggerer's clock; emitting "
                "batches that ended since %s instead.",
                stored.horizon.isoformat(),
                startup.horizon.isoformat(),
            )
        else:
            startup = stored
            self.log.info(
                "Resuming from the stored watermark: batches ended before %s are done.",
                startup.horizon.isoformat(),
            )
        seen = SeenSet()
        event_filter = self.event_filter
        mark = startup
        catch_up_from: datetime | None = startup.horizon
        errors = 0
        while True:
            max_age = BATCH_LIFETIME + timedelta(seconds=self.expiry_grace)
            start = coverage_start(_now(), max_age, event_filter.created_after, catch_up_from)
            try:
                ended, complete = await self._list_ended(hook, start)
                fresh = [
                    entry
                    for entry in ended
                    if entry.id not in seen
                    and not startup.covers(entry)
                    and event_filter.accepts(entry.batch)
                ]
                ours = await self._claimed(fresh)
            except (APIError, MessageBatchError, AirflowNotFoundException) as error:
                errors += 1
                await asyncio.sleep(self._log_error_and_wait(error, errors))
                continue
            errors = 0
            seen.prune(start)
            for entry in ended:
                if entry.id in seen:
                    continue
                seen.add(entry)
                if startup.covers(entry) or not event_filter.accepts(entry.batch):
                    continue
                if ours is not None and entry.id not in ours:
                    continue
                self.log.info("Batch %s: emitting an event.", entry.batch.progress_summary())
                yield TriggerEvent(entry.batch.to_xcom())  # type: ignore[no-untyped-call]
            wait = self._next_wait()
            if complete:
                catch_up_from = None
                if store.available:
                    mark = next_watermark(seen.ended_at_by_id(), mark, _now())
                    if mark != store.saved:
                        settle = min(WATERMARK_SETTLE, wait)
                        await asyncio.sleep(settle)
                        await store.save(mark)
                        wait -= settle
            await asyncio.sleep(wait)

    async def _claimed(self, entries: list[EndedBatch]) -> set[str] | None:
        """With ``origin="this_deployment"``: the ids among ``entries`` that this deployment's
        operators claimed (``None``: no origin filter). A lookup that fails fails the poll, which
        is tried again: an event is never dropped because the Variables could not be read."""
        if self.origin == "any" or not entries:
            return None if self.origin == "any" else set()
        from asgiref.sync import sync_to_async

        from airflow_provider_batches.operators._task_record import is_claimed

        ours: set[str] = set()
        for entry in entries:
            try:
                claimed = await sync_to_async(is_claimed)(entry.id)
            except Exception as error:  # whatever the Variables backend raises
                raise MessageBatchError(
                    f"Could not read the claim of batch {entry.id} (origin='this_deployment'): "
                    f"{type(error).__name__}: {error}"
                ) from error
            if claimed:
                ours.add(entry.id)
        return ours

    async def _list_ended(
        self, hook: MessageBatchHook, start: datetime
    ) -> tuple[list[EndedBatch], bool]:
        """The ended batches created at or after ``start``, oldest end first, and whether the
        poll reached ``start`` (False when the listing ended first: ``max_pages`` pages read,
        or a cursor that is missing, invalid or repeated).
        """
        ended: list[EndedBatch] = []
        listing = hook.batch_listing(self.page_size, self.max_pages)
        async for page in listing:
            window = read_page(page.batches, start)
            self._log_unusable(window.unusable)
            ended.extend(window.ended)
            if window.passed_start:
                return _by_end(ended), True
        if listing.end == "page cap":
            self.log.warning(
                "Listed %d pages without reaching batches created before %s; the watermark "
                "waits. Set created_after, or raise max_pages.",
                self.max_pages,
                start.isoformat(),
            )
        return _by_end(ended), listing.complete

    def _log_unusable(self, unusable: list[tuple[str, str]]) -> None:
        if not unusable:
            return
        batch_id, reason = unusable[0]
        shown = batch_id if len(batch_id) <= 80 else batch_id[:80] + "..."
        self.log.warning(
            "Skipped %d list entries the trigger cannot use, e.g. %r: %s.",
            len(unusable),
            shown,
            reason,
        )

    def _next_wait(self) -> float:
        return self.poll_interval * (1 - POLL_JITTER * random.random())

    def _log_error_and_wait(self, error: Exception, streak: int) -> float:
        """Log a failed poll; the wait doubles with each failure in a row, up to a ceiling."""
        wait = min(self.poll_interval * 2.0 ** min(streak - 1, 30), MAX_ERROR_BACKOFF)
        retry_after: float = getattr(error, "retry_after", None) or 0.0
        wait = max(wait, self.poll_interval, retry_after)
        if isinstance(error, APIError) and error.retryable:
            self.log.warning(
                "Listing batches failed (%d in a row); polling again in %.0fs: %s",
                streak,
                wait,
                error,
            )
        else:
            self.log.error(
                "Listing batches failed and will keep failing until the connection %r is fixed "
                "(API key, permissions, base URL); trying again in %.0fs: %s",
                self.conn_id,
                wait,
                error,
            )
        return wait


def _by_end(batches: list[EndedBatch]) -> list[EndedBatch]:
    return sorted(batches, key=lambda b: (b.ended_at, b.id))


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), timezone.utc)


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}.")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'at least 0'}, got {value}.")
    if value > MAX_SECONDS:
        # Beyond this, date arithmetic in run() would overflow (or never poll again).
        raise ValueError(
            f"{name} must be at most {MAX_SECONDS:.0f} seconds (10 years), got {value}."
        )
    return float(value)


def _count(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return value


def _aware_iso(name: str, value: datetime | str | None) -> str | None:
    """A timezone-aware datetime or ISO 8601 string, stored as an ISO string in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{name} must be an ISO 8601 datetime such as '2025-01-31T12:00:00+00:00', "
                f"got {value!r}."
            ) from None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime or an ISO 8601 string, got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must carry a timezone (e.g. +00:00), got the naive {value.isoformat()!r}."
        )
    return value.astimezone(timezone.utc).isoformat()


def _policy(policy: Mapping[str, Any] | None, outcome: str) -> dict[str, Any] | None:
    if policy is None:
        return None
    if outcome == "any":
        raise ValueError("policy only applies with outcome='passing' or outcome='failing'.")
    if not isinstance(policy, Mapping):
        raise ValueError(f"policy must be a dict of OutcomePolicy arguments, got {policy!r}.")
    unknown = sorted(str(key) for key in policy if key not in POLICY_KEYS)
    if unknown:
        raise ValueError(f"policy has unknown keys {unknown}; valid keys: {sorted(POLICY_KEYS)}.")
    cleaned = {key: policy[key] for key in sorted(policy) if policy[key] is not None}
    OutcomePolicy(**cleaned)  # raises ValueError naming the bad value
    return cleaned
