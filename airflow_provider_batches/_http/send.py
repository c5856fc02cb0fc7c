"""Send one API request with retries and turn the response into a result or a typed error.

One send loop serves every request, sync (:func:`send`, :func:`send_streaming`) and async
(:func:`asend`, :func:`asend_streaming`); the retry decisions live in :class:`Attempts`, so the
sync and async forms differ only in how they send, read and sleep. Two modes:

- **Whole** (``send``, ``asend``): every attempt is bounded in time (the connection's
  ``timeout`` covers connect, send and every read together) and in memory (bodies are streamed
  and cut at ``max_response_bytes``, see :mod:`.body`); the body is parsed whole.
- **Streaming** (``send_streaming``, ``asend_streaming``), for bodies too large to hold (a
  batch's results): a 2xx body is decoded piece by piece (never more than
  :data:`STREAM_PIECE_BYTES` at once, whatever its compression) into a :class:`StreamedBody`,
  and the items it makes are yielded as they come. The rules:

  * The body must keep coming: ``timeout`` seconds without a new line end the attempt as a
    timeout (a drip of bytes that never completes a line cannot hold a call).
  * A body that breaks, or ends before the :class:`StreamedBody` is complete, is asked for
    again from its start; the :class:`StreamedBody` skips what it has already given.
  * **Progress resets the attempt count**: a failure after an attempt gave something new
    starts a new stall, so ``max_retries`` bounds the failures in a row, not those of a whole
    stream of 100,000 lines; this restart happens at most :data:`MAX_STREAM_RESUMES` times per
    call, after which failures count on until ``max_retries``.
  * Errors, statuses and ``retry-after`` are handled as in whole mode; an error the
    :class:`StreamedBody` raises ends the call at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import httpx

from airflow_provider_batches._connection.headers import header_value_problem
from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http import budget
from airflow_provider_batches._http.body import (
    ACCEPT_ENCODING,
    BodyStream,
    Reply,
    StreamedBody,
    aread_reply,
    read_reply,
)
from airflow_provider_batches._http.errors import (
    LOCAL_ERRORS,
    MAX_MESSAGE_CHARS,
    NOT_SENT_ERRORS,
    error_from_response,
    error_from_transport,
    has_retry_after,
    invalid_response,
    outcome_unknown,
    redact,
    response_json,
)
from airflow_provider_batches._http.request import ApiRequest, ResponseLike
from airflow_provider_batches._http.request_body import achunks
from airflow_provider_batches._http.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    is_refusal_status,
    is_retryable_status,
    leaves_outcome_open,
)
from airflow_provider_batches._http.timeouts import wait_within
from airflow_provider_batches.exceptions import APIError, APITimeoutError, InvalidResponseError
from airflow_provider_batches.telemetry import metrics

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_STREAM_RESUMES",
    "ApiRequest",
    "Attempts",
    "Reply",
    "ResponseLike",
    "StreamedBody",
    "asend",
    "asend_streaming",
    "error_from_response",
    "error_from_transport",
    "invalid_response",
    "redact",
    "response_json",
    "send",
    "send_streaming",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
#: How many times one streaming call restarts its attempt count after progress.
MAX_STREAM_RESUMES = 10


class _Retry:
    """Marker result: wait ``delay`` seconds and send again."""

    __slots__ = ("delay",)

    def __init__(self, delay: float) -> None:
        self.delay = delay


@dataclass
class Attempts:
    """Decides, after each attempt, whether to return, raise, or retry after a delay.

    ``deadline`` (epoch seconds, ``time.time()`` based) bounds the whole call: an attempt gets at
    most the time left, and a retry whose wait would pass it is not made.
    """

    settings: ClientSettings
    request: ApiRequest
    deadline: float | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    attempt: int = 0
    #: When the first attempt started (epoch seconds).
    sent_at: float | None = None
    #: Times the attempt count restarted after progress (streaming mode).
    resumes: int = 0

    def next_timeout(self) -> float:
        """Seconds the next attempt may take in all; raises if the deadline has passed."""
        if self.sent_at is None:
            self.sent_at = time.time()
        if self.deadline is None:
            return self.settings.timeout
        left = self.deadline - time.time()
        if left <= 0:
            error = APITimeoutError(
                "The call's deadline passed before the request could be sent",
                method=self.request.method,
                url=self.request.url,
                batch_id=self.request.batch_id,
            )
            self._finish(error, retryable=True)
        return min(self.settings.timeout, left)

    def after_response(
        self, reply: Reply, parse: Callable[[Reply, ApiRequest, str], T]
    ) -> T | _Retry:
        """The parsed result, or a :class:`_Retry`; raises once retrying is pointless."""
        if not reply.is_success:
            return self.after_error_status(reply)
        secret = self.settings.api_key
        try:
            if reply.problem:
                raise invalid_response(reply, self.request, secret, reply.problem)
            return parse(reply, self.request, secret)
        except InvalidResponseError as invalid:
            # The server acted (2xx); only the answer is unreadable.
            self._stop_if_not_idempotent(invalid)
            return self._retry_or_raise(invalid, reply.headers, retryable=True)

    def after_error_status(self, reply: Reply) -> _Retry:
        error = error_from_response(reply, self.request, self.settings.api_key)
        status = reply.status_code
        if self.request.idempotent:
            retryable = is_retryable_status(status, reply.headers)
        else:
            if leaves_outcome_open(status):
                self._stop_if_not_idempotent(error)
            retryable = is_refusal_status(status, reply.headers)
        return self._retry_or_raise(error, reply.headers, retryable=retryable)

    def after_transport_error(self, exc: httpx.HTTPError) -> _Retry:
        error = error_from_transport(exc, self.request, self.settings.api_key)
        if isinstance(exc, LOCAL_ERRORS):
            return self._retry_or_raise(error, None, retryable=False)
        if not isinstance(exc, NOT_SENT_ERRORS):
            # A connection that was never made carried no request: safe to resend even a create.
            self._stop_if_not_idempotent(error)
        return self._retry_or_raise(error, None, retryable=True)

    def after_short_body(self, reply: Reply, problem: str) -> _Retry:
        """A streamed 2xx body ended (or cannot be decoded) before it was complete."""
        error = invalid_response(reply, self.request, self.settings.api_key, problem)
        return self._retry_or_raise(error, None, retryable=True)

    def after_progress(self) -> None:
        """A streamed body gave something new before it failed: that failure starts a new stall
        (at most :data:`MAX_STREAM_RESUMES` times per call)."""
        if self.resumes < MAX_STREAM_RESUMES:
            self.resumes += 1
            self.attempt = 0

    def _stop_if_not_idempotent(self, error: APIError) -> None:
        """A create whose outcome is open is never resent: raise that the outcome is unknown."""
        if not self.request.idempotent:
            self._finish(outcome_unknown(error, self.sent_at), retryable=False)

    def _retry_or_raise(
        self, error: APIError, headers: Mapping[str, str] | None, *, retryable: bool
    ) -> _Retry:
        if headers is not None:
            error.retry_after = self.backoff.delay(0, headers) if has_retry_after(headers) else None
        if not retryable or self.attempt >= self.settings.max_retries:
            self._finish(error, retryable=retryable)
        delay = self.backoff.delay(self.attempt, headers)
        if self.deadline is not None and time.time() + delay >= self.deadline:
            self._finish(error, retryable=retryable)
        self.attempt += 1
        log.warning(
            "Retrying %s %s in %.2fs (retry %d of %d) after: %s",
            self.request.method,
            self.request.url,
            delay,
            self.attempt,
            self.settings.max_retries,
            error.message,
        )
        return _Retry(delay)

    def _finish(self, error: APIError, *, retryable: bool) -> NoReturn:
        error.retryable = retryable
        if self.attempt:
            error.attempts = self.attempt + 1
        if self.resumes >= MAX_STREAM_RESUMES:
            error.message += (
                f" (the body had already been resumed after progress {self.resumes} times, "
                "the most one call resumes: it keeps breaking)"
            )
        raise error


@dataclass(frozen=True)
class _Whole(Generic[T]):
    """Whole mode: the body is read within the attempt's timeout, then parsed."""

    parse: Callable[[Reply, ApiRequest, str], T]


