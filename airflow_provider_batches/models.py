"""Typed models of the Message Batches API's responses (a batch, a page of the batch list)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, NonNegativeInt


class ProcessingStatus(str, Enum):
    """The processing states the API documents; only ``ENDED`` is terminal."""

    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"


class _ApiModel(BaseModel):
    # ``extra="allow"`` keeps fields the API adds later instead of failing or dropping them.
    model_config = ConfigDict(extra="allow", frozen=True)


class RequestCounts(_ApiModel):
    """How many of a batch's requests are in each state; they always sum to the batch's total.

    A count category the API adds later is kept (``model_extra``) and counted in :attr:`total`.
    """

    processing: NonNegativeInt
    succeeded: NonNegativeInt
    errored: NonNegativeInt
    canceled: NonNegativeInt
    expired: NonNegativeInt

    @property
    def total(self) -> int:
        """Every request of the batch: the sum of all its integer counts, known or not."""
        documented = self.processing + self.succeeded + self.errored + self.canceled + self.expired
        return documented + sum(
            value
            for value in (self.model_extra or {}).values()
            if isinstance(value, int) and not isinstance(value, bool)
        )

    @property
    def unsuccessful(self) -> int:
        """Requests that finished without a result: errored, canceled or expired."""
        return self.errored + self.canceled + self.expired


class MessageBatch(_ApiModel):
    """A Message Batch as ``GET /v1/messages/batches/{id}`` returns it.

    ``processing_status`` is a plain string so that a status the API introduces later parses
    instead of failing; compare against :class:`ProcessingStatus` members, which are strings too.
    """

    id: str
    type: Literal["message_batch"]
    processing_status: str
    request_counts: RequestCounts
    created_at: AwareDatetime
    expires_at: AwareDatetime
    ended_at: AwareDatetime | None
    cancel_initiated_at: AwareDatetime | None
    archived_at: AwareDatetime | None
    results_url: str | None

    @property
    def is_ended(self) -> bool:
        return self.processing_status == ProcessingStatus.ENDED.value

    @property
    def is_known_status(self) -> bool:
        return self.processing_status in _KNOWN_STATUSES

    @property
    def total_requests(self) -> int:
        return self.request_counts.total

    @property
    def is_fully_canceled(self) -> bool:
        """Ended with every request canceled: nothing was processed."""
        counts = self.request_counts
        return self.is_ended and counts.total > 0 and counts.canceled == counts.total

    def to_xcom(self) -> dict[str, Any]:
        """A JSON-safe dict in the API's own shape (datetimes as RFC 3339 strings)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> MessageBatch:
        return cls.model_validate(value)

    def progress_summary(self) -> str:
        c = self.request_counts
        return (
            f"{self.id} {self.processing_status}: {c.total} requests, {c.processing} processing, "
            f"{c.succeeded} succeeded, {c.errored} errored, {c.canceled} canceled, "
            f"{c.expired} expired"
        )


_KNOWN_STATUSES = frozenset(s.value for s in ProcessingStatus)


class MessageBatchPage(_ApiModel):
    """One page of ``GET /v1/messages/batches``, newest batch first.

    The next (older) page starts after ``last_id`` (``after_id=last_id``); ``has_more`` says
    whether there is one.
    """

    data: list[MessageBatch]
    has_more: bool
    first_id: str | None
    last_id: str | None
