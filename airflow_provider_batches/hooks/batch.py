"""MessageBatchHook: the Message Batches API over httpx, sync for workers, async for triggers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import urlencode

import httpx
from pydantic import ValidationError

from airflow_provider_batches._compat import (
    BaseHook,
    aconnection_extras,
    aget_connection,
    amask_secret,
    mask_secret,
)
from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.clients import (
    aclose_shared_clients,
    shared_async_pool,
    shared_sync_client,
)
from airflow_provider_batches._http.send import (
    ApiRequest,
    ResponseLike,
    asend,
    invalid_response,
    redact,
    response_json,
    send,
)
from airflow_provider_batches.batch_ids import validate_batch_id
from airflow_provider_batches.exceptions import InvalidBatchIdError, MessageBatchError
from airflow_provider_batches.models import MessageBatch, MessageBatchPage
from airflow_provider_batches.telemetry import metrics

log = logging.getLogger(__name__)

__all__ = [
    "MAX_PAGE_SIZE",
    "BatchListing",
    "ListedPage",
    "MessageBatchHook",
    "aclose_shared_clients",
    "parse_batch",
    "parse_list_page",
    "response_date",
]

if TYPE_CHECKING:
    from airflow_provider_batches.request_set import RequestSet
    from airflow_provider_batches.results import BatchResult

#: The most batches one list request returns (the API's limit).
MAX_PAGE_SIZE = 1000
#: Pages a :class:`BatchListing` reads at most unless told otherwise, whatever ``has_more`` says.
DEFAULT_MAX_PAGES = 100
#: List entries validated per event-loop iteration, so that a big page never holds the loop long.
VALIDATE_CHUNK = 250


class MessageBatchHook(BaseHook):
    """Reads Anthropic Message Batches through an Airflow connection.

    Password is the API key; Host the base URL (default ``https://api.anthropic.com``); the
    extras (``timeout``, ``max_retries``, ``max_requests_per_minute``, ``results_hosts``, ...)
    are listed in ``docs/connection.md``. Any connection type with these fields works.

    :param conn_id: The Airflow connection to use.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "anthropic_default"
    conn_type = "anthropic_batches"
    hook_name = "Anthropic Message Batches"

    def __init__(self, conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._settings: ClientSettings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from airflow_provider_batches._compat import hook_ui_field_behaviour
        from airflow_provider_batches.provider_info import UI_FIELD_BEHAVIOUR

        return hook_ui_field_behaviour(UI_FIELD_BEHAVIOUR)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from airflow_provider_batches._compat import hook_connection_form_widgets
        from airflow_provider_batches.provider_info import CONN_FIELDS

        return hook_connection_form_widgets(CONN_FIELDS)

    @property
    def settings(self) -> ClientSettings:
        """Settings from the connection, loaded once (sync: for workers)."""
        if self._settings is None:
            self._settings = self._load_settings(self.get_connection(self.conn_id))
        return self._settings

    async def asettings(self) -> ClientSettings:
        """Settings from the connection, loaded once without blocking the event loop."""
        if self._settings is None:
            conn = await aget_connection(self.conn_id)
            extras = await aconnection_extras(conn)
            settings = ClientSettings.from_connection(conn, extras)
            await _amask(settings.api_key)
            self._settings = settings
        return self._settings

    def loaded_api_key(self) -> str:
        """The API key if the settings are loaded already, else ``""`` (for redaction)."""
        return self._settings.api_key if self._settings is not None else ""

    @staticmethod
    def _load_settings(conn: Any) -> ClientSettings:
        settings = ClientSettings.from_connection(conn)
        _mask(settings.api_key)
        return settings

    def get_conn(self) -> httpx.Client:
        """The shared sync httpx client for this connection (headers are added per request)."""
        return shared_sync_client(self.settings)

    def retrieve_batch(self, batch_id: str, *, deadline: float | None = None) -> MessageBatch:
        """``GET /v1/messages/batches/{batch_id}``, retried on transient faults.

        :param deadline: Epoch seconds (``time.time()`` based) by which the call, retries and
            their waits included, must end; the last error is raised rather than passing it.
        """
        validate_batch_id(batch_id)
        settings = self.settings
        request = ApiRequest("GET", settings.batch_url(batch_id), batch_id)
        client = shared_sync_client(settings)
        return send(client, settings, request, parse_batch, deadline=deadline)

    async def aretrieve_batch(
        self, batch_id: str, *, deadline: float | None = None
    ) -> MessageBatch:
        """Async :meth:`retrieve_batch` on the loop's shared connection pool."""
        validate_batch_id(batch_id)
        settings = await self.asettings()
        request = ApiRequest("GET", settings.batch_url(batch_id), batch_id)
        pool = shared_async_pool(settings)
        return await asend(
            pool.client, pool.gate, settings, request, parse_batch, deadline=deadline
        )

    def create_batch(self, requests: Sequence[dict[str, Any]] | RequestSet) -> MessageBatch:
        """``POST /v1/messages/batches`` with ``[{"custom_id": ..., "params": {...}}, ...]``.

        A :class:`~airflow_provider_batches.request_set.RequestSet` (what
        ``build_request_set`` returns) is sent as it was checked, streamed from its spooled
        body with a known length, in bounded memory whatever its size.

        Sent again only after an answer proving the API did not act on it (429, 529, or a
        connection that was never made). After anything else that leaves the outcome open (a
        5xx such as a gateway's 504, a timeout, a dropped connection, an unreadable 2xx) it
        raises :class:`BatchCreateOutcomeUnknownError` instead: a resend could create and bill a
        second batch.
        """
        settings = self.settings
        request = _create_request(settings, requests)
        batch = send(shared_sync_client(settings), settings, request, parse_batch)
        metrics.batch_created(settings.conn_id, requests)
        return batch

    async def acreate_batch(self, requests: Sequence[dict[str, Any]] | RequestSet) -> MessageBatch:
        """Async :meth:`create_batch`, with the same no-resend rule."""
        settings = await self.asettings()
        request = _create_request(settings, requests)
        pool = shared_async_pool(settings)
        batch = await asend(pool.client, pool.gate, settings, request, parse_batch)
        metrics.batch_created(settings.conn_id, requests)
        return batch

    def cancel_batch(self, batch_id: str) -> MessageBatch:
        """``POST /v1/messages/batches/{batch_id}/cancel``; the batch moves to ``canceling``."""
        validate_batch_id(batch_id)
        settings = self.settings
        request = _cancel_request(settings, batch_id)
        return send(shared_sync_client(settings), settings, request, parse_batch)

    def iter_results(
        self,
        batch: str | MessageBatch,
        *,
        allowed_results_hosts: Collection[str] = (),
        max_line_bytes: int | None = None,
    ) -> Iterator[BatchResult]:
        """Each result of an ended batch (an id, or the batch as retrieved), in constant memory.

        Results come in no guaranteed order: match them to requests by ``custom_id``. A read
        that breaks is resumed without losing or repeating a line. The API key goes only to the
        connection's host, or to ``allowed_results_hosts`` / the ``results_hosts`` extra.
        """
        from airflow_provider_batches.results.lines import line_bound
        from airflow_provider_batches.results.reader import iter_result_lines

        bound = line_bound(max_line_bytes)
        ended = batch if isinstance(batch, MessageBatch) else self.retrieve_batch(batch)
        for line in iter_result_lines(
            self.settings, ended, allowed_results_hosts=allowed_results_hosts, max_line_bytes=bound
        ):
            yield line.result

    async def aiter_results(
        self,
        batch: str | MessageBatch,
        *,
        allowed_results_hosts: Collection[str] = (),
        max_line_bytes: int | None = None,
    ) -> AsyncIterator[BatchResult]:
        """Async :meth:`iter_results`, on the event loop's shared connection pool."""
        from airflow_provider_batches.results.lines import line_bound
        from airflow_provider_batches.results.reader import aiter_result_lines

        bound = line_bound(max_line_bytes)
        ended = batch if isinstance(batch, MessageBatch) else await self.aretrieve_batch(batch)
        settings = await self.asettings()
        lines = aiter_result_lines(
            settings, ended, allowed_results_hosts=allowed_results_hosts, max_line_bytes=bound
        )
        async with aclosing(lines):  # stopping early frees the stream's connection at once
            async for line in lines:
                yield line.result

    async def acancel_batch(self, batch_id: str) -> MessageBatch:
        """Async :meth:`cancel_batch`."""
        validate_batch_id(batch_id)
        settings = await self.asettings()
        request = _cancel_request(settings, batch_id)
        pool = shared_async_pool(settings)
        return await asend(pool.client, pool.gate, settings, request, parse_batch)

    def list_batches(
        self, limit: int = 20, after_id: str | None = None, before_id: str | None = None
    ) -> MessageBatchPage:
        """One page of ``GET /v1/messages/batches``, newest first.

        :param limit: Batches per page, 1 to 1000.
        :param after_id: Start after this batch: the next (older) page is
            ``after_id=page.last_id``.
        :param before_id: End before this batch: the previous (newer) page.
        """
        request = _list_request(self.settings, limit, after_id, before_id)
        return send(shared_sync_client(self.settings), self.settings, request, parse_list_page)

    async def alist_batches(
        self, limit: int = 20, after_id: str | None = None, before_id: str | None = None
    ) -> MessageBatchPage:
        """Async :meth:`list_batches`."""
        settings = await self.asettings()
        request = _list_request(settings, limit, after_id, before_id)
        pool = shared_async_pool(settings)
        return await asend(pool.client, pool.gate, settings, request, parse_list_page)

    def batch_listing(
        self, page_size: int = MAX_PAGE_SIZE, max_pages: int = DEFAULT_MAX_PAGES
    ) -> BatchListing:
        """The workspace's batches, newest first, page after page (see :class:`BatchListing`):
        ``for page in hook.batch_listing(): ...``, or ``async for`` on an event loop."""
        return BatchListing(self, page_size, max_pages)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list one batch), for the UI's Test button."""
        try:
            settings = self.settings
            send(
                shared_sync_client(settings),
                settings,
                _list_request(settings, 1, None, None),
                parse_list_page,
            )
        except MessageBatchError as error:
            return False, str(error)
        return True, f"Connected to {settings.base_url}; the API key was accepted."


def parse_batch(response: ResponseLike, request: ApiRequest, secret: str) -> MessageBatch:
    """The batch in a 2xx response, or :class:`InvalidResponseError` if it is not one."""
    if secret and secret.encode() in response.content:
        # Kept fields go to XCom and logs: a body that echoes the key is never accepted.
        raise invalid_response(response, request, secret, "the body contains the API key")
    body = response_json(response, request, secret)
    try:
        batch = MessageBatch.model_validate(body)
        batch.to_xcom()  # fields kept from a hostile body must still serialize for XCom
    except ValidationError as exc:
        raise invalid_response(
            response, request, secret, f"not a message batch ({redact(_problems(exc), secret)})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise invalid_response(
            response, request, secret, f"the batch cannot be serialized ({str(exc)[:200]})"
        ) from None
    if request.batch_id is not None and batch.id != request.batch_id:
        raise invalid_response(
            response, request, secret, f"it describes batch {batch.id[:100]!r}, not the one asked"
        )
    return batch


def response_date(response: ResponseLike) -> float | None:
    """The API's clock when it answered (its ``Date`` header, epoch seconds), or None without
    a readable one."""
    try:
        when = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as every HTTP date is
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_list_page(response: ResponseLike, request: ApiRequest, secret: str) -> MessageBatchPage:
    """The page of batches in a 2xx response, or :class:`InvalidResponseError`."""
    if secret and secret.encode() in response.content:
        raise invalid_response(response, request, secret, "the body contains the API key")
    body = response_json(response, request, secret)
    try:
        page = MessageBatchPage.model_validate(body)
        for batch in page.data:
            batch.to_xcom()
    except ValidationError as exc:
        raise invalid_response(
            response,
            request,
            secret,
            f"not a list of message batches ({redact(_problems(exc), secret)})",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise invalid_response(
            response, request, secret, f"a batch cannot be serialized ({str(exc)[:200]})"
        ) from None
    return page


ListingEnd = Literal[
    "last page", "page cap", "no cursor", "invalid cursor", "repeated cursor", "failed"
]


@dataclass(frozen=True)
class ListedPage:
    """One page of a :class:`BatchListing`: its valid batches, newest first, and how many of
    its entries were not valid batches (left out)."""

    batches: list[MessageBatch]
    skipped: int
    has_more: bool
    last_id: str | None


class BatchListing:
    """The one pager over ``GET /v1/messages/batches``: each page after the last one's
    ``last_id``, newest first. Iterate it with ``for``, or ``async for`` on an event loop (a
    page's entries are then validated in slices, between which other coroutines run).

    Every page is untrusted. A page that fails (an error after the retries, a body that is not
    a list page, more entries than asked) raises its error and ends the listing; an entry that is
    not a valid batch is left out and counted in ``skipped``. The listing ends without an error
    when the server says it has no more (``complete``), or when a guard stops it: ``max_pages``
    pages read, or a cursor that is missing, not a valid batch id, or followed before in this
    listing. ``end`` says which. ``server_time`` is the API's clock when it answered the first
    page (its ``Date`` header), to measure this machine's clock against.
    """

    def __init__(self, hook: MessageBatchHook, page_size: int, max_pages: int) -> None:
        _check_page_size(page_size, "page_size")
        if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
            raise ValueError(f"max_pages must be an integer of at least 1, got {max_pages!r}.")
        self._hook = hook
        self.page_size = page_size
        self.max_pages = max_pages
        self.pages_read = 0
        self.skipped = 0
        self.end: ListingEnd | None = None
        self.server_time: float | None = None
        self._after_id: str | None = None
        self._followed: set[str] = set()

    @property
    def complete(self) -> bool:
        """Whether the last page read said it was the last (every batch listed was read)."""
        return self.end == "last page"

    def __iter__(self) -> BatchListing:
        return self

    def __next__(self) -> ListedPage:
        if self.end is not None:
            raise StopIteration
        try:
            settings = self._hook.settings
            request = _list_request(settings, self.page_size, self._after_id, None)
            raw = send(shared_sync_client(settings), settings, request, self._parse)
        except Exception:
            self.end = "failed"
            raise
        return self._page(raw, *_batches_in(raw.items))

    def __aiter__(self) -> BatchListing:
        return self

    async def __anext__(self) -> ListedPage:
        if self.end is not None:
            raise StopAsyncIteration
        try:
            settings = await self._hook.asettings()
            request = _list_request(settings, self.page_size, self._after_id, None)
            pool = shared_async_pool(settings)
            raw = await asend(pool.client, pool.gate, settings, request, self._parse)
        except Exception:
            self.end = "failed"
            raise
        batches: list[MessageBatch] = []
        skipped = 0
        for start in range(0, len(raw.items), VALIDATE_CHUNK):
            if start:
                await asyncio.sleep(0)  # other coroutines run between two slices of a big page
            valid, invalid = _batches_in(raw.items[start : start + VALIDATE_CHUNK])
            batches += valid
            skipped += invalid
        return self._page(raw, batches, skipped)

    def _parse(self, response: ResponseLike, request: ApiRequest, secret: str) -> _RawPage:
        return parse_raw_list_page(response, request, secret, self.page_size)

    def _page(self, raw: _RawPage, batches: list[MessageBatch], skipped: int) -> ListedPage:
        self.pages_read += 1
        if self.server_time is None:
            self.server_time = raw.answered_at
        if skipped:
            self.skipped += skipped
            log.warning("Skipped %d list entries that are not valid message batches.", skipped)
        self._after_id = self._next_cursor(raw.has_more, raw.last_id)
        return ListedPage(batches, skipped, raw.has_more, raw.last_id)

    def _next_cursor(self, has_more: bool, cursor: str | None) -> str | None:
        """The next page's ``after_id``, or None once the listing ends (``end`` says why)."""
        if not has_more:
            self.end = "last page"
        elif self.pages_read >= self.max_pages:
            self.end = "page cap"
        elif cursor is None:
            self.end = "no cursor"
        elif not _is_batch_id(cursor):
            self.end = "invalid cursor"
        elif cursor in self._followed:
            self.end = "repeated cursor"
        else:
            self._followed.add(cursor)
            return cursor
        if self.end in _CURSOR_PROBLEMS:
            log.warning(
                "The list of batches says it has more, but its cursor %r %s: the listing ends "
                "here.",
                cursor if cursor is None else cursor[:100],
                _CURSOR_PROBLEMS[self.end],
            )
        return None


_CURSOR_PROBLEMS = {
    "no cursor": "is missing",
    "invalid cursor": "is not a batch id",
    "repeated cursor": "was followed before in this listing",
}


class _RawPage(NamedTuple):
    items: list[Any]
    has_more: bool
    last_id: str | None
    answered_at: float | None


def parse_raw_list_page(
    response: ResponseLike, request: ApiRequest, secret: str, limit: int
) -> _RawPage:
    """A list page's shape; its entries are checked later, one by one. A body that echoes the
    API key, is not a list page, or holds more than ``limit`` entries is an invalid response."""
    if secret and secret.encode() in response.content:
        raise invalid_response(response, request, secret, "the body contains the API key")
    body = response_json(response, request, secret)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise invalid_response(response, request, secret, "not a list of message batches")
    if len(data) > limit:
        raise invalid_response(
            response, request, secret, f"{len(data)} batches on a page of at most {limit}"
        )
    has_more, last_id = body.get("has_more"), body.get("last_id")
    if not isinstance(has_more, bool) or not (last_id is None or isinstance(last_id, str)):
        raise invalid_response(response, request, secret, "has_more or last_id is malformed")
    return _RawPage(data, has_more, last_id, response_date(response))


def _batches_in(items: list[Any]) -> tuple[list[MessageBatch], int]:
    """The entries that are valid batches (whose fields serialize), and how many were not."""
    batches: list[MessageBatch] = []
    for item in items:
        try:
            batch = MessageBatch.model_validate(item)
            batch.to_xcom()
        except (ValidationError, ValueError, RecursionError):
            continue
        batches.append(batch)
    return batches, len(items) - len(batches)


def _is_batch_id(value: str) -> bool:
    try:
        validate_batch_id(value)
    except InvalidBatchIdError:
        return False
    return True


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    )


def _create_request(
    settings: ClientSettings, requests: Sequence[dict[str, Any]] | RequestSet
) -> ApiRequest:
    url = settings.batches_url()
    from airflow_provider_batches.request_set import RequestSet  # not at parse time

    if isinstance(requests, RequestSet):
        return ApiRequest("POST", url, None, idempotent=False, content=requests.body)
    if not requests:
        raise ValueError("create_batch needs at least one request.")
    body = {"requests": list(requests)}
    return ApiRequest("POST", url, None, body, idempotent=False)


def _cancel_request(settings: ClientSettings, batch_id: str) -> ApiRequest:
    return ApiRequest("POST", settings.batch_url(batch_id) + "/cancel", batch_id)


def _check_page_size(limit: int, name: str = "limit") -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}.")


