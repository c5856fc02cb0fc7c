"""The pure bookkeeping of MessageBatchEventTrigger: filters, watermark, seen-set, window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.policy import OutcomePolicy
from airflow_provider_batches.triggers._event_window import (
    MAX_WATERMARK_IDS,
    REORDER_MARGIN,
    EventFilter,
    SeenSet,
    Watermark,
    coverage_start,
    next_watermark,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def batch(
    batch_id: str = "msgbatch_a",
    created: datetime = T0,
    ended: datetime | None = T0 + timedelta(minutes=5),
    counts: dict[str, int] | None = None,
) -> MessageBatch:
    counts = counts or {"succeeded": 3}
    full = {k: counts.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired")}
    data: dict[str, Any] = {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {"processing": 0 if ended else sum(full.values()), **full},
        "created_at": created.isoformat(),
        "expires_at": (created + timedelta(hours=24)).isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": None,
    }
    return MessageBatch.model_validate(data)


counts_st = st.fixed_dictionaries(
    {k: st.integers(0, 50) for k in ("succeeded", "errored", "canceled", "expired")}
).filter(lambda c: sum(c.values()) > 0)
offset_st = st.integers(-10_000, 10_000).map(lambda s: T0 + timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(created=offset_st, counts=counts_st, after=offset_st, min_requests=st.integers(0, 200))
def test_created_after_and_min_requests_filter_exactly(
    created: datetime, counts: dict[str, int], after: datetime, min_requests: int
) -> None:
    b = batch(created=created, ended=created + timedelta(minutes=1), counts=counts)
    accepted = EventFilter(created_after=after, min_requests=min_requests).accepts(b)
    assert accepted == (created > after and sum(counts.values()) >= min_requests)


@settings(max_examples=300, deadline=None)
@given(
    counts=counts_st,
    outcome=st.sampled_from(["any", "passing", "failing"]),
    max_errored=st.none() | st.integers(0, 50),
    include_canceled=st.booleans(),
)
def test_outcome_filter_follows_the_policy_verdict(
    counts: dict[str, int], outcome: Any, max_errored: int | None, include_canceled: bool
) -> None:
    policy = OutcomePolicy(max_errored=max_errored)
    b = batch(counts=counts)
    fully_canceled = counts["canceled"] == sum(counts.values())
    accepted = EventFilter(
        outcome=outcome, policy=policy, include_canceled=include_canceled
    ).accepts(b)
    verdict = policy.evaluate(b).action
    expected = {"any": True, "passing": verdict == "succeed", "failing": verdict == "fail"}[outcome]
    assert accepted == (expected and (include_canceled or not fully_canceled))


def test_failing_outcome_selects_batches_over_the_error_limit() -> None:
    event_filter = EventFilter(outcome="failing", policy=OutcomePolicy(max_errored=1))
    assert event_filter.accepts(batch(counts={"succeeded": 1, "errored": 2}))
    assert not event_filter.accepts(batch(counts={"succeeded": 2, "errored": 1}))


def test_watermark_round_trips_through_json() -> None:
    mark = Watermark(T0, frozenset({"b", "a"}))
    assert Watermark.from_json(mark.to_json()) == mark
    assert mark.to_json()["ids"] == ["a", "b"]  # stable order


@pytest.mark.parametrize(
    "value",
    [None, "x", {}, {"version": 2, "horizon": T0.isoformat(), "ids": []},
     {"version": 1, "horizon": "not a time", "ids": []},
     {"version": 1, "horizon": "2025-03-01T12:00:00", "ids": []},
     {"version": 1, "horizon": T0.isoformat(), "ids": [1]}],
)  # fmt: skip
def test_unreadable_watermark_is_none(value: Any) -> None:
    assert Watermark.from_json(value) is None


def test_watermark_covers_before_horizon_and_listed_ids_only() -> None:
    mark = Watermark(T0, frozenset({"at_horizon"}))
    assert mark.covers(batch("old", ended=T0 - timedelta(microseconds=1)))
    assert mark.covers(batch("at_horizon", ended=T0))
    assert not mark.covers(batch("other_at_horizon", ended=T0))
    assert not mark.covers(batch("later", ended=T0 + timedelta(seconds=1)))


ended_map_st = st.dictionaries(
    st.text("abcdef0123", min_size=1, max_size=6),
    st.integers(-5000, 5000).map(lambda s: T0 + timedelta(seconds=s)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(handled=ended_map_st, previous_offset=st.integers(-6000, 6000), later=ended_map_st)
def test_next_watermark_covers_every_handled_batch_and_never_moves_back(
    handled: dict[str, datetime], previous_offset: int, later: dict[str, datetime]
) -> None:
    previous = Watermark(T0 + timedelta(seconds=previous_offset), frozenset({"p"}))
    mark = next_watermark(handled, previous)
    assert mark.horizon >= previous.horizon
    for batch_id, ended in handled.items():
        assert mark.covers(batch(batch_id, ended=ended))
    if handled:
        assert mark.horizon >= max(handled.values()) - REORDER_MARGIN
    # A batch shown late, within the margin of the newest end, is not covered.
    if handled and mark.horizon == max(handled.values()) - REORDER_MARGIN:
        assert not mark.covers(batch("late_one", ended=mark.horizon))
    # Later handling keeps what is covered covered.
    again = next_watermark({**handled, **{f"z{k}": v for k, v in later.items()}}, mark)
    for batch_id, ended in handled.items():
        assert again.covers(batch(batch_id, ended=ended))


def test_next_watermark_keeps_previous_ids_while_the_horizon_stays() -> None:
    previous = Watermark(T0, frozenset({"gone_from_the_list"}))
    mark = next_watermark({"new": T0 + timedelta(seconds=1)}, previous)
    assert mark.horizon == T0
    assert mark.ids == {"gone_from_the_list", "new"}


def test_next_watermark_bounds_the_ids() -> None:
    handled = {f"b{i}": T0 + timedelta(microseconds=i // 3) for i in range(3 * MAX_WATERMARK_IDS)}
    mark = next_watermark(handled, Watermark(T0 - timedelta(days=1), frozenset({"old"})))
    assert len(mark.ids) <= MAX_WATERMARK_IDS
    assert all(mark.covers(batch(i, ended=e)) for i, e in handled.items())
    assert mark.covers(batch("old", ended=T0 - timedelta(days=1)))


def test_seen_set_forgets_batches_created_before_the_window() -> None:
    seen = SeenSet()
    seen.add(batch("old", created=T0 - timedelta(hours=30)))
    seen.add(batch("new", created=T0))
    seen.prune(T0 - timedelta(hours=25))
    assert "old" not in seen
    assert "new" in seen
    assert len(seen) == 1


def test_coverage_reaches_back_for_catch_up_and_stops_at_created_after() -> None:
    age = timedelta(hours=25)
    now = T0 + timedelta(days=3)
    assert coverage_start(now, age, None, None) == now - age
    assert coverage_start(now, age, None, T0) == T0 - age
    assert coverage_start(now, age, T0, T0) == T0
    assert coverage_start(now, age, T0 - timedelta(days=9), None) == now - age
