"""build_request_shards: the cut is in order, deterministic, and each shard fits the limits
(lowered here); an oversized set without splitting is refused naming the option."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches import request_set
from airflow_provider_batches.exceptions import InvalidRequestSetError
from airflow_provider_batches.request_set import (
    build_request_set,
    build_request_shards,
    canonical_json,
)


def _requests(sizes: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"r-{i}",
            "params": {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "x" * size}],
            },
        }
        for i, size in enumerate(sizes)
    ]


def _body_bytes(requests: list[dict[str, Any]]) -> int:
    return len(b'{"requests":[]}') + len(",".join(canonical_json(r) for r in requests).encode())


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=25),
    max_requests=st.integers(1, 6),
    slack=st.integers(-1, 1),
)
def test_shards_are_the_input_in_order_each_within_the_limits(
    sizes: list[int], max_requests: int, slack: int
) -> None:
    requests = _requests(sizes)
    # A byte limit right at (or one byte around) the size of the first few requests' body.
    limit = _body_bytes(requests[:max_requests]) + slack
    largest = max(_body_bytes([r]) for r in requests)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(request_set, "MAX_REQUESTS", max_requests)
        patch.setattr(request_set, "MAX_BODY_BYTES", limit)
        if largest > limit:
            with pytest.raises(InvalidRequestSetError, match=r"alone takes .* no split"):
                build_request_shards(requests)
            return
        shards = build_request_shards(requests)
        again = build_request_shards(requests)
    assert [s.fingerprint for s in shards] == [s.fingerprint for s in again]
    assert [r for s in shards for r in s.requests] == requests
    for index, shard in enumerate(shards):
        assert shard.count <= max_requests
        assert shard.body_bytes == len(shard.body.read()) <= limit
        assert shard.fingerprint == build_request_set(shard.requests).fingerprint
        if index + 1 < len(shards):  # cut only where the next request would not fit
            grown = [*shard.requests, shards[index + 1].requests[0]]
            assert len(grown) > max_requests or _body_bytes(grown) > limit
    for shard in shards + again:
        shard.close()


def test_a_set_exactly_at_both_limits_is_one_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = _requests([5, 5, 5])
    monkeypatch.setattr(request_set, "MAX_REQUESTS", 3)
    monkeypatch.setattr(request_set, "MAX_BODY_BYTES", _body_bytes(requests))
    (shard,) = build_request_shards(requests)
    assert shard.count == 3


@pytest.mark.parametrize("limit", ["MAX_REQUESTS", "MAX_BODY_BYTES"])
def test_an_oversized_set_is_refused_naming_the_option(
    monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    requests = _requests([5, 5, 5])
    monkeypatch.setattr(
        request_set, limit, 2 if limit == "MAX_REQUESTS" else _body_bytes(requests) - 1
    )
    with pytest.raises(InvalidRequestSetError, match=r"split_oversized=True"):
        build_request_set(requests)


def test_custom_ids_are_unique_across_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = _requests([1, 1, 1, 1])
    requests[3]["custom_id"] = "r-0"  # in the second shard, repeating one of the first
    monkeypatch.setattr(request_set, "MAX_REQUESTS", 2)
    with pytest.raises(InvalidRequestSetError, match="repeats the custom_id of request 0"):
        build_request_shards(requests)
