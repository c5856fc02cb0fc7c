"""What an ended batch means for the task: succeed, fail, or skip."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_batches.exceptions import InvalidTaskOptionError
from airflow_provider_batches.models import MessageBatch

FullyCanceledAction = Literal["succeed", "fail", "skip"]
_OUTCOMES = ("errored", "expired", "canceled")
#: The keyword arguments of :class:`OutcomePolicy`, which the sensor and the operator take too.
POLICY_OPTIONS = (
    "max_errored",
    "max_errored_ratio",
    "max_expired",
    "max_expired_ratio",
    "max_canceled",
    "max_canceled_ratio",
    "on_fully_canceled",
)


@dataclass(frozen=True)
class Verdict:
    action: Literal["succeed", "fail", "skip"]
    reason: str = ""


@dataclass(frozen=True)
class OutcomePolicy:
    """Limits on unsuccessful requests in an ended batch; ``None`` means no limit.

    ``max_<outcome>`` fails the task when that many requests are exceeded;
    ``max_<outcome>_ratio`` (0 to 1) when that fraction of the batch's requests is exceeded.
    ``on_fully_canceled`` decides a batch that ended with every request canceled.
    """

    max_errored: int | None = None
    max_errored_ratio: float | None = None
    max_expired: int | None = None
    max_expired_ratio: float | None = None
    max_canceled: int | None = None
    max_canceled_ratio: float | None = None
    on_fully_canceled: FullyCanceledAction = "succeed"

    def __post_init__(self) -> None:
        for outcome in _OUTCOMES:
            count = getattr(self, f"max_{outcome}")
            ratio = getattr(self, f"max_{outcome}_ratio")
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 0
            ):
                raise ValueError(
                    f"max_{outcome} must be a non-negative integer (a count of requests), "
                    f"got {count!r}; use max_{outcome}_ratio for a fraction."
                )
            if ratio is not None and (
                isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1
            ):
                raise ValueError(
                    f"max_{outcome}_ratio must be a fraction between 0 and 1, got {ratio!r}."
                )
        if self.on_fully_canceled not in ("succeed", "fail", "skip"):
            raise ValueError(
                "on_fully_canceled must be 'succeed', 'fail' or 'skip', "
                f"got {self.on_fully_canceled!r}."
            )

    def evaluate(self, batch: MessageBatch) -> Verdict:
        counts = batch.request_counts
        total = counts.total
        summary = (
            f"batch {batch.id} ended with {total} requests: {counts.succeeded} succeeded, "
            f"{counts.errored} errored, {counts.expired} expired, {counts.canceled} canceled"
        )
        if batch.is_fully_canceled and self.on_fully_canceled != "succeed":
            return Verdict(
                self.on_fully_canceled,
                f"{summary}; every request was canceled and on_fully_canceled="
                f"{self.on_fully_canceled!r}",
            )
        for outcome in _OUTCOMES:
            value: int = getattr(counts, outcome)
            limit: int | None = getattr(self, f"max_{outcome}")
            if limit is not None and value > limit:
                return Verdict(
                    "fail", f"{summary}; {value} {outcome} exceeds max_{outcome}={limit}"
                )
            ratio: float | None = getattr(self, f"max_{outcome}_ratio")
            if ratio is not None and total and value / total > ratio:
                return Verdict(
                    "fail",
                    f"{summary}; {value / total:.1%} {outcome} exceeds max_{outcome}_ratio={ratio}",
                )
        return Verdict("succeed", summary)


def task_policy(options: Mapping[str, Any], task: str) -> OutcomePolicy:
    """The policy from a task's options (those of :data:`POLICY_OPTIONS` present); a bad value
    is an :class:`InvalidTaskOptionError` naming the task, which no retry can fix."""
    try:
        return OutcomePolicy(**{name: options[name] for name in POLICY_OPTIONS if name in options})
    except ValueError as error:
        raise InvalidTaskOptionError(f"{task}: {error}") from None
