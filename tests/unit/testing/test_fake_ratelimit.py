"""The fake's list endpoint at its real bounds and its rate-limit mode, proven with the official
SDK (its typed pages and errors parsing our answers)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import anthropic
import pytest

from airflow_provider_batches.testing import FakeBatchesServer

KEY = "sk-ant-ratelimit-test-key"
TLS = ssl.create_default_context()


def _sdk(fake: FakeBatchesServer, **options: Any) -> anthropic.Anthropic:
    settings: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "timeout": 5.0, **options}
    return anthropic.Anthropic(
        base_url=fake.base_url, http_client=anthropic.DefaultHttpxClient(verify=TLS), **settings
    )


@pytest.fixture
def fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeBatchesServer) -> Iterator[anthropic.Anthropic]:
    with _sdk(fake, _strict_response_validation=True) as sdk:
        yield sdk


def test_list_pages_of_a_thousand_walk_every_batch_newest_first(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    created = fake.create_batches_bulk(2345, 100.0, 200.0)["ids"]
    first = client.messages.batches.list(limit=1000)
    assert len(first.data) == 1000
    assert first.has_more is True
    assert first.first_id == created[-1]
    assert [batch.id for batch in client.messages.batches.list(limit=1000)] == created[::-1]
    # SDK auto-pagination sent after_id=<last_id> of each page: three pages in all.
    lists = [r for r in fake.requests if r.method == "GET" and r.path == "/v1/messages/batches"]
    assert [r.query.get("after_id") for r in lists[1:]] == [
        None,
        created[-1000],
        created[-2000],
    ]
    last = client.messages.batches.list(limit=1000, after_id=created[-2000])
    assert (len(last.data), last.has_more, last.last_id) == (345, False, created[0])


def test_list_default_limit_is_twenty(fake: FakeBatchesServer, client: anthropic.Anthropic) -> None:
    fake.create_batches_bulk(25, 100.0, 200.0)
    page = client.messages.batches.list()
    assert (len(page.data), page.has_more) == (20, True)


@pytest.mark.parametrize("limit", [0, -1, 1001, 5000])
def test_list_limit_outside_1_to_1000_is_invalid_request(
    client: anthropic.Anthropic, limit: int
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.list(limit=limit)
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize("limit", [1, 1000])
def test_list_limit_bounds_are_accepted(client: anthropic.Anthropic, limit: int) -> None:
    assert client.messages.batches.list(limit=limit).data == []


def test_rate_limit_mode_answers_429_with_retry_after_once_the_bucket_is_empty(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    fake.set_rate_limit(60, burst=3)
    for _ in range(3):
        raw = client.messages.batches.with_raw_response.list(limit=1)
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "60"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(raw.headers["anthropic-ratelimit-requests-reset"])
    assert reset > datetime.now(timezone.utc)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.batches.list(limit=1)
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.response.headers["retry-after"] == "1"
    assert fake.rate_limited == 1
    assert fake.stats()["rate_limited"] == 1


def test_sdk_retry_waits_out_the_429(fake: FakeBatchesServer) -> None:
    fake.set_rate_limit(120, burst=1)
    with _sdk(fake, max_retries=2) as sdk:
        sdk.messages.batches.list(limit=1)
        sdk.messages.batches.list(limit=1)  # 429, retry-after 1 s, then served
    assert fake.rate_limited == 1
    assert fake.request_count() == 3


def test_rate_limit_mode_is_off_by_default_and_can_be_turned_off(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    raw = client.messages.batches.with_raw_response.list(limit=1)
    assert "anthropic-ratelimit-requests-limit" not in raw.headers
    fake.set_rate_limit(60, burst=1)
    client.messages.batches.list(limit=1)
    fake.set_rate_limit(None)
    for _ in range(5):
        client.messages.batches.list(limit=1)
    assert fake.rate_limited == 0


@pytest.mark.parametrize(("rpm", "burst"), [(0, None), (-5, None), (10, 0.5), (float("nan"), 1)])
def test_rate_limit_settings_are_checked(
    fake: FakeBatchesServer, rpm: float, burst: float | None
) -> None:
    with pytest.raises(ValueError, match=r"per_minute|burst"):
        fake.set_rate_limit(rpm, burst)


def test_rate_limit_mode_can_leave_out_the_limit_headers(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    """Whether the batch endpoints send the headers is not documented: the fake can enforce a
    one-second window (burst 1 at 60 a minute) without them; a 429 keeps retry-after."""
    fake.set_rate_limit(60, burst=1, limit_headers=False)
    raw = client.messages.batches.with_raw_response.list(limit=1)
    assert not [name for name in raw.headers if name.startswith("anthropic-ratelimit")]
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.batches.list(limit=1)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1"
    assert not [name for name in headers if name.startswith("anthropic-ratelimit")]


def test_a_fractional_rate_is_stated_as_it_is(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    fake.set_rate_limit(0.5, burst=1)
    raw = client.messages.batches.with_raw_response.list(limit=1)
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "0.5"
