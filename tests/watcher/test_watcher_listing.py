"""The watcher's page parsing and its pages-or-retrieves arithmetic."""

from __future__ import annotations

import math

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_batches.exceptions import InvalidResponseError
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.transport import ApiRequest
from airflow_provider_batches.watch_pages import pages_worth, parse_page, valid_batches

SECRET = "sk-ant-watch-pages-secret"
REQUEST = ApiRequest("GET", "http://127.0.0.1/v1/messages/batches?limit=1000")


def _response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


def test_a_page_that_echoes_the_key_is_rejected_whole() -> None:
    body = b'{"data": [{"id": "' + SECRET.encode() + b'"}], "has_more": false}'
    with pytest.raises(InvalidResponseError) as caught:
        parse_page(_response(body), REQUEST, SECRET)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("body", [b"[]", b'{"data": {}}', b'{"has_more": true}'])
def test_a_body_that_is_not_a_page_is_an_invalid_response(body: bytes) -> None:
    with pytest.raises(InvalidResponseError, match="not a list of message batches"):
        parse_page(_response(body), REQUEST, SECRET)


def test_invalid_entries_are_left_out_and_the_rest_kept(fake: FakeBatchesServer) -> None:
    good = fake.create_batch(num_requests=1)
    batches = valid_batches([{"id": 5}, good, "text", {**good, "created_at": "yesterday"}])
    assert [b.id for b in batches] == [good["id"]]


def test_cursor_fields_are_read_defensively() -> None:
    page = parse_page(_response(b'{"data": [], "has_more": "yes", "last_id": 7}'), REQUEST, "")
    assert (page.has_more, page.last_id) == (False, None)


@pytest.mark.parametrize(
    ("needed", "pages"),
    [
        ([], 0),
        ([1], 0),  # one batch: a retrieve is as cheap as a page, and exact
        ([1, 1], 1),
        ([3, 3], 0),  # two batches three pages back: retrieve both
        ([3, 3, 3, 3], 3),
        ([1, math.inf, math.inf], 0),
        ([1, 1, math.inf], 1),
        ([1, 1, 2, 2, 2, 9], 2),
    ],
)
def test_pages_worth_reading(needed: list[float], pages: int) -> None:
    assert pages_worth(needed) == pages


@given(st.lists(st.one_of(st.integers(1, 20).map(float), st.just(math.inf)), max_size=40))
def test_pages_worth_never_costs_more_than_retrieving_everything(needed: list[float]) -> None:
    pages = pages_worth(needed)
    uncovered = sum(1 for n in needed if n > pages)
    assert pages + uncovered <= len(needed)
    # and no other page count is cheaper
    for other in range(0, 21):
        assert pages + uncovered <= other + sum(1 for n in needed if n > other)
