"""MessageBatch and RequestCounts: parsing the wire contract's JSON, XCom round trips, totals."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_batches.models import (
    MessageBatch,
    ProcessingStatus,
    RequestCounts,
)

# The example of the wire contract, verbatim.
EXAMPLE_JSON = """
{"id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", "archived_at": "2024-08-20T18:37:24.100435Z",
 "cancel_initiated_at": "2024-08-20T18:37:24.100435Z", "created_at": "2024-08-20T18:37:24.100435Z",
 "ended_at": "2024-08-20T18:37:24.100435Z", "expires_at": "2024-08-20T18:37:24.100435Z",
 "processing_status": "in_progress",
 "request_counts": {"canceled": 10, "errored": 30, "expired": 10, "processing": 100,
                    "succeeded": 50},
 "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results",
 "type": "message_batch"}
"""
EXAMPLE_TIME = datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=timezone.utc)
DATETIME_FIELDS = ("created_at", "expires_at", "ended_at", "cancel_initiated_at", "archived_at")


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE_JSON)


def batch_json(
    status: str = "in_progress", counts: dict[str, int] | None = None, **overrides: Any
) -> dict[str, Any]:
    data = example()
    data["processing_status"] = status
    if counts is not None:
        data["request_counts"] = {
            "processing": 0,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
            **counts,
        }
    data.update(overrides)
    return data


def test_contract_example_parses_to_exact_values() -> None:
    batch = MessageBatch.model_validate_json(EXAMPLE_JSON)

    assert batch.id == "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.processing_status == ProcessingStatus.IN_PROGRESS
    assert batch.results_url == (
        "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results"
    )
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (100, 50, 30)
    assert (counts.canceled, counts.expired) == (10, 10)
    for name in DATETIME_FIELDS:
        value = getattr(batch, name)
        assert isinstance(value, datetime), name
        assert value == EXAMPLE_TIME, name
        assert value.microsecond == 100435, name
        assert value.tzinfo is not None, name
        assert value.utcoffset() == timedelta(0), name
    assert batch.model_extra == {}


def test_example_parses_the_same_from_a_dict_and_from_json() -> None:
    assert MessageBatch.model_validate(example()) == MessageBatch.model_validate_json(EXAMPLE_JSON)


def test_offset_timestamps_are_aware_and_equal_to_their_utc_instant() -> None:
    data = batch_json(created_at="2024-08-20T20:37:24.100435+02:00")
    batch = MessageBatch.model_validate(data)
    assert batch.created_at == EXAMPLE_TIME
    assert batch.created_at.utcoffset() == timedelta(hours=2)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValidationError, match="created_at"):
        MessageBatch.model_validate(batch_json(created_at="2024-08-20T18:37:24.100435"))


def test_unknown_extra_fields_are_tolerated_and_kept() -> None:
    data = example()
    data["priority"] = "high"
    data["new_object"] = {"nested": [1, 2]}
    data["request_counts"]["queued"] = 7
    batch = MessageBatch.model_validate(data)

    assert batch.model_extra == {"priority": "high", "new_object": {"nested": [1, 2]}}
    assert batch.request_counts.model_extra == {"queued": 7}
    # A count category the API adds is part of the total (one definition everywhere).
    assert batch.request_counts.total == 207
    dumped = batch.to_xcom()
    assert dumped["priority"] == "high"
    assert dumped["new_object"] == {"nested": [1, 2]}
    assert dumped["request_counts"]["queued"] == 7
    assert MessageBatch.from_xcom(dumped) == batch


def test_unknown_processing_status_parses_but_is_neither_ended_nor_known() -> None:
    batch = MessageBatch.model_validate(batch_json(status="paused"))
    assert batch.processing_status == "paused"
    assert batch.is_ended is False
    assert batch.is_known_status is False


@pytest.mark.parametrize(
    ("status", "ended"),
    [("in_progress", False), ("canceling", False), ("ended", True)],
)
def test_known_statuses(status: str, ended: bool) -> None:
    batch = MessageBatch.model_validate(batch_json(status=status))
    assert batch.is_known_status is True
    assert batch.is_ended is ended


def test_nullable_fields_accept_null() -> None:
    data = batch_json(ended_at=None, cancel_initiated_at=None, archived_at=None, results_url=None)
    batch = MessageBatch.model_validate(data)
    assert batch.ended_at is None
    assert batch.cancel_initiated_at is None
    assert batch.archived_at is None
    assert batch.results_url is None
    assert batch.created_at == EXAMPLE_TIME
    assert MessageBatch.from_xcom(batch.to_xcom()) == batch


@pytest.mark.parametrize("name", ["created_at", "expires_at"])
def test_non_nullable_timestamps_reject_null(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        MessageBatch.model_validate(batch_json(**{name: None}))


def test_to_xcom_is_json_safe_in_the_api_shape() -> None:
    batch = MessageBatch.model_validate_json(EXAMPLE_JSON)
    value = batch.to_xcom()

    text = json.dumps(value)
    assert set(value) == set(example())
    assert value["id"] == "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"
    assert value["request_counts"] == example()["request_counts"]
    for name in DATETIME_FIELDS:
        assert isinstance(value[name], str), name
        assert datetime.fromisoformat(value[name]) == EXAMPLE_TIME, name
    assert MessageBatch.from_xcom(json.loads(text)) == batch


def test_from_xcom_round_trip_keeps_every_field_and_type() -> None:
    batch = MessageBatch.model_validate(example())
    again = MessageBatch.from_xcom(json.loads(json.dumps(batch.to_xcom())))
    assert again == batch
    for name in DATETIME_FIELDS:
        assert getattr(again, name) == getattr(batch, name)
        assert getattr(again, name).utcoffset() == timedelta(0)
    assert isinstance(again.request_counts, RequestCounts)


def test_models_are_frozen() -> None:
    batch = MessageBatch.model_validate(example())
    with pytest.raises(ValidationError):
        batch.processing_status = "ended"  # type: ignore[misc]


def test_totals_and_unsuccessful() -> None:
    batch = MessageBatch.model_validate(example())
    assert batch.request_counts.total == 200
    assert batch.total_requests == 200
    assert batch.request_counts.unsuccessful == 30 + 10 + 10


@settings(derandomize=True, database=None)
@given(
    st.lists(st.integers(min_value=0, max_value=100_000), min_size=5, max_size=5),
)
def test_total_is_the_sum_of_the_five_counts(values: list[int]) -> None:
    names = ("processing", "succeeded", "errored", "canceled", "expired")
    counts = RequestCounts.model_validate(dict(zip(names, values, strict=True)))
    assert counts.total == sum(values)
    assert counts.unsuccessful == values[2] + values[3] + values[4]


@pytest.mark.parametrize(
    ("status", "counts", "expected"),
    [
        ("ended", {"canceled": 5}, True),
        ("ended", {"canceled": 4, "succeeded": 1}, False),
        ("ended", {"canceled": 4, "expired": 1}, False),
        ("ended", {}, False),  # no requests at all: nothing was canceled either
        ("canceling", {"canceled": 5}, False),
        ("in_progress", {"processing": 5}, False),
    ],
)
def test_is_fully_canceled(status: str, counts: dict[str, int], expected: bool) -> None:
    batch = MessageBatch.model_validate(batch_json(status=status, counts=counts))
    assert batch.is_fully_canceled is expected


@pytest.mark.parametrize("field", ["processing", "succeeded", "errored", "canceled", "expired"])
def test_negative_counts_are_rejected(field: str) -> None:
    data = example()
    data["request_counts"][field] = -1
    with pytest.raises(ValidationError, match=field):
        MessageBatch.model_validate(data)


def test_missing_count_is_rejected() -> None:
    data = example()
    del data["request_counts"]["expired"]
    with pytest.raises(ValidationError, match="expired"):
        MessageBatch.model_validate(data)


@pytest.mark.parametrize("wrong", ["message_batch_deleted", "error", "", None])
def test_wrong_type_is_rejected(wrong: object) -> None:
    with pytest.raises(ValidationError, match="type"):
        MessageBatch.model_validate(batch_json(type=wrong))


@pytest.mark.parametrize("missing", ["id", "type", "processing_status", "request_counts"])
def test_missing_required_field_is_rejected(missing: str) -> None:
    data = example()
    del data[missing]
    with pytest.raises(ValidationError, match=missing):
        MessageBatch.model_validate(data)


def test_progress_summary_names_every_count() -> None:
    batch = MessageBatch.model_validate(example())
    summary = batch.progress_summary()
    assert summary.startswith("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF in_progress: 200 requests")
    for part in ("100 processing", "50 succeeded", "30 errored", "10 canceled", "10 expired"):
        assert part in summary


def test_validation_does_not_mutate_the_input() -> None:
    data = example()
    before = copy.deepcopy(data)
    MessageBatch.model_validate(data).to_xcom()
    assert data == before
