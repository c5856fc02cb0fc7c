"""The official ``anthropic`` SDK against the embedded fake: its typed models parsing our JSON
is the proof that the fake speaks the real wire format."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anthropic
import pytest
from anthropic.types.messages import (
    DeletedMessageBatch,
    MessageBatch,
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)

from airflow_provider_batches.testing import FakeBatchesServer, Fault

KEY = "sk-ant-sdk-test-key"
# Loading the CA bundle costs ~0.1 s per client; every client here shares one context.
TLS = ssl.create_default_context()


def _sdk(fake: FakeBatchesServer, **options: Any) -> anthropic.Anthropic:
    """A sync SDK client pointed at ``fake`` (no retries unless asked)."""
    settings: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "timeout": 5.0, **options}
    return anthropic.Anthropic(
        base_url=fake.base_url, http_client=anthropic.DefaultHttpxClient(verify=TLS), **settings
    )


def _requests(*custom_ids: str, model: str = "claude-test-model") -> list[Any]:
    return [
        {
            "custom_id": custom_id,
            "params": {
                "model": model,
                "max_tokens": 32,
                "messages": [{"role": "user", "content": f"Say hi to {custom_id}"}],
            },
        }
        for custom_id in custom_ids
    ]


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.03)


@pytest.fixture
def fake() -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=KEY, processing_seconds=0.3) as server:
        yield server


@pytest.fixture
def client(fake: FakeBatchesServer) -> Iterator[anthropic.Anthropic]:
    with _sdk(fake) as sdk:
        yield sdk


@pytest.fixture
def strict_client(fake: FakeBatchesServer) -> Iterator[anthropic.Anthropic]:
    """Validates every response against the SDK's schema instead of coercing it."""
    with _sdk(fake, _strict_response_validation=True) as sdk:
        yield sdk


def test_full_lifecycle(fake: FakeBatchesServer, strict_client: anthropic.Anthropic) -> None:
    client = strict_client
    before = datetime.now(timezone.utc)
    batch = client.messages.batches.create(requests=_requests("alpha", "beta", "gamma"))
    assert isinstance(batch, MessageBatch)
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3
    assert batch.request_counts.succeeded == 0
    assert batch.results_url is None
    assert batch.ended_at is None
    assert batch.cancel_initiated_at is None
    assert batch.archived_at is None
    assert batch.created_at.tzinfo is not None
    assert abs(batch.created_at - before) < timedelta(seconds=5)
    assert batch.expires_at - batch.created_at == timedelta(hours=24)

    retrieved = client.messages.batches.retrieve(batch.id)
    assert retrieved.id == batch.id
    assert retrieved.created_at == batch.created_at

    listed = [b.id for b in client.messages.batches.list()]
    assert listed == [batch.id]

    _wait_until(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended")
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.succeeded == 3
    assert ended.request_counts.processing == 0
    assert ended.ended_at is not None
    assert ended.ended_at >= ended.created_at
    assert ended.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"

    results = list(client.messages.batches.results(batch.id))
    assert len(results) == 3
    by_id = {r.custom_id: r for r in results}
    assert set(by_id) == {"alpha", "beta", "gamma"}
    for response in results:
        assert isinstance(response, MessageBatchIndividualResponse)
        assert isinstance(response.result, MessageBatchSucceededResult)
        message = response.result.message
        assert message.id.startswith("msg_")
        assert message.role == "assistant"
        assert message.model == "claude-test-model"
        assert message.stop_reason == "end_turn"
        assert message.content[0].type == "text"
        assert response.custom_id in message.content[0].text
        assert message.usage.input_tokens > 0
        assert message.usage.output_tokens > 0

    deleted = client.messages.batches.delete(batch.id)
    assert isinstance(deleted, DeletedMessageBatch)
    assert deleted.id == batch.id
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.batches.retrieve(batch.id)
    assert info.value.status_code == 404
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_")
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "not_found_error"

    # The SDK authenticates with a Bearer header and its own anthropic-version date.
    recorded = fake.requests[0]
    assert recorded.headers.get("authorization") == "<redacted>"
    assert recorded.authenticated is True
    assert "anthropic-version" in recorded.headers


def test_mixed_outcomes_parse_as_typed_results(
    fake: FakeBatchesServer, strict_client: anthropic.Anthropic
) -> None:
    outcomes = {"succeeded": 2, "errored": 1, "canceled": 1, "expired": 1}
    created = fake.create_batch(num_requests=5, ends_after=0.0, outcomes=outcomes)
    batch = strict_client.messages.batches.retrieve(created["id"])
    assert batch.processing_status == "ended"
    assert batch.request_counts.model_dump() == {"processing": 0, **outcomes}
    kinds: dict[str, int] = {}
    for response in strict_client.messages.batches.results(created["id"]):
        result = response.result
        kinds[result.type] = kinds.get(result.type, 0) + 1
        if isinstance(result, MessageBatchErroredResult):
            assert result.error.type == "error"
            assert result.error.error.type == "invalid_request_error"
            assert result.error.error.message
        else:
            assert isinstance(
                result,
                (
                    MessageBatchSucceededResult,
                    MessageBatchCanceledResult,
                    MessageBatchExpiredResult,
                ),
            )
    assert kinds == outcomes


def test_cancel_flow(fake: FakeBatchesServer, strict_client: anthropic.Anthropic) -> None:
    created = fake.create_batch(num_requests=4, ends_after=30.0, cancel_delay=0.2)
    canceling = strict_client.messages.batches.cancel(created["id"])
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 4
    _wait_until(
        lambda: strict_client.messages.batches.retrieve(created["id"]).processing_status == "ended"
    )
    ended = strict_client.messages.batches.retrieve(created["id"])
    assert ended.request_counts.canceled == 4
    assert ended.cancel_initiated_at == canceling.cancel_initiated_at
    results = list(strict_client.messages.batches.results(created["id"]))
    assert all(isinstance(r.result, MessageBatchCanceledResult) for r in results)
    assert {r.custom_id for r in results} == {f"request-{i}" for i in range(4)}
    with pytest.raises(anthropic.BadRequestError):
        strict_client.messages.batches.cancel(created["id"])


def test_list_auto_pagination(fake: FakeBatchesServer, strict_client: anthropic.Anthropic) -> None:
    ids = [fake.create_batch(num_requests=1)["id"] for _ in range(5)]
    newest_first = list(reversed(ids))
    page = strict_client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True
    assert page.first_id == newest_first[0]
    assert page.last_id == newest_first[1]
    assert [b.id for b in strict_client.messages.batches.list(limit=2)] == newest_first
    backwards = strict_client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in backwards.data] == newest_first[2:4]
    # Walking backwards, the SDK asks for the page before each page's first_id.
    assert [b.id for b in backwards] == newest_first[2:4] + newest_first[0:2]
    with pytest.raises(anthropic.BadRequestError):
        strict_client.messages.batches.list(limit=5000)


