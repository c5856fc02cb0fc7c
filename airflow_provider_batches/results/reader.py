"""Stream a batch's results from its ``results_url``, sync and async, in constant memory.

Both readers share the checks (:func:`results_url_for`), the retry decisions (the transport's
:class:`~airflow_provider_batches.transport.Attempts`) and the line handling
(:class:`~airflow_provider_batches.results.lines.ResultsCursor`). A read that breaks
mid-stream asks again and skips the ``custom_id``s it already yielded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_batches.clients import AsyncPool
from airflow_provider_batches.exceptions import APIError, APIStatusError
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.response_body import Reply
from airflow_provider_batches.results.errors import (
    IncompleteResultsError,
    ResultsHostNotAllowedError,
    ResultsNotReadyError,
    ResultsUnavailableError,
)
from airflow_provider_batches.results.lines import (
    DEFAULT_MAX_LINE_BYTES,
    ResultLine,
    ResultsCursor,
)
from airflow_provider_batches.settings import ClientSettings, is_loopback_host
from airflow_provider_batches.transport import ApiRequest, Attempts, invalid_response, redact

#: How much of an error response's body is read to build the error.
MAX_ERROR_BODY_BYTES = 64 * 1024
_ACCEPT = "application/x-jsonl, application/octet-stream;q=0.9, */*;q=0.8"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def results_url_for(
    settings: ClientSettings, batch: MessageBatch, allowed_hosts: Collection[str] = ()
) -> str:
    """The batch's ``results_url``, once checked: ended, not archived, and a host that may
    receive the API key (the connection's own, or one in ``allowed_hosts``)."""
    if not batch.is_ended or not batch.results_url:
        raise ResultsNotReadyError(
            f"Batch {batch.id} has no results yet (processing_status="
            f"{batch.processing_status!r}): results exist once processing has ended. Wait for "
            "it first, with MessageBatchSensor or a deferred MessageBatchOperator."
        )
    if batch.archived_at is not None:
        raise ResultsUnavailableError(
            f"The results of batch {batch.id} were archived at {batch.archived_at.isoformat()} "
            "and can no longer be downloaded (results are kept 29 days after creation)."
        )
    url = batch.results_url
    if not _same_origin(url, settings.base_url) and not _allowed(url, allowed_hosts):
        shown = redact(urlsplit(url)._replace(query="", fragment="").geturl(), settings.api_key)
        raise ResultsHostNotAllowedError(
            f"The results_url of batch {batch.id} ({shown[:300]}) is not on the connection's host "
            f"({settings.base_url}), and the API key is sent only there. If that host is the "
            "API's, allow it: connection extra 'results_hosts' (a list of host names, or "
            "host:port) or the 'allowed_results_hosts' argument."
        )
    return url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        port or _DEFAULT_PORTS.get(parts.scheme.lower()),
    )


def _same_origin(url: str, base_url: str) -> bool:
    return _origin(url) == _origin(base_url)


def _allowed(url: str, allowed_hosts: Collection[str]) -> bool:
    scheme, host, port = _origin(url)
    if not host or scheme not in _DEFAULT_PORTS:
        return False
    if scheme == "http" and not is_loopback_host(host):
        return False  # never the key in clear text to another host
    for entry in allowed_hosts:
        name, _, wanted_port = entry.strip().lower().rpartition(":")
        if not name or not wanted_port.isdigit():
            name, wanted_port = entry.strip().lower(), ""
        if name.strip("[]") == host and (not wanted_port or int(wanted_port) == port):
            return True
    return False


def _headers(settings: ClientSettings) -> dict[str, str]:
    return {**settings.headers(), "accept": _ACCEPT}


def _status_error(attempts: Attempts, response: httpx.Response, body: bytes) -> float:
    """Seconds to wait before asking again; raises when the status is not worth a retry."""
    reply = Reply(response.status_code, response.headers, body, response.reason_phrase)
    try:
        outcome = attempts.after_response(reply)
    except APIStatusError as error:
        if error.status_code is not None and 400 <= error.status_code < 500:
            raise _unavailable(error) from None
        raise
    return float(outcome.delay)


