"""Retry policy: which statuses are retried, how long the server asks to wait, the backoff."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches._http.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    is_retryable_status,
    retry_after_seconds,
)


class FixedRandom(random.Random):
    """A ``random.Random`` whose ``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# ---- is_retryable_status ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 501, 502, 503, 504, 529, 599])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert is_retryable_status(status, {}) is True


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 405, 413, 422, 499])
def test_client_errors_are_not_retryable(status: int) -> None:
    assert is_retryable_status(status, {}) is False


@pytest.mark.parametrize("value", ["false", "False", " FALSE "])
@pytest.mark.parametrize("status", [408, 429, 500, 529])
def test_x_should_retry_false_overrides_a_retryable_status(status: int, value: str) -> None:
    assert is_retryable_status(status, {"x-should-retry": value}) is False


@pytest.mark.parametrize("value", ["true", "True", " TRUE"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_x_should_retry_true_overrides_a_permanent_status(status: int, value: str) -> None:
    assert is_retryable_status(status, {"x-should-retry": value}) is True


@pytest.mark.parametrize("value", ["", "maybe", "1", "yes"])
def test_other_x_should_retry_values_fall_back_to_the_status(value: str) -> None:
    assert is_retryable_status(500, {"x-should-retry": value}) is True
    assert is_retryable_status(400, {"x-should-retry": value}) is False


def test_x_should_retry_is_read_case_insensitively_from_httpx_headers() -> None:
    headers = httpx.Headers({"X-Should-Retry": "false"})
    assert is_retryable_status(503, headers) is False


# ---- retry_after_seconds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "300"}, 0.3),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after-ms": "1500.5"}, 1.5005),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "1.25"}, 1.25),
        ({"retry-after": " 3 "}, 3.0),
        # retry-after-ms wins over retry-after
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        # an unusable retry-after-ms falls back to retry-after
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "-100", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "nan", "retry-after": "4"}, 4.0),
        ({"retry-after-ms": "-5"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "-0.5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    result = retry_after_seconds(headers)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert header.endswith("GMT")
    result = retry_after_seconds({"retry-after": header}, now=now.timestamp())
    assert result == pytest.approx(7.0)


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"retry-after": header}, now=now.timestamp()) == 0.0


def test_retry_after_http_date_uses_the_clock_by_default() -> None:
    header = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=100), usegmt=True)
    result = retry_after_seconds({"retry-after": header})
    assert result is not None
    assert 95.0 <= result <= 100.0


def test_retry_after_read_from_httpx_headers_case_insensitively() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After-Ms": "120"})) == pytest.approx(0.12)
    assert retry_after_seconds(httpx.Headers({"Retry-After": "5"})) == 5.0


# ---- Backoff ------------------------------------------------------------------------------------


@pytest.mark.parametrize("jitter_draw", [0.0, 0.37, 0.999])
def test_default_backoff_matches_the_official_sdk(
    jitter_draw: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same delays as the installed ``anthropic`` SDK for the same jitter draw, retry by retry
    (the SDK's own code computes them), and the same default number of retries."""
    anthropic = pytest.importorskip("anthropic")
    from anthropic import _base_client
    from anthropic._models import FinalRequestOptions

    from airflow_provider_batches._connection.extras import DEFAULT_MAX_RETRIES

    max_retries = 12
    client = anthropic.Anthropic(
        api_key="k", base_url="http://127.0.0.1:9", max_retries=max_retries
    )
    options = FinalRequestOptions.construct(method="get", url="/v1/messages/batches/x")
    monkeypatch.setattr(_base_client, "random", lambda: jitter_draw)
    for attempt in range(max_retries):
        sdk = client._calculate_retry_timeout(max_retries - attempt, options, None)
        ours = DEFAULT_BACKOFF.delay(attempt, rng=FixedRandom(jitter_draw))
        assert ours == pytest.approx(sdk), f"retry {attempt}"
    # A server-requested wait is honoured as the SDK honours it (below our 60 s cap).
    headers = httpx.Headers({"retry-after-ms": "700", "retry-after": "30"})
    assert DEFAULT_BACKOFF.delay(0, headers) == client._calculate_retry_timeout(
        max_retries, options, headers
    )
    assert DEFAULT_MAX_RETRIES == anthropic.DEFAULT_MAX_RETRIES


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (20, 8.0)],
)
def test_exponential_base_is_capped(attempt: int, base: float) -> None:
    backoff = Backoff()
    # random() == 0 means no jitter; just under 1 means the largest jitter (factor ~0.75).
    assert backoff.delay(attempt, rng=FixedRandom(0.0)) == pytest.approx(base)
    smallest = backoff.delay(attempt, rng=FixedRandom(0.999999))
    assert smallest == pytest.approx(base * 0.75, rel=1e-5)
    assert smallest > base * 0.75


@settings(derandomize=True, database=None)
@given(attempt=st.integers(min_value=0, max_value=60), seed=st.integers())
def test_jitter_stays_within_three_quarters_and_one(attempt: int, seed: int) -> None:
    backoff = Backoff()
    base = min(0.5 * 2**attempt, 8.0)
    delay = backoff.delay(attempt, rng=random.Random(seed))
    assert base * 0.75 < delay <= base


def test_jitter_varies_without_an_rng() -> None:
    delays = {Backoff().delay(3) for _ in range(50)}
    assert len(delays) > 1
    assert all(3.0 < d <= 4.0 for d in delays)


def test_custom_backoff_parameters() -> None:
    backoff = Backoff(initial_delay=0.1, max_delay=0.3, max_retry_after=2.0)
    assert backoff.delay(0, rng=FixedRandom(0.0)) == pytest.approx(0.1)
    assert backoff.delay(1, rng=FixedRandom(0.0)) == pytest.approx(0.2)
    assert backoff.delay(2, rng=FixedRandom(0.0)) == pytest.approx(0.3)
    assert backoff.delay(9, rng=FixedRandom(0.0)) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "300"}, 0.3),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "59.5"}, 59.5),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after": "61"}, 60.0),
        ({"retry-after": "86400"}, 60.0),
        ({"retry-after-ms": "3600000"}, 60.0),
        ({"retry-after-ms": "inf"}, 60.0),
    ],
)
def test_server_wait_is_honored_and_capped(headers: dict[str, str], expected: float) -> None:
    # The attempt number and jitter play no part when the server says how long to wait.
    for attempt in (0, 3):
        delay = Backoff().delay(attempt, headers, rng=FixedRandom(0.9))
        assert delay == pytest.approx(expected)


def test_custom_max_retry_after_caps_the_server_wait() -> None:
    backoff = Backoff(max_retry_after=2.5)
    assert backoff.delay(0, {"retry-after": "30"}) == 2.5
    assert backoff.delay(0, {"retry-after": "1"}) == 1.0


@pytest.mark.parametrize("headers", [{}, {"retry-after": "soon"}, {"x-other": "1"}])
def test_no_usable_server_wait_falls_back_to_backoff(headers: dict[str, str]) -> None:
    assert Backoff().delay(2, headers, rng=FixedRandom(0.0)) == pytest.approx(2.0)
