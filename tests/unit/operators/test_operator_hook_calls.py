"""MessageBatchHook's create, cancel and list, sync and async, against the fake API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from helpers import API_KEY

from airflow_provider_batches._http.clients import aclose_shared_clients
from airflow_provider_batches.exceptions import (
    BadRequestError,
    BatchCreateOutcomeUnknownError,
    InvalidBatchIdError,
    InvalidResponseError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatchPage
from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.matrix

CONN_ID = "batches_lifecycle"


@pytest.fixture(autouse=True)
async def _close_async_clients() -> AsyncIterator[None]:
    yield
    await aclose_shared_clients()


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    set_connection(CONN_ID, fake.base_url, max_retries=2)
    return MessageBatchHook(CONN_ID)


async def _create(hook: MessageBatchHook, mode: str, requests: list[dict[str, Any]]) -> Any:
    if mode == "sync":
        return hook.create_batch(requests)
    return await hook.acreate_batch(requests)


def _requests(count: int) -> list[dict[str, Any]]:
    params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return [{"custom_id": f"r{i}", "params": params} for i in range(count)]


async def test_acreate_and_acancel(fake: FakeBatchesServer, hook: MessageBatchHook) -> None:
    created = await hook.acreate_batch(_requests(3))
    assert created.total_requests == 3
    assert fake.get_batch(created.id)["request_counts"]["processing"] == 3
    canceled = await hook.acancel_batch(created.id)
    assert canceled.processing_status == "canceling"
    assert canceled.cancel_initiated_at is not None
    assert fake.request_count(created.id, "POST") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_create_is_not_resent_after_a_dropped_connection(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    fake.inject_fault(Fault("drop", method="POST", times=-1))
    with pytest.raises(BatchCreateOutcomeUnknownError):
        await _create(hook, mode, _requests(1))
    assert fake.request_count(method="POST") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_list_pages_newest_first_until_has_more_is_false(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    ids = [fake.create_batch(num_requests=1)["id"] for _ in range(5)]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        if mode == "sync":
            page = hook.list_batches(limit=2, after_id=after)
        else:
            page = await hook.alist_batches(limit=2, after_id=after)
        assert isinstance(page, MessageBatchPage)
        pages += 1
        seen.extend(batch.id for batch in page.data)
        if not page.has_more:
            break
        after = page.last_id
    assert seen == list(reversed(ids))
    assert pages == 3
    queries = [r.query for r in fake.requests if r.method == "GET"]
    assert queries[0] == {"limit": "2"}
    assert queries[1] == {"limit": "2", "after_id": ids[3]}


def test_list_before_id_pages_towards_newer(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    ids = [fake.create_batch(num_requests=1)["id"] for _ in range(3)]
    page = hook.list_batches(limit=5, before_id=ids[0])
    assert [b.id for b in page.data] == [ids[2], ids[1]]
    assert page.first_id == ids[2]
    assert page.last_id == ids[1]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"limit": 0}, ValueError),
        ({"limit": 1001}, ValueError),
        ({"limit": True}, ValueError),
        ({"after_id": "a", "before_id": "b"}, ValueError),
        ({"after_id": "a/b"}, InvalidBatchIdError),
        ({"before_id": "a?b"}, InvalidBatchIdError),
    ],
)
def test_bad_list_arguments_never_reach_the_server(
    fake: FakeBatchesServer, hook: MessageBatchHook, kwargs: dict[str, Any], error: type
) -> None:
    with pytest.raises(error):
        hook.list_batches(**kwargs)
    assert fake.request_count() == 0


def test_list_page_keeps_fields_the_api_adds(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    batch = fake.create_batch(num_requests=1)
    body = {
        "data": [{**batch, "new_field": 1}],
        "has_more": False,
        "first_id": batch["id"],
        "last_id": batch["id"],
        "next_page": "later",
    }
    fake.inject_fault(Fault("body", status=200, body=body, method="GET"))
    page = hook.list_batches()
    assert page.model_extra == {"next_page": "later"}
    assert page.data[0].model_extra == {"new_field": 1}


@pytest.mark.parametrize(
    "body",
    [{"data": "x", "has_more": False}, {"has_more": False}, [1], {"data": [{"id": 1}]}],
)
def test_list_rejects_what_is_not_a_page(
    fake: FakeBatchesServer, hook: MessageBatchHook, body: Any
) -> None:
    fake.inject_fault(Fault("body", status=200, body=body, method="GET", times=-1))
    with pytest.raises(InvalidResponseError) as info:
        hook.list_batches()
    assert "not a list of message batches" in str(info.value)
    assert API_KEY not in str(info.value)


async def test_acancel_of_an_ended_batch_is_an_api_error(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=0)
    with pytest.raises(BadRequestError):
        await hook.acancel_batch(batch["id"])
