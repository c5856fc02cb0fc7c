"""MessageBatchHook.batch_listing: the one pager over GET /v1/messages/batches, sync and async,
and every guard it keeps against a server whose pages cannot be trusted."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

import airflow_provider_batches.hooks.batch as hook_module
from airflow_provider_batches._http.clients import aclose_shared_clients, close_shared_sync_clients
from airflow_provider_batches._http.send import ApiRequest
from airflow_provider_batches.exceptions import InternalServerError, InvalidResponseError
from airflow_provider_batches.hooks.batch import (
    BatchListing,
    ListedPage,
    MessageBatchHook,
    parse_raw_list_page,
)
from airflow_provider_batches.testing import FakeBatchesServer, Fault

CONN_ID = "listing"
LIST_PATH = "/v1/messages/batches"
SECRET = "sk-ant-listing-secret"
REQUEST = ApiRequest("GET", "http://127.0.0.1/v1/messages/batches?limit=1000")
#: More pages than any listing here may read: a listing whose guard is broken still ends.
PAGE_GUARD = 10


@pytest.fixture(autouse=True)
async def _fresh_clients() -> AsyncIterator[None]:
    close_shared_sync_clients()
    yield
    await aclose_shared_clients()
    close_shared_sync_clients()


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    set_connection(CONN_ID, fake.base_url, max_retries=0, timeout=5)
    return MessageBatchHook(CONN_ID)


def read(listing: BatchListing, mode: str) -> list[ListedPage]:
    """At most PAGE_GUARD pages of ``listing``, with ``for`` or ``async for``."""
    if mode == "sync":
        return list(itertools.islice(listing, PAGE_GUARD))

    async def collect() -> list[ListedPage]:
        pages: list[ListedPage] = []
        async for page in listing:
            pages.append(page)
            if len(pages) == PAGE_GUARD:
                break
        return pages

    return asyncio.run(collect())


def after_ids(fake: FakeBatchesServer) -> list[str | None]:
    return [r.query.get("after_id") for r in fake.requests if r.path == LIST_PATH]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    close_shared_sync_clients()


def test_pages_follow_after_id_to_the_last_page(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    ids = [fake.create_batch(num_requests=1)["id"] for _ in range(5)]
    listing = hook.batch_listing(page_size=2)
    pages = read(listing, mode)
    newest_first = ids[::-1]
    assert [[b.id for b in p.batches] for p in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:],
    ]
    assert after_ids(fake) == [None, newest_first[1], newest_first[3]]
    assert (listing.end, listing.complete, listing.pages_read) == ("last page", True, 3)


def test_the_page_cap_ends_a_listing_whose_cursors_never_end(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    """A server that always has more, each page with a new cursor: max_pages requests."""
    counter = itertools.count()
    fake.set_list_hook(
        lambda query, page: {"data": [], "has_more": True, "last_id": f"msgbatch_{next(counter)}"}
    )
    listing = hook.batch_listing(max_pages=3)
    assert len(read(listing, mode)) == 3
    assert (listing.end, listing.complete) == ("page cap", False)
    assert after_ids(fake) == [None, "msgbatch_0", "msgbatch_1"]


def test_a_cursor_followed_before_ends_the_listing(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    """The same page forever (has_more true, the same last_id): two requests, then it ends."""
    batch = fake.create_batch(num_requests=1)
    fake.set_list_hook(lambda query, page: {"data": [batch], "has_more": True, "last_id": "b_1"})
    listing = hook.batch_listing()
    pages = read(listing, mode)
    assert [[b.id for b in p.batches] for p in pages] == [[batch["id"]], [batch["id"]]]
    assert (listing.end, listing.complete) == ("repeated cursor", False)
    assert after_ids(fake) == [None, "b_1"]


@pytest.mark.parametrize(
    "cursor", ["msgbatch_other1/x", "", " ", "..", "a?b", "a#b", "a\\b", "a\nb", "x" * 1025]
)
def test_a_cursor_that_is_not_a_batch_id_ends_the_listing_without_an_error(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str, cursor: str
) -> None:
    fake.set_list_hook(lambda query, page: {"data": [], "has_more": True, "last_id": cursor})
    listing = hook.batch_listing()
    assert len(read(listing, mode)) == 1
    assert (listing.end, listing.complete) == ("invalid cursor", False)
    assert after_ids(fake) == [None]


def test_a_page_with_more_but_no_cursor_ends_the_listing_incomplete(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    fake.set_list_hook(lambda query, page: {"data": [], "has_more": True, "last_id": None})
    listing = hook.batch_listing()
    assert len(read(listing, mode)) == 1
    assert (listing.end, listing.complete) == ("no cursor", False)


def test_entries_that_are_not_batches_are_skipped_and_counted(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    good = fake.create_batch(num_requests=1)
    junk: list[Any] = [{"id": 5}, "text", {**good, "created_at": "yesterday"}, None]
    body = {"data": [junk[0], good, *junk[1:]], "has_more": False, "last_id": None}
    fake.set_list_hook(lambda query, page: body)
    listing = hook.batch_listing()
    (page,) = read(listing, mode)
    assert [b.id for b in page.batches] == [good["id"]]
    assert page.skipped == listing.skipped == 4


def test_a_failed_page_raises_its_error_and_ends_the_listing(
    fake: FakeBatchesServer, hook: MessageBatchHook, mode: str
) -> None:
    fake.inject_fault(Fault("status", status=500, endpoint="list"))
    listing = hook.batch_listing()
    with pytest.raises(InternalServerError):
        read(listing, mode)
    assert listing.end == "failed"
    assert read(listing, mode) == []  # nothing more is requested
    assert fake.request_count() == 1


def test_bad_arguments_fail_before_any_request(
    fake: FakeBatchesServer, hook: MessageBatchHook
) -> None:
    for kwargs in ({"page_size": 0}, {"page_size": 1001}, {"max_pages": 0}, {"max_pages": True}):
        (name,) = kwargs
        with pytest.raises(ValueError, match=f"^{name} must be an integer"):
            hook.batch_listing(**kwargs)
    assert fake.request_count() == 0


async def test_a_big_page_is_validated_in_slices_with_the_loop_running_between(
    fake: FakeBatchesServer, hook: MessageBatchHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 entries: other coroutines run between every two slices of VALIDATE_CHUNK."""
    batch = fake.create_batch(num_requests=1)
    fake.set_list_hook(lambda query, page: {"data": [batch] * 1000, "has_more": False})
    ticks = 0
    seen_at: list[int] = []
    real = hook_module._batches_in

    def recording(items: list[Any]) -> Any:
        seen_at.append(ticks)
        return real(items)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(hook_module, "_batches_in", recording)
    running = asyncio.ensure_future(ticker())
    try:
        page = await anext(hook.batch_listing())
    finally:
        running.cancel()
    assert len(page.batches) == 1000
    assert len(seen_at) == 1000 // hook_module.VALIDATE_CHUNK
    assert all(later > earlier for earlier, later in itertools.pairwise(seen_at))


# ---- the page's shape -----------------------------------------------------------------------


def _response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def test_a_page_that_echoes_the_key_is_rejected_whole() -> None:
    body = b'{"data": [{"id": "' + SECRET.encode() + b'"}], "has_more": false}'
    with pytest.raises(InvalidResponseError) as caught:
        parse_raw_list_page(_response(body), REQUEST, SECRET, 1000)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", "not a list of message batches"),
        (b'{"data": {}}', "not a list of message batches"),
        (b'{"has_more": true}', "not a list of message batches"),
        (b'{"data": [], "has_more": "yes"}', "has_more or last_id is malformed"),
        (b'{"data": []}', "has_more or last_id is malformed"),
        (b'{"data": [], "has_more": true, "last_id": 7}', "has_more or last_id is malformed"),
        (b'{"data": [1, 2, 3], "has_more": false}', "3 batches on a page of at most 2"),
    ],
)
def test_a_body_that_is_not_a_list_page_is_an_invalid_response(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidResponseError, match=problem):
        parse_raw_list_page(_response(body), REQUEST, SECRET, 2)
