"""OutcomePolicy.evaluate: each limit fails exactly when exceeded, never at or below it."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.utils.policy import OutcomePolicy


def _ended(**counts: int) -> MessageBatch:
    full = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0, **counts}
    return MessageBatch.model_validate(
        {
            "id": "msgbatch_policy",
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": full,
            "created_at": "2024-08-20T18:37:24Z",
            "expires_at": "2024-08-21T18:37:24Z",
            "ended_at": "2024-08-20T19:37:24Z",
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
        }
    )


@pytest.mark.parametrize("outcome", ["errored", "expired", "canceled"])
def test_a_count_limit_fails_only_when_exceeded(outcome: str) -> None:
    policy = OutcomePolicy(**{f"max_{outcome}": 2})
    below, at, above = (_ended(succeeded=10, **{outcome: n}) for n in (1, 2, 3))
    assert policy.evaluate(below).action == "succeed"
    assert policy.evaluate(at).action == "succeed"
    verdict = policy.evaluate(above)
    assert verdict.action == "fail"
    assert f"3 {outcome} exceeds max_{outcome}=2" in verdict.reason


@pytest.mark.parametrize("outcome", ["errored", "expired", "canceled"])
def test_a_ratio_limit_fails_only_when_exceeded(outcome: str) -> None:
    policy = OutcomePolicy(**{f"max_{outcome}_ratio": 0.25})
    assert policy.evaluate(_ended(succeeded=3, **{outcome: 1})).action == "succeed"
    verdict = policy.evaluate(_ended(succeeded=2, **{outcome: 2}))
    assert verdict.action == "fail"
    assert f"max_{outcome}_ratio=0.25" in verdict.reason


def test_no_limit_means_any_outcome_succeeds() -> None:
    assert OutcomePolicy().evaluate(_ended(errored=5, expired=5, canceled=5)).action == "succeed"


@pytest.mark.parametrize(
    ("setting", "action"), [("succeed", "succeed"), ("fail", "fail"), ("skip", "skip")]
)
def test_a_fully_canceled_batch_follows_on_fully_canceled(setting: Any, action: str) -> None:
    verdict = OutcomePolicy(on_fully_canceled=setting).evaluate(_ended(canceled=3))
    assert verdict.action == action
    # A batch with anything but cancellations is not "fully canceled".
    partly = OutcomePolicy(on_fully_canceled=setting).evaluate(_ended(canceled=2, succeeded=1))
    assert partly.action == "succeed"
