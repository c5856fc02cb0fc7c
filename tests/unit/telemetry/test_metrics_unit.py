"""What each metric function hands to Airflow's ``Stats``: names, values, tags, what is left
out, and that a failing metrics backend never reaches the caller.

The real path (Airflow's StatsD client, a DAG run) is tests/telemetry/test_metrics_statsd.py;
here ``Stats`` is replaced by a recorder to reach cases a run does not produce.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.telemetry import metrics


class Recorder:
    """Stands in for ``Stats``: keeps every call as (method, name, value, tags)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, str, float, dict[str, str]]] = []
        self.threads: list[threading.Thread] = []
        self.error = error
        self.before_first_call: Callable[[], object] | None = None

    def incr(self, stat: str, count: float = 1, *, tags: dict[str, str]) -> None:
        self._record("incr", stat, count, tags)

    def gauge(self, stat: str, value: float, *, tags: dict[str, str]) -> None:
        self._record("gauge", stat, value, tags)

    def _record(self, method: str, stat: str, value: float, tags: dict[str, str]) -> None:
        if self.error is not None:
            raise self.error
        if self.before_first_call is not None and not self.calls:
            self.before_first_call()
        self.calls.append((method, stat, value, tags))
        self.threads.append(threading.current_thread())


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(metrics, "_stats", lambda: recorder)
    return recorder


def ended_batch(**fields: Any) -> MessageBatch:
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    counts.update(fields.pop("counts", {}))
    return MessageBatch.model_validate(
        {
            "id": "msgbatch_1",
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": counts,
            "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z",
            "ended_at": "2026-01-01T01:00:00Z",
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": None,
            **fields,
        }
    )


CANCELED_AT = "2026-01-01T00:30:00Z"


