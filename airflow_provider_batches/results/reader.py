"""Stream a batch's results from its ``results_url``, sync and async, in bounded memory.

The checks before any request are :func:`results_url_for`; the request goes through the
transport's one send loop in streaming mode (retries, resumes after a break, a stall clock,
bounded decoding), and :class:`~airflow_provider_batches.results.lines.ResultsCursor` turns the
bytes into lines: checked, each ``custom_id`` once, with bounds on what a stream may send.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Collection, Iterator
from contextlib import aclosing, contextmanager
from urllib.parse import urlsplit

from airflow_provider_batches._connection.settings import ClientSettings, is_loopback_host
from airflow_provider_batches._http.clients import shared_async_pool, shared_sync_client
from airflow_provider_batches._http.send import (
    ApiRequest,
    asend_streaming,
    redact,
    send_streaming,
)
from airflow_provider_batches.exceptions import (
    APIStatusError,
    IncompleteResultsError,
    InvalidResponseError,
    ResultsHostNotAllowedError,
    ResultsNotReadyError,
    ResultsUnavailableError,
)
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results.lines import (
    ReadCounts,
    ResultLine,
    ResultsCursor,
    line_bound,
)

_ACCEPT = "application/x-jsonl, application/octet-stream;q=0.9, */*;q=0.8"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def results_url_for(
    settings: ClientSettings, batch: MessageBatch, allowed_results_hosts: Collection[str] = ()
) -> str:
    """The batch's ``results_url``, once checked: ended, not archived, and a host that may
    receive the API key (the connection's own, one of its ``results_hosts`` extra, or one in
    ``allowed_results_hosts``)."""
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
    allowed_hosts = (*settings.results_hosts, *allowed_results_hosts)
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


def iter_result_lines(
    settings: ClientSettings,
    batch: MessageBatch,
    *,
    allowed_results_hosts: Collection[str] = (),
    max_line_bytes: int | None = None,
    counts: ReadCounts | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[ResultLine]:
    """Every results line of the ended ``batch`` once, resuming after transient failures;
    ``counts`` (if given) receives what the read skipped."""
    cursor = ResultsCursor(batch.id, batch.total_requests, line_bound(max_line_bytes), counts)
    request = _results_request(settings, batch, allowed_results_hosts)
    with _as_results_errors(cursor):
        yield from send_streaming(shared_sync_client(settings), settings, request, cursor, sleep)


async def aiter_result_lines(
    settings: ClientSettings,
    batch: MessageBatch,
    *,
    allowed_results_hosts: Collection[str] = (),
    max_line_bytes: int | None = None,
    counts: ReadCounts | None = None,
) -> AsyncGenerator[ResultLine, None]:
    """Async :func:`iter_result_lines` on the loop's shared pool (one of its connections)."""
    cursor = ResultsCursor(batch.id, batch.total_requests, line_bound(max_line_bytes), counts)
    request = _results_request(settings, batch, allowed_results_hosts)
    pool = shared_async_pool(settings)
    with _as_results_errors(cursor):
        lines = asend_streaming(pool.client, pool.gate, settings, request, cursor)
        async with aclosing(lines):
            async for line in lines:
                yield line


def _results_request(
    settings: ClientSettings, batch: MessageBatch, allowed_results_hosts: Collection[str]
) -> ApiRequest:
    url = results_url_for(settings, batch, allowed_results_hosts)
    return ApiRequest("GET", url, batch.id, accept=_ACCEPT)


@contextmanager
def _as_results_errors(cursor: ResultsCursor) -> Iterator[None]:
    """The transport's final errors, as the results errors they mean here."""
    try:
        yield
    except APIStatusError as error:
        if error.status_code is not None and 400 <= error.status_code < 500:
            raise ResultsUnavailableError(
                f"The API refused the results of batch {cursor.batch_id}: {error}. A 4xx here is "
                "not retried: the batch may be unknown to this API key or workspace, archived, "
                "or deleted."
            ) from None
        raise
    except InvalidResponseError as error:
        raise IncompleteResultsError(
            f"Batch {cursor.batch_id}: {error.message}, even after {error.attempts} requests."
        ) from None
