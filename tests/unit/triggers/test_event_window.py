"""The pure bookkeeping of MessageBatchEventTrigger: filters, watermark, seen-set, window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.triggers._event_window import (
    MAX_WATERMARK_IDS,
    REORDER_MARGIN,
    EndedBatch,
    EventFilter,
    SeenSet,
    Watermark,
    coverage_start,
    next_watermark,
    read_page,
)
from airflow_provider_batches.utils.policy import OutcomePolicy

pytestmark = pytest.mark.matrix

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
#: The trigger's clock in the watermark tests: after every end they generate.
NOW = T0 + timedelta(days=1)


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


def ended(batch_id: str, at: datetime, created: datetime = T0 - timedelta(days=1)) -> EndedBatch:
    return EndedBatch(batch(batch_id, created=created, ended=at), at)


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
    mark = Watermark(T0, {"b": T0, "a": T0 + timedelta(seconds=1)})
    assert Watermark.from_json(mark.to_json()) == mark
    assert list(mark.to_json()["ids"]) == ["a", "b"]  # stable order


def test_a_version_1_watermark_is_read_with_its_ids_at_the_horizon() -> None:
    stored = {"version": 1, "horizon": T0.isoformat(), "ids": ["a", "b"]}
    assert Watermark.from_json(stored) == Watermark(T0, {"a": T0, "b": T0})


@pytest.mark.parametrize(
    "value",
    [None, "x", {}, {"version": 3, "horizon": T0.isoformat(), "ids": {}},
     {"version": 2, "horizon": "not a time", "ids": {}},
     {"version": 2, "horizon": "2025-03-01T12:00:00", "ids": {}},
     {"version": 2, "horizon": T0.isoformat(), "ids": ["a"]},
     {"version": 2, "horizon": T0.isoformat(), "ids": {"a": "2025-03-01T12:00:00"}},
     {"version": 2, "horizon": T0.isoformat(), "ids": {"a": 5}},
     {"version": 2, "horizon": "0001-01-01T00:00:00+00:00", "ids": {}},
     {"version": 1, "horizon": T0.isoformat(), "ids": [1]}],
)  # fmt: skip
def test_unreadable_watermark_is_none(value: Any) -> None:
    assert Watermark.from_json(value) is None


def test_watermark_covers_before_horizon_and_listed_ids_only() -> None:
    mark = Watermark(T0, {"at_horizon": T0})
    assert mark.covers(ended("old", T0 - timedelta(microseconds=1)))
    assert mark.covers(ended("at_horizon", T0))
    assert not mark.covers(ended("other_at_horizon", T0))
    assert not mark.covers(ended("later", T0 + timedelta(seconds=1)))


ended_map_st = st.dictionaries(
    st.text("abcdef0123", min_size=1, max_size=6),
    st.integers(-5000, 5000).map(lambda s: T0 + timedelta(seconds=s)),
    max_size=40,
)
#: Ends as hostile servers report them: any time from year 1 to 9999, in the future included.
any_end_st = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)
)
hostile_map_st = st.dictionaries(
    st.text("abcdef0123", min_size=1, max_size=6), any_end_st, max_size=20
)


@settings(max_examples=300, deadline=None)
@given(handled=ended_map_st, previous_offset=st.integers(-6000, 6000), later=ended_map_st)
def test_next_watermark_covers_every_handled_batch_and_never_moves_back(
    handled: dict[str, datetime], previous_offset: int, later: dict[str, datetime]
) -> None:
    previous = Watermark(T0 + timedelta(seconds=previous_offset), {"p": T0 + timedelta(hours=9)})
    mark = next_watermark(handled, previous, NOW)
    assert mark.horizon >= previous.horizon
    for batch_id, at in handled.items():
        assert mark.covers(ended(batch_id, at))
    assert mark.covers(ended("p", T0 + timedelta(hours=9)))
    if handled:
        assert mark.horizon >= max(handled.values()) - REORDER_MARGIN
    # A batch shown late, within the margin of the newest end, is not covered.
    if handled and mark.horizon == max(handled.values()) - REORDER_MARGIN:
        assert not mark.covers(ended("late_one", mark.horizon))
    # Later handling keeps covered whatever is covered, handled again or not.
    again = next_watermark({f"z{k}": v for k, v in later.items()}, mark, NOW)
    for batch_id, at in handled.items():
        assert again.covers(ended(batch_id, at))


@settings(max_examples=300, deadline=None)
@given(
    handled=hostile_map_st,
    # A stored horizon is never before 2000 (older ones are not read back).
    previous=st.builds(
        Watermark,
        st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(timezone.utc)),
        hostile_map_st,
    ),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(timezone.utc),
    ),
)
def test_no_reported_end_moves_the_horizon_past_the_clock(
    handled: dict[str, datetime], previous: Watermark, now: datetime
) -> None:
    mark = next_watermark(handled, previous, now)
    assert mark.horizon <= now
    assert mark.horizon >= min(previous.horizon, now)  # never back, but for a horizon past now
    for batch_id, at in handled.items():
        assert mark.covers(ended(batch_id, at))
    assert Watermark.from_json(mark.to_json()) == mark


def test_an_end_in_the_future_is_covered_by_its_id_not_the_horizon() -> None:
    future = T0 + timedelta(days=365 * 70)
    mark = next_watermark({"future": future, "now": NOW}, Watermark(T0), NOW)
    assert mark.horizon == NOW - REORDER_MARGIN
    assert mark.covers(ended("future", future))
    # A batch that ends later (on the trigger's clock) is not covered.
    assert not mark.covers(ended("later", NOW + timedelta(seconds=1)))


def test_next_watermark_keeps_previous_ids_until_the_horizon_covers_them() -> None:
    previous = Watermark(T0, {"gone_from_the_list": T0 + timedelta(minutes=5)})
    mark = next_watermark({"new": T0 + timedelta(seconds=1)}, previous, NOW)
    assert mark.horizon == T0
    assert set(mark.ids) == {"gone_from_the_list", "new"}
    # The horizon moves up to 10 minutes before the newest end: still not past the gone one.
    mark = next_watermark({"newer": T0 + timedelta(minutes=12)}, mark, NOW)
    assert mark.horizon == T0 + timedelta(minutes=2)
    assert set(mark.ids) == {"gone_from_the_list", "newer"}
    mark = next_watermark({"newest": T0 + timedelta(minutes=30)}, mark, NOW)
    assert set(mark.ids) == {"newest"}
    assert mark.covers(ended("gone_from_the_list", T0 + timedelta(minutes=5)))


def test_next_watermark_bounds_the_ids() -> None:
    handled = {f"b{i}": T0 + timedelta(microseconds=i // 3) for i in range(3 * MAX_WATERMARK_IDS)}
    previous = Watermark(T0 - timedelta(days=1), {"old": T0 - timedelta(hours=1)})
    mark = next_watermark(handled, previous, NOW)
    assert len(mark.ids) <= MAX_WATERMARK_IDS
    assert all(mark.covers(ended(i, e)) for i, e in handled.items())
    assert mark.covers(ended("old", T0 - timedelta(hours=1)))


def test_past_the_id_limit_ends_in_the_future_drop_out_the_horizon_stays_at_the_clock() -> None:
    future = {f"f{i}": NOW + timedelta(days=1, seconds=i) for i in range(MAX_WATERMARK_IDS + 5)}
    mark = next_watermark(future, Watermark(T0), NOW)
    assert mark.horizon == NOW
    assert len(mark.ids) == MAX_WATERMARK_IDS
    # The earliest ends are kept; the five that report the latest may be reported again.
    assert set(mark.ids) == {f"f{i}" for i in range(MAX_WATERMARK_IDS)}


def test_read_page_skips_unusable_entries_and_stops_only_at_a_page_that_ends_before_start() -> None:
    start = T0 - timedelta(hours=1)
    good = batch("msgbatch_good", created=T0, ended=T0 + timedelta(minutes=1))
    running = batch("msgbatch_running", created=T0, ended=None)
    old = batch("msgbatch_old", created=T0 - timedelta(days=9), ended=T0 - timedelta(days=8))
    no_end = good.model_copy(update={"id": "msgbatch_no_end", "ended_at": None})
    backwards = good.model_copy(
        update={"id": "msgbatch_backwards", "ended_at": T0 - timedelta(minutes=1)}
    )
    window = read_page([old, no_end, good, backwards, running], start)
    assert [e.id for e in window.ended] == ["msgbatch_good"]
    assert not window.passed_start
    assert window.unusable == [
        ("msgbatch_no_end", "it is ended but has no ended_at"),
        ("msgbatch_backwards", "it ended before it was created"),
    ]
    assert read_page([good, old, no_end], start).passed_start
    assert not read_page([no_end], start).passed_start
    assert not read_page([], start).passed_start


def test_seen_set_forgets_batches_created_before_the_window() -> None:
    seen = SeenSet()
    seen.add(ended("old", T0, created=T0 - timedelta(hours=30)))
    seen.add(ended("new", T0 + timedelta(hours=1), created=T0))
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