def test_the_airflow_stats_in_use_is_the_sdk_one_on_newer_airflow() -> None:
    """From Airflow 3.2 on, ``Stats`` comes from ``airflow.sdk.observability.stats`` (its
    ``airflow.stats`` alias warns that it is deprecated); before, from ``airflow.stats``."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:
        from airflow.stats import Stats
    assert metrics._stats() is Stats


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"counts": {"succeeded": 3}}, "completed"),
        ({"counts": {"succeeded": 1, "errored": 2}}, "completed"),
        ({"counts": {"succeeded": 1, "expired": 2}}, "expired"),
        ({"counts": {"canceled": 3}, "cancel_initiated_at": CANCELED_AT}, "canceled"),
        ({"counts": {"canceled": 1, "expired": 1}, "cancel_initiated_at": CANCELED_AT}, "canceled"),
    ],
)
def test_an_ended_batch_is_counted_by_how_it_ended(
    stats: Recorder, fields: dict[str, Any], status: str
) -> None:
    """``batches.ended`` is tagged ``canceled`` when a cancel was asked, ``expired`` when
    requests ran out of time, else ``completed``; its requests are counted by result type,
    zero counts not sent."""
    batch = ended_batch(**fields)
    metrics.batch_ended("conn", batch)
    assert stats.calls[0] == (
        "incr",
        "anthropic_batches.batches.ended",
        1,
        {"conn_id": "conn", "status": status},
    )
    expected = {
        f"anthropic_batches.requests.{kind}": count
        for kind in metrics.RESULT_TYPES
        if (count := getattr(batch.request_counts, kind))
    }
    assert {name: value for _, name, value, _ in stats.calls[1:]} == expected


def test_created_batches_count_their_requests_per_model(stats: Recorder) -> None:
    """One ``batches.created`` per batch, and ``requests.submitted`` per model (a request
    without a model string is counted as ``unknown``)."""
    requests = [
        {"custom_id": "a", "params": {"model": "m-1"}},
        {"custom_id": "b", "params": {"model": "m-2"}},
        {"custom_id": "c", "params": {"model": "m-1"}},
        {"custom_id": "d", "params": {"model": 7}},
    ]
    metrics.batch_created("conn", requests)
    assert stats.calls == [
        ("incr", "anthropic_batches.batches.created", 1, {"conn_id": "conn"}),
        ("incr", "anthropic_batches.requests.submitted", 2, {"conn_id": "conn", "model": "m-1"}),
        ("incr", "anthropic_batches.requests.submitted", 1, {"conn_id": "conn", "model": "m-2"}),
        (
            "incr",
            "anthropic_batches.requests.submitted",
            1,
            {"conn_id": "conn", "model": "unknown"},
        ),
    ]


COST = {
    "total_usd": None,
    "by_model": {
        "m-1": {"usd": {"input": 0.5, "total": 1.25}},
        "m-2": {"usd": {"total": 0.75}},
        "m-unpriced": {"usd": None},
    },
}


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        (COST, {"m-1": 1.25, "m-2": 0.75}),
        ({"total_usd": 2.0}, {"": 2.0}),
        ({"total_usd": None, "by_model": {"m": {"usd": None}}}, {}),
        ({"total_usd": True}, {}),
        ({"total_usd": -1}, {}),
        ("not a cost", {}),
        (None, {}),
    ],
)
def test_cost_is_read_per_model_and_an_unpriced_model_is_left_out(
    cost: Any, expected: dict[str, float]
) -> None:
    """The manifest's ``cost.by_model.<model>.usd.total`` per model, else ``cost.total_usd``;
    a ``null`` price (a model not in the price table) is left out, never taken as zero."""
    assert metrics.manifest_cost({"cost": cost}) == expected


def test_results_written_sends_tokens_by_kind_and_cost_per_model(stats: Recorder) -> None:
    """Tokens by kind from the manifest's usage (cache writes and reads included), then the
    cost per model with its model tag."""
    usage = {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 0,
    }
    metrics.results_written("conn", {"usage": usage, "cost": COST})
    conn = {"conn_id": "conn"}
    assert stats.calls == [
        ("incr", "anthropic_batches.tokens.input", 10, conn),
        ("incr", "anthropic_batches.tokens.output", 20, conn),
        ("incr", "anthropic_batches.tokens.cache_write", 30, conn),
        ("incr", "anthropic_batches.cost_usd", 1.25, {**conn, "model": "m-1"}),
        ("incr", "anthropic_batches.cost_usd", 0.75, {**conn, "model": "m-2"}),
    ]


def test_api_responses_are_counted_by_class_and_429s_apart(stats: Recorder) -> None:
    """Every response counts in ``api.responses`` by status class; a 429 also counts in
    ``api.rate_limited``, a 529 does not."""
    for status in (200, 429, 529):
        metrics.api_response("conn", status)
    assert [(name, tags.get("status")) for _, name, _, tags in stats.calls] == [
        ("anthropic_batches.api.responses", "2xx"),
        ("anthropic_batches.api.responses", "4xx"),
        ("anthropic_batches.api.rate_limited", None),
        ("anthropic_batches.api.responses", "5xx"),
    ]


def test_tag_values_are_made_safe_and_bounded(stats: Recorder) -> None:
    """A model name comes from the server: characters a backend cannot carry in a tag
    (``,``, ``=``, ``:``, ``|``, spaces) become ``_`` and values are cut to 100 characters."""
    metrics.count("x", 1, conn_id="my conn", model="evil,model=1:2|c " + "m" * 200)
    ((_, _, _, tags),) = stats.calls
    assert tags["conn_id"] == "my_conn"
    assert tags["model"].startswith("evil_model_1_2_c_m")
    assert len(tags["model"]) == metrics.MAX_TAG_CHARS


@settings(max_examples=200, deadline=None)
@given(conn_id=st.text(max_size=300), model=st.text(max_size=300))
def test_any_tag_value_is_sent_in_the_safe_alphabet(conn_id: str, model: str) -> None:
    """Whatever connection id or model name (any Unicode, any length), each tag sent is made
    only of letters, digits, ``_``, ``.`` and ``-``, at most 100 characters, and empty values
    are left out."""
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_stats", lambda: recorder)
        metrics.count("x", 1, conn_id=conn_id, model=model)
    ((_, _, _, tags),) = recorder.calls
    assert set(tags) == {key for key, value in (("conn_id", conn_id), ("model", model)) if value}
    for value in tags.values():
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value)


def test_a_failing_metrics_backend_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error of the metrics backend (a broken client, a full socket buffer) is dropped:
    a metric is never a reason to fail a task or a trigger."""
    monkeypatch.setattr(metrics, "_stats", lambda: Recorder(OSError("no buffer space")))
    metrics.count("x", 1, conn_id="conn")
    metrics.gauge("y", 1, conn_id="conn")
    metrics.api_response("conn", 429)


def test_first_sends_in_an_event_loop_are_made_off_the_loop_in_order(
    stats: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until a process has sent a metric (Airflow then builds its client: a DNS lookup, a
    registry file read), sends made in an event loop go to one thread of their own, in order,
    however long the first takes; once it has nothing queued, sends are made in place."""
    monkeypatch.setattr(metrics, "_first_sends", metrics._FirstSends())
    client_built = threading.Event()
    stats.before_first_call = lambda: client_built.wait(10)  # a slow first send

    async def first_sends() -> threading.Thread:
        metrics.count("first", 1, conn_id="c")
        metrics.gauge("second", 2, conn_id="c")
        metrics.count("third", 3, conn_id="c")
        client_built.set()
        for _ in range(1000):  # bounded: 10 s at most
            if metrics._first_sends.warm:
                break
            await asyncio.sleep(0.01)
        return threading.current_thread()

    loop_thread = asyncio.run(first_sends())
    assert [name for _, name, _, _ in stats.calls] == [
        "anthropic_batches.first",
        "anthropic_batches.second",
        "anthropic_batches.third",
    ]
    assert all(thread is not loop_thread for thread in stats.threads)

    async def later_send() -> threading.Thread:
        metrics.count("later", 1, conn_id="c")
        return threading.current_thread()

    later_loop_thread = asyncio.run(later_send())
    assert stats.calls[-1][1] == "anthropic_batches.later"
    assert stats.threads[-1] is later_loop_thread
