"""MessageBatchTrigger: polls a batch from the triggerer's event loop until it ends."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_batches._compat import AirflowNotFoundException
from airflow_provider_batches._http.timeouts import wait_within
from airflow_provider_batches.exceptions import APIError, ConnectionConfigError, MessageBatchError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.triggers._watcher import BatchWatcher, watcher_for
from airflow_provider_batches.utils.trigger_events import (
    error_event,
    success_event,
    timeout_event,
    unexpected_error_event,
)
from airflow_provider_batches.utils.wait_defaults import (
    DEFAULT_ERROR_TOLERANCE,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_LOG_INTERVAL,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_POLL_INTERVAL,
)

POLL_JITTER = 0.2


class MessageBatchTrigger(BaseTrigger):
    """Waits until the batch ends, then yields one event.

    Polls go through the connection's watcher (``triggers/_watcher.py``), which answers every
    trigger of one connection in the triggerer from shared list pages, or retrieves where that
    is cheaper.

    All state comes from the API, so a trigger rebuilt from :meth:`serialize` in another
    triggerer process carries on where the last one stopped.

    :param batch_id: The batch to wait for.
    :param conn_id: Airflow connection holding the API key and base URL.
    :param poll_interval: Longest time between two polls, in seconds. Each wait is drawn from
        ``[0.8, 1.0] * poll_interval`` so thousands of waits do not poll in lock-step.
    :param deadline: Wall-clock time (epoch seconds) after which the wait ends with a
        ``timeout`` event; ``None`` for no deadline.
    :param expiry_grace: Seconds past the batch's ``expires_at`` after which, if the API still has
        not reported ``ended``, the wait ends with a ``timeout`` event.
    :param max_consecutive_errors: Transient failures in a row (each after the hook's own
        retries) tolerated before the wait ends with an ``error`` event.
    :param error_tolerance: Seconds a streak of transient failures may last before the same.
    :param log_interval: Seconds between progress lines while nothing changes.
    :param cancel_on_kill: Cancel the batch when a user kills the deferred task (Airflow 3.3+:
        mark failed or success, clear); never when the trigger only moves or restarts (see
        :mod:`airflow_provider_batches.triggers.kill`).
    :param cancel_with: Other batches canceled with this one on such a kill (the other shards
        of a split request set, which the operator waits for one after another).
    """

    def __init__(
        self,
        batch_id: str,
        conn_id: str = MessageBatchHook.default_conn_name,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        deadline: float | None = None,
        expiry_grace: float = DEFAULT_EXPIRY_GRACE,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        error_tolerance: float = DEFAULT_ERROR_TOLERANCE,
        log_interval: float = DEFAULT_LOG_INTERVAL,
        cancel_on_kill: bool = False,
        cancel_with: list[str] | tuple[str, ...] = (),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}.")
        if max_consecutive_errors < 1:
            raise ValueError(
                f"max_consecutive_errors must be at least 1, got {max_consecutive_errors!r}."
            )
        self.batch_id = batch_id
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.expiry_grace = float(expiry_grace)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.error_tolerance = float(error_tolerance)
        self.log_interval = float(log_interval)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.cancel_with = [str(batch_id) for batch_id in cancel_with]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_id": self.batch_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "expiry_grace": self.expiry_grace,
                "max_consecutive_errors": self.max_consecutive_errors,
                "error_tolerance": self.error_tolerance,
                "log_interval": self.log_interval,
                "cancel_on_kill": self.cancel_on_kill,
                **({"cancel_with": self.cancel_with} if self.cancel_with else {}),
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event; nothing but cancellation escapes."""
        watcher = watcher_for(self.conn_id)
        try:
            event = await self._wait(watcher)
        except AirflowNotFoundException:
            error = ConnectionConfigError(
                f"Connection {self.conn_id!r} is not defined where the trigger runs (the "
                "triggerer). Define it there too: in the metadata database, a secrets backend, "
                f"or an AIRFLOW_CONN_{self.conn_id.upper()} variable in the triggerer's "
                "environment."
            )
            event = error_event(self.batch_id, error, None, None)
        except Exception as error:  # asyncio.CancelledError is a BaseException: it propagates
            self.log.exception("Batch %s: the wait failed unexpectedly", self.batch_id)
            event = unexpected_error_event(self.batch_id, error, watcher.loaded_api_key())
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Airflow 3.3+: cancel the batch if ``cancel_on_kill`` and a user killed the task."""
        if not self.cancel_on_kill:
            return
        from airflow_provider_batches.triggers.kill import kill_decision

        cancel, why = await kill_decision(self, self.deadline)
        if not cancel:
            self.log.info("Batch %s: not canceling, %s.", self.batch_id, why)
            return
        hook = MessageBatchHook(self.conn_id)
        for batch_id in [self.batch_id, *self.cancel_with]:
            try:
                batch = await hook.acancel_batch(batch_id)
            except MessageBatchError as error:
                self.log.warning("Batch %s: cancel after the kill failed: %s", batch_id, error)
                continue
            self.log.info(
                "Batch %s: canceled (%s); now %s.", batch_id, why, batch.processing_status
            )

    @property
    def log(self) -> Any:
        """One logger for every instance of the class.

        The triggerer tells triggers' lines apart by the ids it binds in the log context, so
        Airflow's default, a logger built per instance, only costs each wait eight objects.
        """
        return type(self).logger()

    async def _wait(self, watcher: BatchWatcher) -> dict[str, Any]:
        """Poll until there is something to report; returns the one event payload."""
        wait = 0.0
        progress = _ProgressLog(self.log_interval)
        # The last batch seen, as JSON: one bytes object (which the GC does not track) instead
        # of a model, for each of thousands of waits.
        last_seen: bytes | None = None
        streak = _FailureStreak(self.max_consecutive_errors, self.error_tolerance)
        while True:
            if self.deadline is not None and time.time() >= self.deadline:
                return timeout_event(self.batch_id, _parsed(last_seen), reason="deadline")
            server_wait = 0.0
            try:
                batch = await self._poll(watcher, wait)
            except asyncio.TimeoutError:
                return timeout_event(self.batch_id, _parsed(last_seen), reason="deadline")
            except APIError as error:
                if not error.retryable or streak.record_failure():
                    return error_event(self.batch_id, error, _parsed(last_seen), streak.describe())
                self.log.warning(
                    "Batch %s: poll failed (%s in a row), will poll again: %s",
                    self.batch_id,
                    streak.count,
                    error,
                )
                server_wait = error.retry_after or 0.0
            except MessageBatchError as error:
                return error_event(self.batch_id, error, _parsed(last_seen), None)
            else:
                streak.reset()
                progress.observe(self.log, batch)
                if batch.is_ended:
                    return success_event(batch)
                if time.time() > batch.expires_at.timestamp() + self.expiry_grace:
                    return timeout_event(self.batch_id, batch, reason="expired")
                last_seen = batch.model_dump_json().encode()
                del batch
            wait = self._next_wait(server_wait)
            if self.deadline is not None and time.time() + wait >= self.deadline:
                # The next poll would fall at the deadline: wait it out, poll no more.
                await asyncio.sleep(wait)
                return timeout_event(self.batch_id, _parsed(last_seen), reason="deadline")

    def _poll(self, watcher: BatchWatcher, within: float) -> Awaitable[MessageBatch]:
        """One poll from the watcher within ``within`` seconds, retries included, cut off with
        ``asyncio.TimeoutError`` when the deadline passes.

        The hook reports its own timeouts as ``APITimeoutError``, so a ``TimeoutError`` here
        is the deadline's (``wait_within``: it never loses a cancel, unlike ``wait_for`` < 3.12).
        A plain function, not a coroutine: one object less for each wait.
        """
        poll = watcher.poll(self.batch_id, within=within)
        if self.deadline is None:
            return poll
        return wait_within(poll, max(0.0, self.deadline - time.time()))

    def _next_wait(self, server_wait: float) -> float:
        wait = max(self.poll_interval * (1 - POLL_JITTER * random.random()), server_wait)
        if self.deadline is not None:
            wait = min(wait, max(0.0, self.deadline - time.time()))
        return wait


def _parsed(last_seen: bytes | None) -> MessageBatch | None:
    return None if last_seen is None else MessageBatch.model_validate_json(last_seen)


class _FailureStreak:
    """Consecutive transient failures, bounded by count and by duration."""

    __slots__ = ("count", "max_count", "max_seconds", "started")

    def __init__(self, max_count: int, max_seconds: float) -> None:
        self.max_count = max_count
        self.max_seconds = max_seconds
        self.count = 0
        self.started: float | None = None

    def record_failure(self) -> bool:
        """Count one failure; True when the streak is past what is tolerated."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        self.count += 1
        return self.count >= self.max_count or now - self.started >= self.max_seconds

    def reset(self) -> None:
        self.count = 0
        self.started = None

    def describe(self) -> str | None:
        if self.count < 2:
            return None
        return f"gave up after {self.count} consecutive failed polls"


class _ProgressLog:
    """One line on the first poll and on every change, else one per ``interval`` seconds."""

    __slots__ = ("interval", "last_line", "last_logged", "warned_unknown")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_line: str | None = None
        self.last_logged = 0.0
        self.warned_unknown = False

    def observe(self, log: Any, batch: MessageBatch) -> None:
        line = batch.progress_summary()  # a str: nothing the GC tracks stays behind
        now = time.monotonic()
        if line != self.last_line or now - self.last_logged >= self.interval:
            log.info("Batch %s", line)
            self.last_line = line
            self.last_logged = now
        if not batch.is_known_status and not self.warned_unknown:
            self.warned_unknown = True
            log.warning(
                "Batch %s reports processing_status %r, which this provider does not know; "
                "waiting until it reports 'ended'.",
                batch.id,
                batch.processing_status,
            )