def _list_request(
    settings: ClientSettings, limit: int, after_id: str | None, before_id: str | None
) -> ApiRequest:
    _check_page_size(limit)
    if after_id is not None and before_id is not None:
        raise ValueError("Pass after_id or before_id, not both: they page in opposite directions.")
    query: dict[str, str | int] = {"limit": limit}
    for name, cursor in (("after_id", after_id), ("before_id", before_id)):
        if cursor is not None:
            query[name] = validate_batch_id(cursor)
    return ApiRequest("GET", f"{settings.batches_url()}?{urlencode(query)}")


def _mask(secret: str) -> None:
    """Tell Airflow's secrets masker about the key so no log line can show it."""
    try:
        mask_secret(secret)
    except Exception as error:
        _report_mask_failure(error)


async def _amask(secret: str) -> None:
    """The same from the event loop, without blocking it (see ``_compat.amask_secret``)."""
    try:
        await amask_secret(secret)
    except Exception as error:
        _report_mask_failure(error)


_mask_failure_reported = False


def _report_mask_failure(error: Exception) -> None:
    """Warn once per process; neither the key nor the error's text (it may hold the key)."""
    global _mask_failure_reported
    if not _mask_failure_reported:
        _mask_failure_reported = True
        log.warning(
            "Could not register the API key with Airflow's secrets masker (%s); the provider "
            "still keeps the key out of its own messages.",
            type(error).__name__,
        )