def test_results_unavailable_states(fake: FakeBatchesServer, client: anthropic.Anthropic) -> None:
    running = fake.create_batch(num_requests=1, ends_after=None)
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(running["id"])
    archived = fake.create_batch(num_requests=1, ends_after=0.0, archive_after=0.0)
    batch = client.messages.batches.retrieve(archived["id"])
    assert batch.archived_at is not None
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.results(archived["id"])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(running["id"])


def test_unknown_processing_status_passes_non_strict_parsing(
    fake: FakeBatchesServer, client: anthropic.Anthropic, strict_client: anthropic.Anthropic
) -> None:
    created = fake.create_batch(num_requests=1)
    fake.set_status_override(created["id"], "some_new_status")
    assert client.messages.batches.retrieve(created["id"]).processing_status == (
        "some_new_status"  # type: ignore[comparison-overlap]
    )
    with pytest.raises(anthropic.APIResponseValidationError):
        strict_client.messages.batches.retrieve(created["id"])


def test_beta_client_path(fake: FakeBatchesServer) -> None:
    with _sdk(fake, _strict_response_validation=True) as client:
        batches = client.beta.messages.batches
        batch = batches.create(
            requests=_requests("one", "two"), betas=["message-batches-2024-09-24"]
        )
        assert batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 2
        assert batches.retrieve(batch.id).id == batch.id
        assert [b.id for b in batches.list()] == [batch.id]
        create_request = fake.requests[0]
        assert create_request.headers["anthropic-beta"] == "message-batches-2024-09-24"
        _wait_until(lambda: batches.retrieve(batch.id).processing_status == "ended")
        results = {r.custom_id: r.result for r in batches.results(batch.id)}
        assert set(results) == {"one", "two"}
        assert all(result.type == "succeeded" for result in results.values())
        assert batches.delete(batch.id).type == "message_batch_deleted"

        other = fake.create_batch(num_requests=1, ends_after=None, cancel_delay=0.0)
        assert batches.cancel(other["id"]).processing_status in ("canceling", "ended")
        assert batches.retrieve(other["id"]).request_counts.canceled == 1