def send(
    client: httpx.Client,
    settings: ClientSettings,
    request: ApiRequest,
    parse: Callable[[Reply, ApiRequest, str], T],
    sleep: Callable[[float], None] = time.sleep,
    *,
    deadline: float | None = None,
) -> T:
    """Send ``request`` with retries; ``deadline`` (epoch seconds) bounds the whole call."""
    with closing(_send_loop(client, settings, request, _Whole(parse), sleep, deadline)) as results:
        return next(results)


def send_streaming(
    client: httpx.Client,
    settings: ClientSettings,
    request: ApiRequest,
    body: StreamedBody[T],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[T]:
    """Send ``request`` and yield the items ``body`` makes of its 2xx body (module docstring:
    the streaming rules). Closing the iterator closes the response."""
    return _send_loop(client, settings, request, body, sleep, None)


def _send_loop(
    client: httpx.Client,
    settings: ClientSettings,
    request: ApiRequest,
    mode: _Whole[T] | StreamedBody[T],
    sleep: Callable[[float], None],
    deadline: float | None,
) -> Generator[T, None, None]:
    """The sync send loop, for both modes (whole mode yields its one result)."""
    attempts = Attempts(settings, request, deadline)
    while True:
        budget.spend(settings)
        timeout = attempts.next_timeout()
        retry: _Retry | None = None
        try:
            if isinstance(mode, _Whole):
                reply = _exchange(client, settings, request, timeout)
                outcome = _after_whole(settings, attempts, reply, mode.parse)
                if not isinstance(outcome, _Retry):
                    yield outcome
                    return
                retry = outcome
            else:
                with closing(_stream_attempt(client, settings, attempts, mode, timeout)) as items:
                    for item in items:
                        if isinstance(item, _Retry):
                            retry = item
                        else:
                            yield item
        except httpx.HTTPError as exc:
            retry = attempts.after_transport_error(exc)
        if retry is None:
            return
        sleep(retry.delay)


async def asend(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    settings: ClientSettings,
    request: ApiRequest,
    parse: Callable[[Reply, ApiRequest, str], T],
    *,
    deadline: float | None = None,
) -> T:
    """Async :func:`send`; waiting for the ``gate`` is queueing and does not count as timeout."""
    loop = _asend_loop(client, gate, settings, request, _Whole(parse), deadline)
    async with aclosing(loop) as results:
        async for result in results:
            return result
    raise AssertionError("a whole-mode call ends with its result or an error")


def asend_streaming(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    settings: ClientSettings,
    request: ApiRequest,
    body: StreamedBody[T],
) -> AsyncGenerator[T, None]:
    """Async :func:`send_streaming`; the stream holds one place of the ``gate`` while open."""
    return _asend_loop(client, gate, settings, request, body, None)


async def _asend_loop(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    settings: ClientSettings,
    request: ApiRequest,
    mode: _Whole[T] | StreamedBody[T],
    deadline: float | None,
) -> AsyncGenerator[T, None]:
    """The async send loop, for both modes (whole mode yields its one result)."""
    attempts = Attempts(settings, request, deadline)
    while True:
        reply: Reply | None = None
        retry: _Retry | None = None
        try:
            # The gate keeps waiting requests in a cheap FIFO instead of the pool's wait list.
            async with gate:
                # Inside the gate: a 429 seen meanwhile still holds back every request queued.
                await budget.aspend(settings)
                timeout = attempts.next_timeout()
                if isinstance(mode, _Whole):
                    reply = await _aexchange(client, settings, request, timeout)
                else:
                    stream = _astream_attempt(client, settings, attempts, mode, timeout)
                    async with aclosing(stream) as items:
                        async for item in items:
                            if isinstance(item, _Retry):
                                retry = item
                            else:
                                yield item
            if reply is not None and isinstance(mode, _Whole):
                # Outside the gate: parsing holds no connection.
                outcome = _after_whole(settings, attempts, reply, mode.parse)
                if not isinstance(outcome, _Retry):
                    yield outcome
                    return
                retry = outcome
        except httpx.HTTPError as exc:
            retry = attempts.after_transport_error(exc)
        if retry is None:
            return
        await asyncio.sleep(retry.delay)


def _after_whole(
    settings: ClientSettings,
    attempts: Attempts,
    reply: Reply,
    parse: Callable[[Reply, ApiRequest, str], T],
) -> T | _Retry:
    _observe(settings, reply.status_code, reply.headers)
    return attempts.after_response(reply, parse)


def _observe(settings: ClientSettings, status_code: int, headers: Mapping[str, str]) -> None:
    """After each response: the budget learns from it, and it is counted."""
    budget.observe(settings, status_code, headers)
    metrics.api_response(settings.conn_id, status_code)


def _stream_attempt(
    client: httpx.Client,
    settings: ClientSettings,
    attempts: Attempts,
    body: StreamedBody[T],
    timeout: float,
) -> Generator[T | _Retry, None, None]:
    """One streaming attempt: the items of the body, then a :class:`_Retry` unless complete."""
    response = client.send(_build(client, settings, attempts.request, timeout), stream=True)
    try:
        _observe(settings, response.status_code, response.headers)
        if not response.is_success:
            ends = time.monotonic() + timeout
            reply = read_reply(response, settings.max_response_bytes, ends)
            yield attempts.after_error_status(reply)
            return
        stream = BodyStream(body, response, timeout)
        try:
            if stream.problem is None:
                for chunk in response.iter_raw():
                    yield from stream.feed(chunk)
                yield from stream.finish()
        except (httpx.HTTPError, zlib.error) as exc:
            yield _after_break(attempts, stream, exc)
            return
        yield from _after_end(attempts, stream)
    finally:
        response.close()


async def _astream_attempt(
    client: httpx.AsyncClient,
    settings: ClientSettings,
    attempts: Attempts,
    body: StreamedBody[T],
    timeout: float,
) -> AsyncGenerator[T | _Retry, None]:
    """Async :func:`_stream_attempt`."""
    request = _build(client, settings, attempts.request, timeout)
    response = await client.send(request, stream=True)
    try:
        _observe(settings, response.status_code, response.headers)
        if not response.is_success:
            yield attempts.after_error_status(await _aread_within(response, settings, timeout))
            return
        stream = BodyStream(body, response, timeout)
        try:
            if stream.problem is None:
                async for chunk in response.aiter_raw():
                    for item in stream.feed(chunk):
                        yield item
                for item in stream.finish():
                    yield item
        except (httpx.HTTPError, zlib.error) as exc:
            yield _after_break(attempts, stream, exc)
            return
        for retry in _after_end(attempts, stream):
            yield retry
    finally:
        await response.aclose()


def _after_break(attempts: Attempts, stream: BodyStream[Any], exc: Exception) -> _Retry:
    """A streamed body broke: a transport error goes on to the loop, an undecodable body is
    asked for again; either way, after progress, as a new stall."""
    if stream.items:
        attempts.after_progress()
    if isinstance(exc, httpx.HTTPError):
        raise exc
    return attempts.after_short_body(stream.head, "the compressed body cannot be decoded")


def _after_end(attempts: Attempts, stream: BodyStream[Any]) -> tuple[_Retry, ...]:
    """A streamed body ended cleanly: nothing more if complete, else a retry (a new stall after
    progress)."""
    problem = stream.missing()
    if problem is None:
        return ()
    if stream.items:
        attempts.after_progress()
    return (attempts.after_short_body(stream.head, problem),)


async def _aread_within(
    response: httpx.Response, settings: ClientSettings, timeout: float
) -> Reply:
    try:
        return await wait_within(aread_reply(response, settings.max_response_bytes), timeout)
    except asyncio.TimeoutError:
        raise httpx.ReadTimeout("the response was not complete when the timeout passed") from None


def _build(
    client: httpx.Client | httpx.AsyncClient,
    settings: ClientSettings,
    request: ApiRequest,
    timeout: float,
) -> httpx.Request:
    headers = {**settings.headers(), "accept-encoding": ACCEPT_ENCODING}
    if request.accept is not None:
        headers["accept"] = request.accept
    for name, value in headers.items():
        # Settings loaded from a connection are checked already; this guards settings built by
        # hand, before httpcore's debug trace or h11's error could quote the value.
        if header_value_problem(value, allow_inner_spaces=True):
            raise httpx.LocalProtocolError(f"the {name} header holds a value HTTP cannot carry")
    body: dict[str, Any] = {"json": request.json_body}
    if request.content is not None:
        # An explicit content-length: httpx then sends the pieces without chunked encoding.
        headers["content-type"] = request.content.content_type
        headers["content-length"] = str(request.content.length)
        pieces = request.content
        body = {"content": pieces.chunks() if isinstance(client, httpx.Client) else achunks(pieces)}
    try:
        return client.build_request(
            request.method,
            request.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, pool=None),
            **body,
        )
    except (UnicodeError, httpx.InvalidURL) as exc:
        # The message would quote the offending value: only the class is kept.
        raise httpx.LocalProtocolError(
            f"the request cannot be encoded ({type(exc).__name__})"
        ) from None


def _exchange(
    client: httpx.Client, settings: ClientSettings, request: ApiRequest, timeout: float
) -> Reply:
    """One attempt: connect, send and read everything within ``timeout`` seconds in all."""
    ends = time.monotonic() + timeout
    response = client.send(_build(client, settings, request, timeout), stream=True)
    try:
        return read_reply(response, settings.max_response_bytes, ends)
    finally:
        response.close()


async def _aexchange(
    client: httpx.AsyncClient, settings: ClientSettings, request: ApiRequest, timeout: float
) -> Reply:
    async def attempt() -> Reply:
        response = await client.send(_build(client, settings, request, timeout), stream=True)
        try:
            return await aread_reply(response, settings.max_response_bytes)
        finally:
            await response.aclose()

    try:
        return await wait_within(attempt(), timeout)
    except asyncio.TimeoutError:
        raise httpx.ReadTimeout("the response was not complete when the timeout passed") from None
