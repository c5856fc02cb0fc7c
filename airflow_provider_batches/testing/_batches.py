"""One fake Message Batch: its lifecycle over time, its JSON and its results lines.

Pure logic, no locking: the store in ``_state`` serialises access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from ._ids import rfc3339
from ._results import DEFAULT_ERROR_TYPES, ResultsSpec

OUTCOME_KINDS: tuple[str, ...] = ("succeeded", "errored", "canceled", "expired")
MAX_REQUESTS = 100_000

EndReason = Literal["processed", "canceled", "expired"]


def normalize_outcomes(num_requests: int, outcomes: dict[str, int] | None) -> dict[str, int]:
    """Validate ``outcomes`` against ``num_requests``; None means every request succeeds."""
    if isinstance(num_requests, bool) or not isinstance(num_requests, int) or num_requests < 1:
        raise ValueError(f"num_requests must be a positive integer, got {num_requests!r}")
    if outcomes is None:
        return {"succeeded": num_requests, "errored": 0, "canceled": 0, "expired": 0}
    unknown = set(outcomes) - set(OUTCOME_KINDS)
    if unknown:
        raise ValueError(f"unknown outcome kinds {sorted(unknown)}; expected {OUTCOME_KINDS}")
    result = {kind: outcomes.get(kind, 0) for kind in OUTCOME_KINDS}
    for kind, count in result.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"outcome {kind!r} must be a non-negative integer, got {count!r}")
    if sum(result.values()) != num_requests:
        raise ValueError(
            f"outcomes sum to {sum(result.values())} but num_requests is {num_requests}"
        )
    return result


@dataclass
class BatchRecord:
    """State of one batch. Times are epoch seconds; ``None`` means "never"."""

    id: str
    num_requests: int
    created_at: float
    ends_at: float | None
    expires_at: float
    archive_at: float | None
    cancel_delay: float | None
    outcomes: dict[str, int]
    custom_ids: list[str] | None = None
    models: list[str] | None = None
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    status_override: str | None = None
    response_chars: int | None = None
    error_types: Sequence[str] | None = None
    results_base_url: str | None = None
    contents: list[list[dict[str, Any]]] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply every transition scheduled at or before ``now``."""
        if self.ended_at is not None:
            return
        end_at: float | None
        reason: EndReason
        if self.cancel_initiated_at is not None:
            end_at = (
                None if self.cancel_delay is None else self.cancel_initiated_at + self.cancel_delay
            )
            reason = "canceled"
        else:
            end_at, reason = self.ends_at, "processed"
        if end_at is None or self.expires_at < end_at:
            end_at, reason = self.expires_at, "expired"
        if end_at <= now:
            self.ended_at = end_at
            self.end_reason = reason

    def force_end(self, now: float) -> None:
        """End processing now: outcomes apply, or every request is canceled if canceling."""
        self.advance(now)
        if self.ended_at is None:
            self.ended_at = now
            self.end_reason = "processed" if self.cancel_initiated_at is None else "canceled"

    def cancel(self, now: float) -> bool:
        """Start canceling; False if processing already ended. Idempotent while canceling."""
        self.advance(now)
        if self.ended_at is not None:
            return False
        if self.cancel_initiated_at is None:
            self.cancel_initiated_at = now
        return True

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def archived(self, now: float) -> bool:
        return self.archive_at is not None and self.archive_at <= now

    def processing_status(self) -> str:
        if self.status_override is not None:
            return self.status_override
        if self.ended_at is not None:
            return "ended"
        return "in_progress" if self.cancel_initiated_at is None else "canceling"

    def request_counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.end_reason is None:
            counts["processing"] = self.num_requests
        elif self.end_reason == "processed":
            counts.update(self.outcomes)
        else:
            counts[self.end_reason] = self.num_requests
        return counts

    # ---- wire forms ------------------------------------------------------------------------

    def results_url(self, base_url: str) -> str:
        return f"{base_url}/v1/messages/batches/{quote(self.id, safe='')}/results"

    def to_json(self, base_url: str, now: float) -> dict[str, Any]:
        """The MessageBatch object as the API serves it at ``now`` (call ``advance`` first)."""
        archived_at = self.archive_at if self.archived(now) else None
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status(),
            "request_counts": self.request_counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "ended_at": _maybe_time(self.ended_at),
            "cancel_initiated_at": _maybe_time(self.cancel_initiated_at),
            "archived_at": _maybe_time(archived_at),
            "results_url": (
                self.results_url(self.results_base_url or base_url) if self.ended else None
            ),
        }

    def results_spec(self) -> ResultsSpec:
        return ResultsSpec(
            batch_id=self.id,
            kinds=self.result_kinds(),
            custom_ids=self.custom_ids,
            models=self.models,
            response_chars=self.response_chars,
            error_types=self.error_types or DEFAULT_ERROR_TYPES,
            contents=self.contents,
        )

    def result_kinds(self) -> list[str]:
        """Per-request final result type, in request order (only meaningful once ended)."""
        if self.end_reason in ("canceled", "expired"):
            return [self.end_reason] * self.num_requests
        kinds: list[str] = []
        for kind in OUTCOME_KINDS:
            kinds.extend([kind] * self.outcomes[kind])
        return kinds

    def results_jsonl(self) -> bytes:
        """The whole results file (small batches; the server streams :meth:`results_spec`)."""
        return b"".join(self.results_spec().iter_chunks())


def _maybe_time(value: float | None) -> str | None:
    return None if value is None else rfc3339(value)
