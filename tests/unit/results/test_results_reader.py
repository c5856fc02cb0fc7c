"""The hook's results readers against the fake API over loopback: every line once, resumed
after a broken stream, the key kept to the connection's host, clear errors otherwise."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from helpers import API_KEY

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results import (
    IncompleteResultsError,
    ResultLineTooLargeError,
    ResultsHostNotAllowedError,
    ResultsNotReadyError,
    ResultsUnavailableError,
)
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.matrix

OUTCOMES = {"succeeded": 300, "errored": 40, "canceled": 30, "expired": 30}


def _served_ids(fake: FakeBatchesServer, batch: dict[str, Any]) -> Counter[str]:
    body = httpx.get(
        batch["results_url"], headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    ).content
    return Counter(json.loads(line)["custom_id"] for line in body.splitlines())


def _collect(hook: MessageBatchHook, batch: Any, **kwargs: Any) -> list[Any]:
    return list(hook.iter_results(batch, **kwargs))


def _acollect(hook: MessageBatchHook, batch: Any, **kwargs: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [result async for result in hook.aiter_results(batch, **kwargs)]

    return asyncio.run(run())


READERS = pytest.mark.parametrize("read", [_collect, _acollect], ids=["sync", "async"])


@pytest.fixture
def hook(fake_conn: str) -> MessageBatchHook:
    return MessageBatchHook(fake_conn)


@READERS
def test_every_line_typed_once(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]]
) -> None:
    batch = fake.create_batch(num_requests=400, ends_after=0.0, outcomes=OUTCOMES)
    results = read(hook, batch["id"])
    assert Counter(r.custom_id for r in results) == _served_ids(fake, batch)
    assert Counter(r.type for r in results) == OUTCOMES
    by_retrieve = read(hook, MessageBatch.model_validate(fake.get_batch(batch["id"])))
    assert [r.custom_id for r in by_retrieve] == [r.custom_id for r in results]


@READERS
@pytest.mark.parametrize("cut", [1, 4_096, 100_003])
def test_resume_after_the_stream_drops_loses_and_repeats_nothing(
    fake: FakeBatchesServer,
    hook: MessageBatchHook,
    read: Callable[..., list[Any]],
    cut: int,
) -> None:
    batch = fake.create_batch(
        num_requests=400, ends_after=0.0, outcomes=OUTCOMES, response_chars=700
    )
    expected = _served_ids(fake, batch)
    # Each break comes after progress, so the per-stall retry budget (max_retries=2) holds.
    fake.inject_fault(Fault("reset", endpoint="results", after_bytes=cut + 50_000))
    fake.inject_fault(Fault("reset", endpoint="results", after_bytes=cut + 120_000))
    fake.inject_fault(Fault("truncated", endpoint="results", after_bytes=cut + 200_000))
    results = read(hook, batch["id"])
    assert Counter(r.custom_id for r in results) == expected
    assert fake.request_count(batch["id"], "GET") == 1 + 1 + 4  # sample, retrieve, 4 reads


def test_resume_gives_up_after_max_retries_without_progress(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    batch = fake.create_batch(num_requests=50, ends_after=0.0)
    fake.inject_fault(Fault("reset", endpoint="results", after_bytes=10, times=-1))
    with pytest.raises(Exception, match="RemoteProtocolError"):
        _collect(hook, batch["id"])
    assert fake.request_count(batch["id"], "GET") == 1 + 3


def test_a_stream_that_keeps_ending_early_is_incomplete(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    batch = fake.create_batch(num_requests=50, ends_after=0.0)
    fake.inject_fault(Fault("truncated", endpoint="results", after_bytes=0, times=-1))
    with pytest.raises(IncompleteResultsError, match="ended after 0 of the batch's 50 lines"):
        _collect(hook, batch["id"])


@READERS
def test_results_on_another_host_are_refused_and_get_no_key(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]]
) -> None:
    with FakeBatchesServer(api_key=API_KEY) as other:
        batch = fake.create_batch(
            num_requests=5, ends_after=0.0, results_base_url=other.base_url, batch_id="msgbatch_1"
        )
        other.create_batch(num_requests=5, ends_after=0.0, batch_id="msgbatch_1")
        with pytest.raises(ResultsHostNotAllowedError, match="not on the connection's host"):
            read(hook, batch["id"])
        assert other.requests == []
        # Same host, other port: another origin too.
        assert other.base_url.rsplit(":", 1)[0] == fake.base_url.rsplit(":", 1)[0]
        allowed = read(hook, batch["id"], allowed_results_hosts=[f"127.0.0.1:{other.port}"])
        assert len(allowed) == 5
        assert [r.authenticated for r in other.requests] == [True]
        assert [r.path for r in other.requests] == ["/v1/messages/batches/msgbatch_1/results"]


def test_results_hosts_extra_allows_a_host(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    with FakeBatchesServer(api_key=API_KEY) as other:
        set_connection("other_ok", fake.base_url, results_hosts=[f"127.0.0.1:{other.port}"])
        set_connection("other_wrong_port", fake.base_url, results_hosts=["127.0.0.1:1"])
        batch = fake.create_batch(
            num_requests=3, ends_after=0.0, results_base_url=other.base_url, batch_id="msgbatch_2"
        )
        other.create_batch(num_requests=3, ends_after=0.0, batch_id="msgbatch_2")
        with pytest.raises(ResultsHostNotAllowedError):
            _collect(MessageBatchHook("other_wrong_port"), batch["id"])
        assert other.requests == []
        assert len(_collect(MessageBatchHook("other_ok"), batch["id"])) == 3


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/r",  # scheme differs
        "http://localhost:{port}/r",  # host name differs
        "http://127.0.0.1:{port}@evil.example/r",  # userinfo trick
    ],
)
def test_origin_must_match_exactly(
    fake: FakeBatchesServer, hook: MessageBatchHook, url: str
) -> None:
    data = fake.create_batch(num_requests=1, ends_after=0.0)
    batch = MessageBatch.model_validate({**data, "results_url": url.format(port=fake.port)})
    with pytest.raises(ResultsHostNotAllowedError):
        _collect(hook, batch)
    assert fake.request_count(method="GET") == 0


def test_the_refusal_never_shows_the_key(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    data = fake.create_batch(num_requests=1, ends_after=0.0)
    url = f"https://results.example/{API_KEY}/r?key={API_KEY}"
    batch = MessageBatch.model_validate({**data, "results_url": url})
    with pytest.raises(ResultsHostNotAllowedError) as info:
        _collect(hook, batch)
    assert "results.example" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(info.value.__reduce__())):
        assert API_KEY not in text


@READERS
def test_not_ended_batch_has_a_clear_error(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]]
) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=None)
    with pytest.raises(ResultsNotReadyError, match=r"has no results yet .*in_progress"):
        read(hook, batch["id"])
    assert fake.request_count(batch["id"], "GET") == 1  # the retrieve only


@READERS
def test_archived_batch_has_a_clear_error(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]]
) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=0.0, archive_after=0.0)
    with pytest.raises(ResultsUnavailableError, match="archived"):
        read(hook, batch["id"])


@READERS
@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_a_4xx_on_results_is_permanent(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]], status: int
) -> None:
    batch = fake.create_batch(num_requests=2, ends_after=0.0)
    fake.inject_fault(Fault("status", status=status, endpoint="results", times=-1))
    with pytest.raises(ResultsUnavailableError, match=rf"refused the results.*HTTP {status}"):
        read(hook, batch["id"])
    assert fake.request_count(batch["id"], "GET") == 2  # one retrieve, one results request


def test_a_5xx_on_results_is_retried(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    batch = fake.create_batch(num_requests=20, ends_after=0.0)
    fake.inject_fault(Fault("status", status=529, endpoint="results", times=2))
    assert len(_collect(hook, batch["id"])) == 20


@READERS
def test_line_size_is_bounded(
    fake: FakeBatchesServer, hook: MessageBatchHook, read: Callable[..., list[Any]]
) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=0.0, response_chars=5000)
    with pytest.raises(ResultLineTooLargeError, match="over the limit of 4000 bytes"):
        read(hook, batch["id"], max_line_bytes=4000)
    assert len(read(hook, batch["id"], max_line_bytes=6000)) == 3


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_max_line_bytes_must_be_a_positive_integer(hook: MessageBatchHook, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        _collect(hook, "msgbatch_x", max_line_bytes=bad)


def test_stopping_early_closes_the_stream(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    batch = fake.create_batch(num_requests=3000, ends_after=0.0, response_chars=1000)
    results: Iterator[Any] = hook.iter_results(batch["id"])
    first = next(results)
    assert first.custom_id.startswith("request-")
    results.close()  # type: ignore[attr-defined]
    assert len(_collect(hook, batch["id"])) == 3000
