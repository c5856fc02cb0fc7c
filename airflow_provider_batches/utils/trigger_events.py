"""The one event a MessageBatchTrigger yields: build it in the trigger, check it in the sensor.

Every payload is a JSON-safe dict with ``status`` (``success``, ``error`` or ``timeout``),
``batch_id`` and a human ``message``; ``batch`` is the batch last seen, in the API's own shape
(``None`` if no poll succeeded); ``error`` events add an ``error`` dict (see
:meth:`APIError.to_dict`).
"""

from __future__ import annotations

from typing import Any, Literal

from airflow_provider_batches.exceptions import APIError, MessageBatchError
from airflow_provider_batches.models import MessageBatch

EVENT_STATUSES: frozenset[str] = frozenset({"success", "error", "timeout"})
_MAX_DETAIL_CHARS = 500


def success_event(batch: MessageBatch) -> dict[str, Any]:
    return {
        "status": "success",
        "batch_id": batch.id,
        "batch": batch.to_xcom(),
        "message": f"Batch {batch.progress_summary()}",
    }


def error_event(
    batch_id: str,
    error: MessageBatchError,
    last_batch: MessageBatch | None,
    context: str | None,
) -> dict[str, Any]:
    if isinstance(error, APIError):
        details = error.to_dict()
    else:
        details = {"error_class": type(error).__name__, "message": str(error)}
    message = f"Waiting for batch {batch_id} failed: {error}"
    if context:
        message += f" ({context})"
    return {
        "status": "error",
        "batch_id": batch_id,
        "batch": last_batch.to_xcom() if last_batch else None,
        "error": details,
        "message": message,
    }


def unexpected_error_event(batch_id: str, error: Exception, secret: str) -> dict[str, Any]:
    """The error event for a failure no other handler expected (never an escaped exception)."""
    from airflow_provider_batches._http.send import redact

    detail = redact(f"{type(error).__name__}: {error}", secret)[:_MAX_DETAIL_CHARS]
    message = f"Waiting for batch {batch_id} failed unexpectedly ({detail})."
    if isinstance(error, UnicodeError):
        message += (
            " A connection field sent as an HTTP header (Password, or the betas or workspace_id"
            " extras) holds characters a header cannot carry: use ASCII only."
        )
    return {
        "status": "error",
        "batch_id": batch_id,
        "batch": None,
        "error": {"error_class": type(error).__name__, "message": detail},
        "message": message,
    }


def timeout_event(
    batch_id: str, last_batch: MessageBatch | None, *, reason: Literal["deadline", "expired"]
) -> dict[str, Any]:
    if reason == "deadline":
        message = f"Batch {batch_id} had not ended when the wait's deadline passed"
    else:
        message = (
            f"Batch {batch_id} passed its expires_at and the grace period, "
            "but the API still does not report it ended"
        )
    if last_batch is not None:
        message += f"; last seen: {last_batch.progress_summary()}"
    return {
        "status": "timeout",
        "batch_id": batch_id,
        "batch": last_batch.to_xcom() if last_batch else None,
        "reason": reason,
        "message": message,
    }


def validate_event(event: Any, expected_batch_id: str) -> dict[str, Any]:
    """Check an event's shape before the sensor acts on it; raise ``ValueError`` if malformed."""
    if not isinstance(event, dict):
        raise ValueError(
            f"MessageBatchTrigger event for batch {expected_batch_id} must be a dict, "
            f"got {type(event).__name__}."
        )
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise ValueError(
            f"MessageBatchTrigger event for batch {expected_batch_id} has status {status!r}; "
            f"expected one of {sorted(EVENT_STATUSES)}."
        )
    if event.get("batch_id") != expected_batch_id:
        raise ValueError(
            f"MessageBatchTrigger event is for batch {event.get('batch_id')!r}, but this task "
            f"waits for {expected_batch_id!r}."
        )
    if status == "success" and not isinstance(event.get("batch"), dict):
        raise ValueError(f"Success event for batch {expected_batch_id} carries no batch.")
    return event
