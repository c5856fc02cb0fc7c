"""The watcher's list pages, on the connection's shared pool (single retrieves go through the
hook's ``aretrieve_batch``).

The request is the hook's list request (``alist_batches``), but the answer is parsed here:
``alist_batches`` validates a whole page at once and rejects it for one bad entry, while the
watcher validates 1,000 entries in slices between loop iterations and leaves a bad entry out
(its wait then retrieves that batch and gets that request's own answer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from airflow_provider_batches.clients import shared_async_pool
from airflow_provider_batches.hooks.batch import _list_request
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.settings import ClientSettings
from airflow_provider_batches.transport import (
    ApiRequest,
    ResponseLike,
    asend,
    invalid_response,
    response_json,
)

log = logging.getLogger(__name__)

#: The most batches one list request returns.
PAGE_LIMIT = 1000


@dataclass(frozen=True)
class ListPage:
    """One page; ``items`` are still raw JSON, validated by :func:`valid_batches` in slices so
    that a 1,000-batch page never holds the event loop for long."""

    items: list[Any]
    has_more: bool
    last_id: str | None


async def alist_page(settings: ClientSettings, after_id: str | None) -> ListPage:
    """``GET /v1/messages/batches?limit=1000[&after_id=...]``: one page, newest first."""
    pool = shared_async_pool(settings)
    request = _list_request(settings, PAGE_LIMIT, after_id, None)
    return await asend(pool.client, pool.gate, settings, request, parse_page)


def parse_page(response: ResponseLike, request: ApiRequest, secret: str) -> ListPage:
    """The page's shape; the entries are checked later, one by one (see :func:`valid_batches`)."""
    body, data = page_body(response, request, secret)
    last_id = body.get("last_id")
    return ListPage(
        items=data[:PAGE_LIMIT],
        has_more=body.get("has_more") is True,
        last_id=last_id if isinstance(last_id, str) and last_id else None,
    )


def page_body(
    response: ResponseLike, request: ApiRequest, secret: str
) -> tuple[dict[str, Any], list[Any]]:
    """A list page's JSON body and its ``data``; a body that echoes the API key, or is not a
    list of batches, is an ``InvalidResponseError`` (batches become events, XCom and logs)."""
    if secret and secret.encode() in response.content:
        raise invalid_response(response, request, secret, "the body contains the API key")
    body = response_json(response, request, secret)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise invalid_response(response, request, secret, "not a list of message batches")
    return body, body["data"]


def batches_in(items: list[Any]) -> tuple[list[MessageBatch], int]:
    """The entries that are valid batches (whose payload serializes), and how many were not."""
    batches: list[MessageBatch] = []
    for item in items:
        try:
            batch = MessageBatch.model_validate(item)
            batch.to_xcom()
        except (ValidationError, ValueError, RecursionError):
            continue
        batches.append(batch)
    return batches, len(items) - len(batches)


def valid_batches(items: list[Any]) -> list[MessageBatch]:
    """The entries that are valid batches; one that is not is left out (its waits then
    retrieve it, and get that request's own error)."""
    batches, skipped = batches_in(items)
    if skipped:
        log.warning("Skipped %d list entries that are not valid message batches", skipped)
    return batches


def pages_worth(needed: list[float]) -> int:
    """How many more pages to read, given the pages each wanted batch still needs.

    Reading ``k`` pages costs ``k`` requests and saves a retrieve for every batch that needs at
    most ``k``; the cheapest ``k`` wins, and on a tie the fewer pages (a retrieve is exact).
    """
    finite = sorted(n for n in needed if n != float("inf"))
    best_pages, best_cost = 0, float(len(needed))
    for covered, pages in enumerate(finite, start=1):
        cost = pages + len(needed) - covered
        if cost < best_cost:
            best_pages, best_cost = int(pages), cost
    return best_pages
