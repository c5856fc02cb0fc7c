"""The fake API's results endpoint follows the wire contract: JSON Lines, shuffled, every
result type, realistic usage, generated lazily, and cut on demand."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from airflow_provider_batches.testing import FakeBatchesServer, Fault

KEY = "sk-ant-fake-results-key"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
def fake() -> Any:
    with FakeBatchesServer(api_key=KEY) as server:
        yield server


def _lines(url: str) -> tuple[httpx.Response, list[dict[str, Any]]]:
    response = httpx.get(url, headers=HEADERS)
    return response, [json.loads(line) for line in response.content.splitlines()]


def test_results_are_jsonl_shuffled_and_stable(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=50, ends_after=0.0)
    response, lines = _lines(batch["results_url"])
    assert response.headers["content-type"] == "application/x-jsonl"
    assert response.content.endswith(b"\n")
    ids = [line["custom_id"] for line in lines]
    assert sorted(ids) == sorted(f"request-{i}" for i in range(50))
    assert ids != [f"request-{i}" for i in range(50)]
    assert httpx.get(batch["results_url"], headers=HEADERS).content == response.content


def test_every_result_type_has_its_wire_shape(fake: FakeBatchesServer) -> None:
    outcomes = {"succeeded": 6, "errored": 4, "canceled": 2, "expired": 3}
    batch = fake.create_batch(
        num_requests=15,
        ends_after=0.0,
        outcomes=outcomes,
        error_types=["invalid_request_error", "overloaded_error"],
    )
    _, lines = _lines(batch["results_url"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_type.setdefault(line["result"]["type"], []).append(line["result"])
    assert {kind: len(results) for kind, results in by_type.items()} == outcomes
    for result in by_type["succeeded"]:
        usage = result["message"]["usage"]
        assert usage["service_tier"] == "batch"
        assert usage["input_tokens"] > 0
        assert usage["output_tokens"] > 0
        assert usage["cache_creation_input_tokens"] == (
            usage["cache_creation"]["ephemeral_5m_input_tokens"]
            + usage["cache_creation"]["ephemeral_1h_input_tokens"]
        )
        assert usage["cache_read_input_tokens"] >= 0
    assert any(r["message"]["usage"]["cache_read_input_tokens"] > 0 for r in by_type["succeeded"])
    for result in by_type["errored"]:
        envelope = result["error"]
        assert envelope["type"] == "error"
        assert envelope["request_id"].startswith("req_")
        assert envelope["error"]["message"]
    assert {r["error"]["error"]["type"] for r in by_type["errored"]} == {
        "invalid_request_error",
        "overloaded_error",
    }
    assert by_type["canceled"] == [{"type": "canceled"}] * 2
    assert by_type["expired"] == [{"type": "expired"}] * 3


def test_response_chars_pads_the_message_text(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=0.0, response_chars=5000)
    _, lines = _lines(batch["results_url"])
    for line in lines:
        text = line["result"]["message"]["content"][0]["text"]
        assert len(text) == 5000
        assert text.startswith(f"Fake response for {line['custom_id']}.")


def test_results_are_streamed_in_chunks(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=2000, ends_after=0.0, response_chars=1000)
    with httpx.stream("GET", batch["results_url"], headers=HEADERS) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        sizes = [len(chunk) for chunk in response.iter_raw()]
    assert len(sizes) > 10
    assert sum(sizes) > 2000 * 1000


@pytest.mark.parametrize(("kind", "error"), [("reset", True), ("truncated", False)])
def test_stream_cut_after_k_bytes(fake: FakeBatchesServer, kind: str, error: bool) -> None:
    batch = fake.create_batch(num_requests=500, ends_after=0.0, response_chars=500)
    fake.inject_fault(Fault(kind, endpoint="results", after_bytes=12_345))  # type: ignore[arg-type]
    # A retrieve of the same batch does not consume a results-only fault.
    assert httpx.get(batch["results_url"].removesuffix("/results"), headers=HEADERS).is_success
    received = bytearray()
    try:
        with httpx.stream("GET", batch["results_url"], headers=HEADERS) as response:
            for chunk in response.iter_raw():
                received += chunk
    except httpx.RemoteProtocolError:
        assert error
    else:
        assert not error
    assert len(received) == 12_345
    full = httpx.get(batch["results_url"], headers=HEADERS).content
    assert full.startswith(bytes(received))


def test_results_base_url_moves_the_results_url(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(
        num_requests=1, ends_after=0.0, results_base_url="http://127.0.0.1:9/"
    )
    assert batch["results_url"] == (f"http://127.0.0.1:9/v1/messages/batches/{batch['id']}/results")
