"""The embedded fake Batches API over real sockets: routes, lifecycle, faults, CLI."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_batches.testing import (
    FakeAdminClient,
    FakeAdminError,
    FakeApiError,
    FakeBatchesServer,
    Fault,
    RecordedRequest,
)

KEY = "sk-ant-test-key-0123456789"
VERSION = "2023-06-01"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
REPO = Path(__file__).resolve().parents[3]
# Loading the CA bundle costs ~0.1 s per client; every client here shares one context.
TLS = ssl.create_default_context()
BATCH_FIELDS = {
    "id",
    "type",
    "processing_status",
    "request_counts",
    "created_at",
    "expires_at",
    "ended_at",
    "cancel_initiated_at",
    "archived_at",
    "results_url",
}
COUNT_FIELDS = {"processing", "succeeded", "errored", "canceled", "expired"}


def _request(custom_id: str, model: str = "claude-test") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _assert_batch_shape(batch: dict[str, Any]) -> None:
    assert set(batch) == BATCH_FIELDS
    assert batch["type"] == "message_batch"
    assert set(batch["request_counts"]) == COUNT_FIELDS
    for name in ("created_at", "expires_at", "ended_at", "cancel_initiated_at", "archived_at"):
        assert batch[name] is None or RFC3339.match(batch[name]), (name, batch[name])


def _assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_")
    return body


@pytest.fixture
def fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=KEY, processing_seconds=0.3) as server:
        yield server


@pytest.fixture
def client(fake: FakeBatchesServer) -> Iterator[httpx.Client]:
    headers = {"x-api-key": KEY, "anthropic-version": VERSION}
    with httpx.Client(
        base_url=fake.base_url, headers=headers, timeout=5.0, trust_env=False, verify=TLS
    ) as http:
        yield http


# ---- routes ---------------------------------------------------------------------------------


def test_base_url_and_repr(fake: FakeBatchesServer) -> None:
    assert re.match(r"^http://127\.0\.0\.1:\d+$", fake.base_url)
    assert fake.port > 0
    assert fake.base_url.endswith(f":{fake.port}")
    assert fake.api_key == KEY
    # The fake's own key is a secret too: its repr (as pytest shows a fixture) never holds it.
    assert type(fake).__name__ in repr(fake)
    assert KEY not in repr(fake)
    assert KEY not in str(fake)


def test_create_retrieve_and_results_through_the_api(
    fake: FakeBatchesServer, client: httpx.Client
) -> None:
    body = {"requests": [_request("first", "model-a"), _request("second", "model-b")]}
    created = client.post("/v1/messages/batches", json=body)
    assert created.status_code == 200
    assert created.headers["content-type"] == "application/json"
    assert created.headers["request-id"].startswith("req_")
    batch = created.json()
    _assert_batch_shape(batch)
    assert re.match(r"^msgbatch_[0-9A-Za-z]{24}$", batch["id"])
    assert batch["processing_status"] == "in_progress"
    assert batch["request_counts"] == {
        "processing": 2,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch["results_url"] is None
    assert batch["ended_at"] is None

    early = client.get(f"/v1/messages/batches/{batch['id']}/results")
    _assert_error(early, 400, "invalid_request_error")

    _wait_until(
        lambda: (
            client.get(f"/v1/messages/batches/{batch['id']}").json()["processing_status"] == "ended"
        )
    )
    ended = client.get(f"/v1/messages/batches/{batch['id']}").json()
    _assert_batch_shape(ended)
    assert ended["request_counts"]["succeeded"] == 2
    assert ended["request_counts"]["processing"] == 0
    assert ended["results_url"] == f"{fake.base_url}/v1/messages/batches/{batch['id']}/results"

    results = client.get(ended["results_url"])
    assert results.status_code == 200
    assert results.headers["content-type"] == "application/x-jsonl"
    lines = [json.loads(line) for line in results.text.splitlines()]
    by_id = {line["custom_id"]: line["result"] for line in lines}
    assert set(by_id) == {"first", "second"}
    message = by_id["second"]["message"]
    assert by_id["second"]["type"] == "succeeded"
    assert message["model"] == "model-b"
    assert message["id"].startswith("msg_")
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"][0]["type"] == "text"
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] > 0
    assert message["usage"]["output_tokens"] > 0
    # Results are stable across reads.
    assert client.get(ended["results_url"]).text == results.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "requests: Field required"),
        ({"requests": "nope"}, "requests: Input should be a valid list"),
        ({"requests": []}, "at least 1 item"),
        ({"requests": [{"params": {}}]}, "requests.0.custom_id: Field required"),
        ({"requests": [{"custom_id": 5, "params": {}}]}, "valid string"),
        ({"requests": [_request("x" * 65)]}, "at most 64 characters"),
        ({"requests": [_request("a"), _request("a")]}, "requests.1.custom_id"),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params: Field required"),
        (
            {"requests": [{"custom_id": "a", "params": {"max_tokens": 1, "messages": [{}]}}]},
            "requests.0.params.model: Field required",
        ),
        (
            {"requests": [{"custom_id": "a", "params": {"model": "m", "messages": [{}]}}]},
            "requests.0.params.max_tokens: Field required",
        ),
        (
            {"requests": [{"custom_id": "a", "params": {"model": "m", "max_tokens": 1}}]},
            "requests.0.params.messages: Field required",
        ),
        (
            {
                "requests": [
                    {"custom_id": "a", "params": {"model": "m", "max_tokens": 0, "messages": [{}]}}
                ]
            },
            "greater than or equal to 1",
        ),
        ([1, 2], "JSON object"),
    ],
)
def test_create_validation(client: httpx.Client, body: Any, fragment: str) -> None:
    response = client.post("/v1/messages/batches", json=body)
    error = _assert_error(response, 400, "invalid_request_error")
    assert fragment in error["error"]["message"]


def test_create_rejects_invalid_json(client: httpx.Client) -> None:
    response = client.post(
        "/v1/messages/batches", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (
        "not valid JSON"
        in _assert_error(response, 400, "invalid_request_error")["error"]["message"]
    )


def test_retrieve_unknown_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/messages/batches/msgbatch_doesnotexist")
    assert (
        "msgbatch_doesnotexist"
        in _assert_error(response, 404, "not_found_error")["error"]["message"]
    )


def test_unknown_routes_and_wrong_methods(client: httpx.Client) -> None:
    _assert_error(client.get("/v1/nothing/here"), 404, "not_found_error")
    _assert_error(client.get("/"), 404, "not_found_error")
    _assert_error(client.get("/v1/messages/batches/x/unknown"), 404, "not_found_error")
    _assert_error(client.get("/v1/messages/batches/"), 404, "not_found_error")
    wrong = client.put("/v1/messages/batches")
    _assert_error(wrong, 405, "invalid_request_error")
    assert wrong.headers["allow"] == "GET, POST"
    _assert_error(client.post("/v1/messages/batches/x"), 405, "invalid_request_error")
    _assert_error(client.get("/v1/messages/batches/x/cancel"), 405, "invalid_request_error")
    _assert_error(client.delete("/v1/messages/batches/x/results"), 405, "invalid_request_error")


# ---- auth and headers -----------------------------------------------------------------------


def test_auth_accepts_x_api_key_and_bearer(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1)
    url = f"{fake.base_url}/v1/messages/batches/{batch['id']}"
    with httpx.Client(trust_env=False, verify=TLS) as http:
        ok_key = http.get(url, headers={"x-api-key": KEY, "anthropic-version": VERSION})
        ok_bearer = http.get(
            url, headers={"authorization": f"Bearer {KEY}", "anthropic-version": VERSION}
        )
        wrong = http.get(url, headers={"x-api-key": "sk-wrong", "anthropic-version": VERSION})
        wrong_bearer = http.get(
            url, headers={"authorization": "Bearer sk-wrong", "anthropic-version": VERSION}
        )
        basic = http.get(
            url, headers={"authorization": f"Basic {KEY}", "anthropic-version": VERSION}
        )
        missing = http.get(url, headers={"anthropic-version": VERSION})
        unknown_unauthenticated = http.get(f"{fake.base_url}/v1/messages/batches/nope")
    assert ok_key.status_code == 200
    assert ok_bearer.status_code == 200
    assert ok_bearer.json()["id"] == batch["id"]
    for response in (wrong, wrong_bearer, basic, missing, unknown_unauthenticated):
        body = _assert_error(response, 401, "authentication_error")
        assert body["error"]["message"] == "invalid x-api-key"
        assert KEY not in response.text


def test_version_header(client: httpx.Client, fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1)
    path = f"/v1/messages/batches/{batch['id']}"
    missing = client.get(path, headers={"anthropic-version": ""})
    assert (
        "anthropic-version"
        in _assert_error(missing, 400, "invalid_request_error")["error"]["message"]
    )
    with httpx.Client(base_url=fake.base_url, trust_env=False, verify=TLS) as bare:
        absent = bare.get(path, headers={"x-api-key": KEY})
    assert (
        "anthropic-version"
        in _assert_error(absent, 400, "invalid_request_error")["error"]["message"]
    )
    bad = client.get(path, headers={"anthropic-version": "v1"})
    _assert_error(bad, 400, "invalid_request_error")
    assert client.get(path, headers={"anthropic-version": "2099-12-31"}).status_code == 200


def test_beta_header_and_query_are_accepted(client: httpx.Client, fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1)
    beta = {"anthropic-beta": "message-batches-2024-09-24,some-future-beta-2031-01-01"}
    response = client.get(f"/v1/messages/batches/{batch['id']}?beta=true", headers=beta)
    assert response.status_code == 200
    listed = client.get("/v1/messages/batches?beta=true", headers=beta)
    assert listed.json()["data"][0]["id"] == batch["id"]
    created = client.post(
        "/v1/messages/batches?beta=true", json={"requests": [_request("b")]}, headers=beta
    )
    assert created.status_code == 200


# ---- lifecycle ------------------------------------------------------------------------------


def test_lifecycle_counts_move_only_at_end(fake: FakeBatchesServer, client: httpx.Client) -> None:
    outcomes = {"succeeded": 3, "errored": 1, "canceled": 1, "expired": 1}
    created = fake.create_batch(num_requests=6, ends_after=0.4, outcomes=outcomes)
    _assert_batch_shape(created)
    assert created == fake.get_batch(created["id"])
    seen_in_progress = 0
    while True:
        batch = client.get(f"/v1/messages/batches/{created['id']}").json()
        counts = batch["request_counts"]
        assert sum(counts.values()) == 6
        if batch["processing_status"] == "ended":
            break
        seen_in_progress += 1
        assert batch["processing_status"] == "in_progress"
        assert counts == {
            "processing": 6,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        assert batch["ended_at"] is None
        time.sleep(0.05)
    assert seen_in_progress >= 2
    assert counts == {"processing": 0, **outcomes}
    assert batch["ended_at"] is not None
    assert batch["ended_at"] > batch["created_at"]
    assert batch["results_url"].endswith(f"/v1/messages/batches/{created['id']}/results")
    lines = [json.loads(x) for x in client.get(batch["results_url"]).text.splitlines()]
    kinds = sorted(line["result"]["type"] for line in lines)
    assert kinds == ["canceled", "errored", "expired", "succeeded", "succeeded", "succeeded"]
    errored = next(line["result"] for line in lines if line["result"]["type"] == "errored")
    assert errored["error"]["type"] == "error"
    assert errored["error"]["error"]["type"] == "invalid_request_error"
    assert {line["custom_id"] for line in lines} == {f"request-{i}" for i in range(6)}


def test_create_batch_argument_checks(fake: FakeBatchesServer) -> None:
    with pytest.raises(ValueError, match="sum"):
        fake.create_batch(num_requests=3, outcomes={"succeeded": 1})
    with pytest.raises(ValueError, match="unknown outcome"):
        fake.create_batch(num_requests=1, outcomes={"bogus": 1})
    with pytest.raises(ValueError, match="num_requests"):
        fake.create_batch(num_requests=0)
    with pytest.raises(ValueError, match="ends_after"):
        fake.create_batch(ends_after=-1)
    with pytest.raises(ValueError, match="not allowed"):
        fake.create_batch(batch_id="a/b")
    fake.create_batch(batch_id="msgbatch_explicit")
    with pytest.raises(ValueError, match="already exists"):
        fake.create_batch(batch_id="msgbatch_explicit")
    with pytest.raises(FakeApiError) as info:
        fake.get_batch("msgbatch_missing")
    assert info.value.status == 404


def test_never_ending_batch_and_forced_end(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=None, outcomes={"errored": 2})
    time.sleep(0.1)
    assert fake.get_batch(batch["id"])["processing_status"] == "in_progress"
    ended = fake.end_batch(batch["id"])
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["errored"] == 2
    assert fake.get_batch(batch["id"]) == ended


def test_expiry_before_end(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=4, ends_after=30.0, expires_after=0.2)
    never = fake.create_batch(num_requests=1, ends_after=None, expires_after=0.2)
    assert batch["processing_status"] == "in_progress"
    time.sleep(0.3)
    for created, total in ((batch, 4), (never, 1)):
        ended = client.get(f"/v1/messages/batches/{created['id']}").json()
        assert ended["processing_status"] == "ended"
        assert ended["request_counts"] == {
            "processing": 0,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": total,
        }
        assert ended["ended_at"] == ended["expires_at"]
    lines = client.get(f"/v1/messages/batches/{batch['id']}/results").text.splitlines()
    assert [json.loads(x)["result"] for x in lines] == [{"type": "expired"}] * 4


def test_default_expiry_is_24_hours(fake: FakeBatchesServer) -> None:
    from datetime import datetime

    batch = fake.create_batch()
    created = datetime.fromisoformat(batch["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(batch["expires_at"].replace("Z", "+00:00"))
    assert (expires - created).total_seconds() == pytest.approx(86400, abs=0.01)


def test_cancel_then_canceling_then_ended(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=30.0, cancel_delay=0.25)
    response = client.post(f"/v1/messages/batches/{batch['id']}/cancel")
    assert response.status_code == 200
    canceling = response.json()
    _assert_batch_shape(canceling)
    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] is not None
    assert canceling["request_counts"]["processing"] == 3
    assert canceling["results_url"] is None
    again = client.post(f"/v1/messages/batches/{batch['id']}/cancel").json()
    assert again["cancel_initiated_at"] == canceling["cancel_initiated_at"]
    time.sleep(0.35)
    ended = client.get(f"/v1/messages/batches/{batch['id']}").json()
    assert ended["processing_status"] == "ended"
    assert ended["cancel_initiated_at"] == canceling["cancel_initiated_at"]
    assert ended["request_counts"] == {
        "processing": 0,
        "succeeded": 0,
        "errored": 0,
        "canceled": 3,
        "expired": 0,
    }
    lines = client.get(ended["results_url"]).text.splitlines()
    assert {json.loads(x)["result"]["type"] for x in lines} == {"canceled"}
    late = client.post(f"/v1/messages/batches/{batch['id']}/cancel")
    _assert_error(late, 400, "invalid_request_error")
    _assert_error(client.post("/v1/messages/batches/nope/cancel"), 404, "not_found_error")


def test_stuck_canceling(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=0.1, cancel_delay=None)
    assert fake.cancel_batch(batch["id"])["processing_status"] == "canceling"
    time.sleep(0.25)  # past ends_after: canceling wins, the batch stays stuck
    stuck = client.get(f"/v1/messages/batches/{batch['id']}").json()
    assert stuck["processing_status"] == "canceling"
    assert stuck["request_counts"]["processing"] == 2
    ended = fake.end_batch(batch["id"])
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["canceled"] == 2


def test_archived_results_are_404(fake: FakeBatchesServer, client: httpx.Client) -> None:
    # The fake's clock is stepped by hand, so "before" and "after" archiving are exact.
    now = [time.time()]
    fake._state._clock = lambda: now[0]
    batch = fake.create_batch(num_requests=1, ends_after=0.0, archive_after=60.0)
    first = client.get(f"/v1/messages/batches/{batch['id']}").json()
    assert first["archived_at"] is None
    assert client.get(first["results_url"]).status_code == 200
    now[0] += 61.0
    archived = client.get(f"/v1/messages/batches/{batch['id']}").json()
    assert archived["archived_at"] is not None
    assert archived["processing_status"] == "ended"
    _assert_error(client.get(archived["results_url"]), 404, "not_found_error")


def test_status_override(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=1)
    fake.set_status_override(batch["id"], "paused_for_maintenance")
    served = client.get(f"/v1/messages/batches/{batch['id']}").json()
    assert served["processing_status"] == "paused_for_maintenance"
    assert client.get("/v1/messages/batches").json()["data"][0]["processing_status"] == (
        "paused_for_maintenance"
    )
    fake.set_status_override(batch["id"], None)
    assert client.get(f"/v1/messages/batches/{batch['id']}").json()["processing_status"] == (
        "in_progress"
    )


# ---- list, delete, ids ----------------------------------------------------------------------


def test_list_pagination(fake: FakeBatchesServer, client: httpx.Client) -> None:
    empty = client.get("/v1/messages/batches").json()
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    ids = [fake.create_batch(num_requests=1)["id"] for _ in range(5)]
    newest_first = list(reversed(ids))

    page = client.get("/v1/messages/batches").json()
    assert [b["id"] for b in page["data"]] == newest_first
    assert page["has_more"] is False
    for batch in page["data"]:
        _assert_batch_shape(batch)

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = client.get("/v1/messages/batches", params=params).json()
        seen.extend(b["id"] for b in page["data"])
        assert page["first_id"] == page["data"][0]["id"]
        assert page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        params = {"limit": 2, "after_id": page["last_id"]}
    assert seen == newest_first

    before = client.get(
        "/v1/messages/batches", params={"limit": 2, "before_id": newest_first[4]}
    ).json()
    assert [b["id"] for b in before["data"]] == newest_first[2:4]
    assert before["has_more"] is True
    before = client.get(
        "/v1/messages/batches", params={"limit": 2, "before_id": newest_first[2]}
    ).json()
    assert [b["id"] for b in before["data"]] == newest_first[0:2]
    assert before["has_more"] is False

    for bad in ("0", "1001", "abc", "-1"):
        response = client.get("/v1/messages/batches", params={"limit": bad})
        assert "limit" in _assert_error(response, 400, "invalid_request_error")["error"]["message"]
    assert len(client.get("/v1/messages/batches?limit=1000").json()["data"]) == 5
    both = client.get("/v1/messages/batches", params={"before_id": ids[0], "after_id": ids[1]})
    _assert_error(both, 400, "invalid_request_error")


def test_delete_rules(fake: FakeBatchesServer, client: httpx.Client) -> None:
    running = fake.create_batch(num_requests=1, ends_after=None)
    response = client.delete(f"/v1/messages/batches/{running['id']}")
    _assert_error(response, 400, "invalid_request_error")
    fake.cancel_batch(running["id"])
    _assert_error(
        client.delete(f"/v1/messages/batches/{running['id']}"), 400, "invalid_request_error"
    )
    fake.end_batch(running["id"])
    deleted = client.delete(f"/v1/messages/batches/{running['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": running["id"], "type": "message_batch_deleted"}
    _assert_error(client.get(f"/v1/messages/batches/{running['id']}"), 404, "not_found_error")
    _assert_error(client.delete(f"/v1/messages/batches/{running['id']}"), 404, "not_found_error")
    assert client.get("/v1/messages/batches").json()["data"] == []


def test_percent_encoded_ids_are_decoded_once(
    fake: FakeBatchesServer, client: httpx.Client
) -> None:
    plain = fake.create_batch(num_requests=1, batch_id="msgbatch_plain")
    odd = fake.create_batch(num_requests=1, batch_id="weird%id:+&=")
    assert client.get("/v1/messages/batches/msgbatch%5Fplain").json()["id"] == plain["id"]
    response = client.get("/v1/messages/batches/weird%25id%3A%2B%26%3D")
    assert response.json()["id"] == odd["id"]
    # Decoding happens once only: %2525 is "%25", which names no batch.
    _assert_error(
        client.get("/v1/messages/batches/weird%2525id%3A%2B%26%3D"), 404, "not_found_error"
    )
    # An encoded slash stays inside the segment.
    _assert_error(client.get("/v1/messages/batches/a%2Fb"), 404, "not_found_error")
    assert fake.request_count(batch_id="weird%id:+&=") == 1
    assert fake.request_count(batch_id="msgbatch_plain") == 1
    fake.end_batch(odd["id"])
    ended = client.get("/v1/messages/batches/weird%25id%3A%2B%26%3D").json()
    assert ended["results_url"].endswith("/v1/messages/batches/weird%25id%3A%2B%26%3D/results")
    assert client.get(ended["results_url"]).status_code == 200


# ---- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (408, "timeout_error"),
        (409, "api_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_status_fault_default_error_types(
    fake: FakeBatchesServer, client: httpx.Client, status: int, error_type: str
) -> None:
    fake.inject_fault(Fault("status", status=status))
    _assert_error(client.get("/v1/messages/batches"), status, error_type)
    assert client.get("/v1/messages/batches").status_code == 200


def test_status_fault_with_headers_type_and_message(
    fake: FakeBatchesServer, client: httpx.Client
) -> None:
    headers = {"retry-after": "1.5", "retry-after-ms": "1500", "x-should-retry": "true"}
    fake.inject_fault(
        Fault("status", status=429, error_type="custom_error", message="slow down", headers=headers)
    )
    response = client.get("/v1/messages/batches")
    body = _assert_error(response, 429, "custom_error")
    assert body["error"]["message"] == "slow down"
    for name, value in headers.items():
        assert response.headers[name] == value


def test_status_fault_has_no_side_effects(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("status", status=500, method="POST"))
    failed = client.post("/v1/messages/batches", json={"requests": [_request("a")]})
    assert failed.status_code == 500
    assert client.get("/v1/messages/batches").json()["data"] == []


def test_delay_fault_triggers_read_timeout(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1)
    fake.inject_fault(Fault("delay", delay=0.6))
    headers = {"x-api-key": KEY, "anthropic-version": VERSION}
    url = f"{fake.base_url}/v1/messages/batches/{batch['id']}"
    with (
        httpx.Client(headers=headers, timeout=0.2, trust_env=False, verify=TLS) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.get(url)
    with httpx.Client(headers=headers, timeout=10.0, trust_env=False, verify=TLS) as http:
        assert http.get(url).json()["id"] == batch["id"]  # the fault was used up
    fake.inject_fault(Fault("delay", delay=0.2))
    with httpx.Client(headers=headers, timeout=30.0, trust_env=False, verify=TLS) as http:
        started = time.monotonic()
        assert http.get(url).status_code == 200
        assert time.monotonic() - started >= 0.2


def test_drop_fault(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("drop"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/messages/batches")
    assert client.get("/v1/messages/batches").status_code == 200
    assert fake.connections_opened == 2


def test_reset_fault_cuts_the_body(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=1)
    fake.inject_fault(Fault("reset", headers={"x-extra": "1"}))
    with client.stream("GET", f"/v1/messages/batches/{batch['id']}") as response:
        assert response.status_code == 200
        assert response.headers["x-extra"] == "1"
        declared = int(response.headers["content-length"])
        assert declared > 0
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            response.read()
    assert client.get(f"/v1/messages/batches/{batch['id']}").status_code == 200


def test_reset_fault_on_post_has_no_side_effects(
    fake: FakeBatchesServer, client: httpx.Client
) -> None:
    fake.inject_fault(Fault("reset"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/v1/messages/batches", json={"requests": [_request("a")]})
    assert client.get("/v1/messages/batches").json()["data"] == []


def test_truncated_fault(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=1)
    fake.inject_fault(Fault("truncated"))
    response = client.get(f"/v1/messages/batches/{batch['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    full = json.dumps(fake.get_batch(batch["id"]), separators=(",", ":"))
    assert full.startswith(response.text)
    assert 0 < len(response.text) < len(full)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_html_fault(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("html"))
    response = client.get("/v1/messages/batches")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<html><body>Bad gateway</body></html>"


def test_body_fault(fake: FakeBatchesServer, client: httpx.Client) -> None:
    junk: Any = {"id": "msgbatch_x", "type": "message_batch"}
    for _ in range(50):
        junk = {"nested": [junk]}
    fake.inject_fault(Fault("body", body={"id": "msgbatch_x", "type": "message_batch"}))
    fake.inject_fault(Fault("body", body=junk))
    fake.inject_fault(Fault("body", body=None))
    first = client.get("/v1/messages/batches/msgbatch_x")
    assert first.status_code == 200
    assert first.json() == {"id": "msgbatch_x", "type": "message_batch"}
    assert client.get("/v1/messages/batches/msgbatch_x").json() == junk
    assert client.get("/v1/messages/batches/msgbatch_x").text == "null"


def test_fault_times_and_clear(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("status", status=503, times=2))
    statuses = [client.get("/v1/messages/batches").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    fake.inject_fault(Fault("status", status=500, times=-1))
    assert [client.get("/v1/messages/batches").status_code for _ in range(4)] == [500] * 4
    fake.clear_faults()
    assert client.get("/v1/messages/batches").status_code == 200


def test_faults_queue_in_order(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("status", status=500))
    fake.inject_fault(Fault("status", status=529))
    fake.inject_fault(Fault("html"))
    got = [client.get("/v1/messages/batches") for _ in range(4)]
    assert [r.status_code for r in got] == [500, 529, 200, 200]
    assert got[2].headers["content-type"].startswith("text/html")
    assert got[3].headers["content-type"] == "application/json"


def test_fault_matching_by_batch_and_method(fake: FakeBatchesServer, client: httpx.Client) -> None:
    first = fake.create_batch(num_requests=1, batch_id="msgbatch_first")
    second = fake.create_batch(num_requests=1, batch_id="msgbatch_second")
    fake.inject_fault(Fault("status", status=500, batch_id=first["id"], times=-1))
    fake.inject_fault(Fault("status", status=502, method="post"))
    assert client.get(f"/v1/messages/batches/{second['id']}").status_code == 200
    assert client.get("/v1/messages/batches").status_code == 200
    assert client.get(f"/v1/messages/batches/{first['id']}").status_code == 500
    assert client.post(f"/v1/messages/batches/{first['id']}/cancel").status_code == 500
    assert client.post(f"/v1/messages/batches/{second['id']}/cancel").status_code == 502
    assert client.post(f"/v1/messages/batches/{second['id']}/cancel").status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault("drop", times=0)
    with pytest.raises(ValueError, match="delay"):
        Fault("delay", delay=-1)
    fault = Fault("status", status=429, headers={"retry-after": "2"}, method="get")
    assert fault.method == "GET"
    assert Fault.from_dict(fault.to_dict()) == fault
    with pytest.raises(ValueError, match="unknown fault fields"):
        Fault.from_dict({"kind": "drop", "bogus": 1})


def test_faults_never_touch_admin_routes(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.inject_fault(Fault("drop", times=-1))
    admin = FakeAdminClient(fake.base_url)
    assert admin.stats()["requests"] == 0
    batch = admin.create_batch(num_requests=1)
    assert admin.get_batch(batch["id"])["id"] == batch["id"]
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/messages/batches")
    assert fake.request_count() == 1


def test_latency_is_per_request_and_concurrent(fake: FakeBatchesServer) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": VERSION}
    url = f"{fake.base_url}/v1/messages/batches"
    # Per request: each answer comes no sooner than the latency (a lower bound cannot flake).
    fake.set_latency(0.3)
    with httpx.Client(headers=headers, trust_env=False, verify=TLS, timeout=10.0) as http:
        started = time.monotonic()
        assert http.get(url).status_code == 200
        assert time.monotonic() - started >= 0.3
    # Concurrent: with a latency far longer than the test, all 8 requests reach the fake
    # while none has been answered, so it holds them all at once instead of one by one.
    fake.set_latency(600.0)
    answered: list[int] = []

    def one() -> None:
        with (
            httpx.Client(headers=headers, trust_env=False, verify=TLS, timeout=None) as http,
            contextlib.suppress(httpx.HTTPError),  # the fake closes under it at the end
        ):
            answered.append(http.get(url).status_code)

    before = fake.request_count()
    threads = [threading.Thread(target=one, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: fake.request_count() == before + 8, timeout=30)
    assert answered == []
    # Admin routes are not delayed: answered within the admin client's 10 s timeout while
    # every API request waits 600 s.
    assert FakeAdminClient(fake.base_url, timeout=10.0).stats()["requests"] == before + 8
    assert answered == []
    fake.close()
    for thread in threads:
        thread.join(timeout=30)
    assert all(status != 200 for status in answered)


# ---- observation ----------------------------------------------------------------------------


def test_request_log_redacts_credentials(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1, batch_id="msgbatch_logged")
    with httpx.Client(base_url=fake.base_url, trust_env=False, verify=TLS) as http:
        http.get(
            "/v1/messages/batches/msgbatch%5Flogged?beta=true&x=1",
            headers={"x-api-key": KEY, "anthropic-version": VERSION, "anthropic-beta": "b1"},
        )
        http.post(
            f"/v1/messages/batches/{batch['id']}/cancel",
            headers={"authorization": f"Bearer {KEY}", "anthropic-version": VERSION},
        )
        http.get("/v1/messages/batches", headers={"x-api-key": "sk-bad"})
    FakeAdminClient(fake.base_url).stats()  # admin calls are not recorded
    log = fake.requests
    assert len(log) == 3
    first, second, third = log
    assert isinstance(first, RecordedRequest)
    assert first.method == "GET"
    assert first.path == "/v1/messages/batches/msgbatch_logged"
    assert first.raw_target == "/v1/messages/batches/msgbatch%5Flogged?beta=true&x=1"
    assert first.query == {"beta": "true", "x": "1"}
    assert first.headers["x-api-key"] == "<redacted>"
    assert first.headers["anthropic-beta"] == "b1"
    assert first.authenticated is True
    assert first.batch_id == "msgbatch_logged"
    assert first.client[0] == "127.0.0.1"
    assert first.client[1] > 0
    assert abs(first.received_at - time.time()) < 5
    assert second.headers["authorization"] == "<redacted>"
    assert second.authenticated is True
    assert third.authenticated is False
    assert third.headers["x-api-key"] == "<redacted>"
    for entry in log:
        assert KEY not in repr(entry)
        assert "sk-bad" not in repr(entry)
    assert fake.request_count() == 3
    assert fake.request_count(batch_id="msgbatch_logged") == 2
    assert fake.request_count(batch_id="msgbatch_logged", method="post") == 1
    assert fake.request_count(method="GET") == 2
    assert fake.request_count(batch_id="msgbatch_other") == 0


def test_keep_alive_counts_one_connection(fake: FakeBatchesServer, client: httpx.Client) -> None:
    batch = fake.create_batch(num_requests=1)
    for _ in range(5):
        assert client.get(f"/v1/messages/batches/{batch['id']}").status_code == 200
    assert fake.connections_opened == 1
    assert fake.open_connections == 1
    for _ in range(3):  # the first reuses the open connection, then each needs a new one
        response = client.get("/v1/messages/batches", headers={"connection": "close"})
        assert response.status_code == 200
    assert fake.connections_opened == 3
    assert fake.request_count() == 8


def test_pipelined_requests_on_raw_socket(fake: FakeBatchesServer) -> None:
    host, port = fake.base_url.removeprefix("http://").split(":")
    request = (
        f"GET /v1/messages/batches HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\n"
        f"anthropic-version: {VERSION}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request * 2 + b"GARBAGE\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1") < 3:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert b"HTTP/1.1 400" in data
    assert fake.connections_opened == 1


def test_oversized_declared_body_is_rejected(fake: FakeBatchesServer) -> None:
    host, port = fake.base_url.removeprefix("http://").split(":")
    request = (
        b"POST /v1/messages/batches HTTP/1.1\r\nhost: x\r\ncontent-length: 999999999999\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")


def test_reset_clears_everything(fake: FakeBatchesServer, client: httpx.Client) -> None:
    fake.create_batch(num_requests=1)
    fake.inject_fault(Fault("status", status=500, times=-1))
    client.get("/v1/messages/batches")
    fake.reset()
    assert fake.requests == []
    assert fake.request_count() == 0
    assert fake.connections_opened == 0
    response = client.get("/v1/messages/batches")
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_start_close_without_with_closes_connections() -> None:
    server = FakeBatchesServer(api_key=KEY)
    server.start()
    try:
        headers = {"x-api-key": KEY, "anthropic-version": VERSION}
        with httpx.Client(
            base_url=server.base_url, headers=headers, trust_env=False, verify=TLS
        ) as http:
            assert http.get("/v1/messages/batches").status_code == 200
            assert server.open_connections == 1
            server.close()
            with pytest.raises(httpx.TransportError):
                http.get("/v1/messages/batches")
    finally:
        server.close()
    server.close()  # idempotent


def test_refuses_non_loopback_and_port_conflict() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        FakeBatchesServer(host="0.0.0.0").start()
    with FakeBatchesServer() as first, pytest.raises(OSError, match="address already in use"):
        FakeBatchesServer(port=first.port).start()


def test_in_process_admin_client_and_bulk(fake: FakeBatchesServer, client: httpx.Client) -> None:
    admin = FakeAdminClient(fake.base_url + "/")
    admin.wait_ready()
    created = admin.create_batch(num_requests=3, ends_after=None, outcomes={"succeeded": 3})
    assert created == fake.get_batch(created["id"])
    assert admin.end_batch(created["id"])["request_counts"]["succeeded"] == 3
    other = admin.create_batch(num_requests=1, ends_after=None, custom_ids=["only"])
    assert admin.cancel_batch(other["id"])["processing_status"] == "canceling"
    admin.set_status_override(other["id"], "weird")
    assert fake.get_batch(other["id"])["processing_status"] == "weird"

    bulk = admin.create_batches_bulk(count=5, ends_after_min=1.0, ends_after_max=3.0)
    assert len(bulk["ids"]) == 5
    ends = [bulk["ends_at"][batch_id] for batch_id in bulk["ids"]]
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    assert gaps == pytest.approx([0.5] * 4, abs=0.05)
    assert ends[0] - time.time() == pytest.approx(1.0, abs=0.5)

    admin.inject_fault(Fault("status", status=529, headers={"retry-after": "0"}))
    response = client.get("/v1/messages/batches")
    _assert_error(response, 529, "overloaded_error")
    admin.inject_fault(Fault("status", status=500, times=-1))
    admin.clear_faults()
    assert client.get("/v1/messages/batches").status_code == 200

    admin.set_latency(0.1)
    assert fake.stats()["latency"] == 0.1
    admin.set_latency(0.0)

    stats = admin.stats()
    assert stats["requests"] == 2
    assert stats["requests_by_method"] == {"GET": 2}
    assert stats["connections_opened"] >= 1
    assert admin.request_count(method="GET") == 2
    assert [r.path for r in admin.requests()] == ["/v1/messages/batches"] * 2

    with pytest.raises(FakeAdminError) as info:
        admin.get_batch("msgbatch_missing")
    assert info.value.status == 404
    with pytest.raises(FakeAdminError) as info:
        admin.create_batch(num_requests=2, outcomes={"succeeded": 1})
    assert info.value.status == 400
    admin.reset()
    assert fake.request_count() == 0
    assert admin.stats()["batches"] == 0


# ---- command line ---------------------------------------------------------------------------


def _start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_batches.testing", "serve", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def test_cli_serves_until_sigterm() -> None:
    process = _start_cli(
        "--port", "0", "--latency", "0", "--processing-seconds", "0.2",
        env={"FAKE_ANTHROPIC_API_KEY": KEY},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"FAKE_API_READY (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base_url = match.group(1)
        admin = FakeAdminClient(base_url)
        admin.inject_fault(Fault("status", status=503))
        headers = {"x-api-key": KEY, "anthropic-version": VERSION}
        with httpx.Client(base_url=base_url, headers=headers, trust_env=False, verify=TLS) as http:
            assert http.get("/v1/messages/batches").status_code == 503
            created = http.post("/v1/messages/batches", json={"requests": [_request("c")]})
            assert created.status_code == 200
            batch_id = created.json()["id"]
            _wait_until(
                lambda: (
                    http.get(f"/v1/messages/batches/{batch_id}").json()["processing_status"]
                    == "ended"
                )
            )
        stats = admin.stats()
        assert stats["connections_opened"] >= 2
        assert stats["requests_by_method"]["POST"] == 1
        assert admin.request_count(batch_id=batch_id) >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert KEY not in out + err


def test_cli_refuses_non_loopback_host() -> None:
    process = _start_cli("--host", "0.0.0.0", "--port", "0")
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "non-loopback" in err
    assert "FAKE_API_READY" not in out


# ---- the answer hook: what a model answers to batches created through the API --------------


def test_the_answer_hook_answers_each_request_created_through_the_api(
    fake: FakeBatchesServer, client: httpx.Client
) -> None:
    seen: list[tuple[str, str]] = []

    def answer(custom_id: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        seen.append((custom_id, params["model"]))
        if custom_id == "plain":
            return None  # the fake's own text
        return [{"type": "tool_use", "id": "toolu_1", "name": "pick", "input": {"id": custom_id}}]

    fake.set_answer_hook(answer)
    body = {"requests": [_request("tool-a", "m-1"), _request("plain", "m-2")]}
    created = client.post("/v1/messages/batches", json=body).json()
    added = fake.create_batch(num_requests=1, ends_after=0.0)  # keeps the fake's own answer
    assert seen == [("tool-a", "m-1"), ("plain", "m-2")]
    ended = fake.end_batch(created["id"])
    lines = {
        line["custom_id"]: line["result"]["message"]
        for line in map(json.loads, client.get(ended["results_url"]).text.splitlines())
    }
    assert lines["tool-a"]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "pick", "input": {"id": "tool-a"}}
    ]
    assert lines["tool-a"]["model"] == "m-1"
    assert lines["plain"]["content"] == [{"type": "text", "text": "Fake response for plain."}]
    added_lines = client.get(fake.end_batch(added["id"])["results_url"]).text.splitlines()
    assert json.loads(added_lines[0])["result"]["message"]["content"][0]["type"] == "text"

    fake.reset()  # removes the hook
    again = client.post("/v1/messages/batches", json={"requests": [_request("tool-b")]}).json()
    assert seen == [("tool-a", "m-1"), ("plain", "m-2")]
    (line,) = client.get(fake.end_batch(again["id"])["results_url"]).text.splitlines()
    assert json.loads(line)["result"]["message"]["content"][0]["type"] == "text"


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (lambda _id, _params: "not blocks", 500, "the answer hook returned unusable blocks"),
        (lambda _id, _params: [["nested"]], 500, "the answer hook returned unusable blocks"),
        (
            lambda _id, _params: (_ for _ in ()).throw(FakeApiError(529, "Overloaded")),
            529,
            "Overloaded",
        ),
    ],
    ids=["a-string", "not-objects", "fake-api-error"],
)
def test_an_answer_hook_that_fails_answers_the_create_with_an_error(
    fake: FakeBatchesServer, client: httpx.Client, answer: Any, status: int, message: str
) -> None:
    fake.set_answer_hook(answer)
    response = client.post("/v1/messages/batches", json={"requests": [_request("a")]})
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert fake.stats()["batches"] == 0  # nothing was created