def _unavailable(error: APIStatusError) -> ResultsUnavailableError:
    return ResultsUnavailableError(
        f"The API refused the results of batch {error.batch_id}: {error}. A 4xx here is not "
        "retried: the batch may be unknown to this API key or workspace, archived, or deleted."
    )


def _incomplete(
    attempts: Attempts, response: httpx.Response, cursor: ResultsCursor, before: int
) -> float:
    _note_progress(attempts, cursor, before)
    problem = f"the results ended after {cursor.yielded} of the batch's {cursor.expected} lines"
    error = invalid_response(response, attempts.request, attempts.settings.api_key, problem)
    try:
        return float(attempts._retry_or_raise(error, None, retryable=True).delay)
    except APIError as final:
        raise IncompleteResultsError(
            f"Batch {cursor.batch_id}: {problem}, even after {final.attempts} requests."
        ) from None


def iter_result_lines(
    client: httpx.Client,
    settings: ClientSettings,
    batch: MessageBatch,
    *,
    allowed_hosts: Collection[str] = (),
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[ResultLine]:
    """Every results line of ``batch`` once, resuming after transient failures."""
    url = results_url_for(settings, batch, allowed_hosts)
    attempts = Attempts(settings, ApiRequest("GET", url, batch.id), _unused_parse)
    cursor = ResultsCursor(batch.id, batch.total_requests, max_line_bytes)
    while True:
        before = cursor.yielded
        try:
            with client.stream("GET", url, headers=_headers(settings)) as response:
                if not response.is_success:
                    delay = _status_error(attempts, response, _read_bounded(response))
                else:
                    cursor.start_response()
                    for chunk in response.iter_bytes():
                        yield from cursor.feed(chunk)
                    yield from cursor.finish()
                    if cursor.complete:
                        return
                    delay = _incomplete(attempts, response, cursor, before)
        except httpx.HTTPError as exc:
            delay = _after_transport_error(attempts, exc, cursor, before)
        sleep(delay)


async def aiter_result_lines(
    pool: AsyncPool,
    settings: ClientSettings,
    batch: MessageBatch,
    *,
    allowed_hosts: Collection[str] = (),
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> AsyncIterator[ResultLine]:
    """Async :func:`iter_result_lines` on the loop's shared pool (one of its connections)."""
    url = results_url_for(settings, batch, allowed_hosts)
    attempts = Attempts(settings, ApiRequest("GET", url, batch.id), _unused_parse)
    cursor = ResultsCursor(batch.id, batch.total_requests, max_line_bytes)
    while True:
        before = cursor.yielded
        try:
            async with (
                pool.gate,
                pool.client.stream("GET", url, headers=_headers(settings)) as response,
            ):
                if not response.is_success:
                    body = await _aread_bounded(response)
                    delay = _status_error(attempts, response, body)
                else:
                    cursor.start_response()
                    async for chunk in response.aiter_bytes():
                        for line in cursor.feed(chunk):
                            yield line
                    for line in cursor.finish():
                        yield line
                    if cursor.complete:
                        return
                    delay = _incomplete(attempts, response, cursor, before)
        except httpx.HTTPError as exc:
            delay = _after_transport_error(attempts, exc, cursor, before)
        await asyncio.sleep(delay)


def _after_transport_error(
    attempts: Attempts, exc: httpx.HTTPError, cursor: ResultsCursor, before: int
) -> float:
    _note_progress(attempts, cursor, before)
    return float(attempts.after_transport_error(exc).delay)


def _note_progress(attempts: Attempts, cursor: ResultsCursor, before: int) -> None:
    if cursor.yielded > before:
        attempts.attempt = 0  # the retry budget is per stall, not per read of 100,000 lines


def _read_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    return bytes(body[:MAX_ERROR_BODY_BYTES])


async def _aread_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= MAX_ERROR_BODY_BYTES:
            break
    return bytes(body[:MAX_ERROR_BODY_BYTES])


def _unused_parse(response: Reply, request: ApiRequest, secret: str) -> Any:
    raise AssertionError("results responses are streamed, not parsed whole")  # pragma: no cover