def test_async_client(fake: FakeBatchesServer) -> None:
    async def scenario() -> MessageBatch:
        async with anthropic.AsyncAnthropic(
            api_key=KEY,
            base_url=fake.base_url,
            max_retries=0,
            timeout=5.0,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=TLS),
        ) as client:
            batch = await client.messages.batches.create(requests=_requests("async"))
            fake.end_batch(batch.id)
            ended = await client.messages.batches.retrieve(batch.id)
            results = [r async for r in await client.messages.batches.results(batch.id)]
            assert [r.custom_id for r in results] == ["async"]
            return ended

    ended = asyncio.run(scenario())
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 1


def test_wrong_key_is_authentication_error(fake: FakeBatchesServer) -> None:
    # Built exactly as an application would, default HTTP client included.
    with (
        anthropic.Anthropic(
            api_key="sk-ant-wrong", base_url=fake.base_url, max_retries=0
        ) as client,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        client.messages.batches.list()
    assert info.value.status_code == 401


# ---- faults as the SDK sees them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        # Older SDKs (the 3.0 dev lock, where this module is only collected) lack the class.
        (529, getattr(anthropic, "OverloadedError", anthropic.InternalServerError)),
        (404, anthropic.NotFoundError),
    ],
)
def test_status_faults_map_to_sdk_errors(
    fake: FakeBatchesServer,
    client: anthropic.Anthropic,
    status: int,
    error: type[anthropic.APIStatusError],
) -> None:
    fake.inject_fault(Fault("status", status=status))
    with pytest.raises(error) as info:
        client.messages.batches.list()
    assert info.value.status_code == status
    assert info.value.request_id is not None


def test_sdk_retries_honour_retry_after(fake: FakeBatchesServer) -> None:
    created = fake.create_batch(num_requests=1)
    fake.inject_fault(
        Fault(
            "status", status=529, times=2, headers={"retry-after-ms": "20"}, batch_id=created["id"]
        )
    )
    with _sdk(fake, max_retries=2) as client:
        waits: list[float] = []
        compute = client._calculate_retry_timeout

        def recorded(*args: Any, **kwargs: Any) -> float:
            waits.append(compute(*args, **kwargs))
            return waits[-1]

        client._calculate_retry_timeout = recorded  # type: ignore[method-assign]
        assert client.messages.batches.retrieve(created["id"]).id == created["id"]
        # The SDK waited what the fake asked (20 ms), not its own backoff (0.5 s and up).
        assert waits == [0.02, 0.02]
    assert fake.request_count(batch_id=created["id"]) == 3
    retry_counts = [r.headers["x-stainless-retry-count"] for r in fake.requests]
    assert retry_counts == ["0", "1", "2"]

    fake.inject_fault(Fault("status", status=500, headers={"x-should-retry": "false"}))
    with (
        _sdk(fake, max_retries=2) as client,
        pytest.raises(anthropic.InternalServerError),
    ):
        client.messages.batches.retrieve(created["id"])
    assert fake.request_count(batch_id=created["id"]) == 4


def test_transport_faults_are_connection_errors(
    fake: FakeBatchesServer, client: anthropic.Anthropic
) -> None:
    created = fake.create_batch(num_requests=1)
    for kind in ("drop", "reset"):
        fake.inject_fault(Fault(kind))
        with pytest.raises(anthropic.APIConnectionError):
            client.messages.batches.retrieve(created["id"])
    fake.inject_fault(Fault("delay", delay=0.5))
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.batches.retrieve(created["id"], timeout=0.15)
    assert client.messages.batches.retrieve(created["id"]).id == created["id"]


def test_mangled_bodies_need_strict_validation(
    fake: FakeBatchesServer, client: anthropic.Anthropic, strict_client: anthropic.Anthropic
) -> None:
    """What the SDK does with 200s that are not a MessageBatch (a provider must check)."""
    created = fake.create_batch(num_requests=1)
    fake.inject_fault(Fault("html"))
    lenient: Any = client.messages.batches.retrieve(created["id"])
    assert lenient == "<html><body>Bad gateway</body></html>"  # a str, not a MessageBatch
    fake.inject_fault(Fault("body", body={"id": "msgbatch_x"}))
    partial = client.messages.batches.retrieve(created["id"])
    assert partial.id == "msgbatch_x"
    assert partial.processing_status is None  # required field silently missing
    fake.inject_fault(Fault("truncated"))
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):  # raw JSONDecodeError
        client.messages.batches.retrieve(created["id"])

    fake.inject_fault(Fault("html"))
    with pytest.raises(anthropic.APIResponseValidationError):
        strict_client.messages.batches.retrieve(created["id"])
    fake.inject_fault(Fault("body", body={"id": "msgbatch_x"}))
    with pytest.raises(anthropic.APIResponseValidationError):
        strict_client.messages.batches.retrieve(created["id"])
