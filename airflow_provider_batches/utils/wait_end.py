"""How a wait ends for a task, shared by MessageBatchSensor and MessageBatchOperator.

Two different endings, never mixed up:

* the batch **ended**: the outcome policy decides (return it, skip, or
  :class:`BatchOutcomeError`);
* the wait **gave up** while the batch was still running, or while it could not be read
  (:class:`BatchWaitTimeoutError`, :class:`BatchWaitError`, :class:`BatchPermanentError`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_batches._compat import AirflowSkipException
from airflow_provider_batches.exceptions import (
    BatchOutcomeError,
    BatchPermanentError,
    BatchWaitError,
    BatchWaitTimeoutError,
    MessageBatchError,
)
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.utils.policy import OutcomePolicy

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_batches.hooks.batch import MessageBatchHook


def finish_batch(
    policy: OutcomePolicy, batch: MessageBatch, context: Context, log: logging.Logger | Any
) -> dict[str, Any]:
    """Apply ``policy`` to an ended batch; return its XCom form if it passes."""
    value = batch.to_xcom()
    verdict = policy.evaluate(batch)
    log.info("Batch %s", batch.progress_summary())
    if verdict.action == "succeed":
        return value
    # The task will not return a value: keep the batch in XCom for all_done downstreams.
    context["ti"].xcom_push(key="batch", value=value)
    if verdict.action == "skip":
        raise AirflowSkipException(f"Skipping: {verdict.reason}.")
    raise BatchOutcomeError(f"Failing: {verdict.reason}.", batch_id=batch.id, batch=value)


def gave_up_error(event: dict[str, Any], batch_id: str, note: str = "") -> BatchWaitError:
    """The error for a ``timeout`` or ``error`` event: the wait stopped, not the batch."""
    message = event["message"] + note
    if event["status"] == "timeout":
        return BatchWaitTimeoutError(message, batch_id=batch_id, batch=event.get("batch"))
    error = event.get("error") or {}
    error_class = BatchWaitError if error.get("retryable", False) else BatchPermanentError
    return error_class(message, batch_id=batch_id, batch=event.get("batch"), error=error)


def cancel_quietly(hook: MessageBatchHook, batch_id: str, log: logging.Logger | Any) -> bool:
    """Cancel ``batch_id`` on a kill; log instead of raising (the task is going down anyway)."""
    try:
        batch = hook.cancel_batch(batch_id)
    except MessageBatchError as error:
        log.warning("Batch %s: cancel on kill failed: %s", batch_id, error)
        return False
    log.info("Batch %s: canceled on kill; now %s.", batch_id, batch.processing_status)
    return True


def wait_in_worker(trigger: BaseTrigger) -> dict[str, Any]:
    """Run ``trigger`` to its one event in this process: the same wait as in the triggerer."""

    async def first_event() -> dict[str, Any]:
        from airflow_provider_batches._http.clients import aclose_shared_clients

        try:
            async for event in trigger.run():
                return dict(event.payload)
        finally:
            await aclose_shared_clients()
        raise RuntimeError(f"{type(trigger).__name__} ended without an event.")

    return asyncio.run(first_event())
