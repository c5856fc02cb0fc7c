"""Send one API request with retries and turn the response into a result or a typed error.

The retry decisions live in :class:`Attempts`, shared by the sync and async send loops, so the
two loops differ only in how they send, read and sleep. Every attempt is bounded in time (the
connection's ``timeout`` covers connect, send and every read together) and in memory (bodies are
streamed and cut at ``max_response_bytes``, see :mod:`.response_body`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx

from airflow_provider_batches import budget
from airflow_provider_batches.exceptions import APIError, APITimeoutError, InvalidResponseError
from airflow_provider_batches.header_values import header_value_problem
from airflow_provider_batches.response_body import (
    ACCEPT_ENCODING,
    Reply,
    aread_reply,
    read_reply,
)
from airflow_provider_batches.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    is_refusal_status,
    is_retryable_status,
    leaves_outcome_open,
)
from airflow_provider_batches.settings import ClientSettings
from airflow_provider_batches.timeouts import wait_within
from airflow_provider_batches.transport_errors import (
    _MAX_MESSAGE_CHARS,
    LOCAL_ERRORS,
    NOT_SENT_ERRORS,
    ResponseLike,
    error_from_response,
    error_from_transport,
    has_retry_after,
    invalid_response,
    outcome_unknown,
    redact,
    response_json,
)

__all__ = [
    "_MAX_MESSAGE_CHARS",
    "ApiRequest",
    "Attempts",
    "Reply",
    "ResponseLike",
    "asend",
    "error_from_response",
    "error_from_transport",
    "invalid_response",
    "redact",
    "response_json",
    "send",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ApiRequest:
    """One logical API call; ``batch_id`` only labels errors and logs.

    ``idempotent=False`` (creating a batch) is resent only after an answer proving the server did
    not act on it (429, 529, or a connection that was never made); any other failure raises
    :class:`BatchCreateOutcomeUnknownError`.
    """

    method: str
    url: str
    batch_id: str | None = None
    json_body: Any = None
    idempotent: bool = True


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
    parse: Callable[[Reply, ApiRequest, str], Any]
    deadline: float | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    attempt: int = 0
    #: When the first attempt started (epoch seconds).
    sent_at: float | None = None

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

    def after_response(self, reply: Reply) -> Any:
        """The parsed result, or a :class:`_Retry`; raises once retrying is pointless."""
        secret = self.settings.api_key
        if reply.is_success:
            try:
                if reply.problem:
                    raise invalid_response(reply, self.request, secret, reply.problem)
                return self.parse(reply, self.request, secret)
            except InvalidResponseError as invalid:
                # The server acted (2xx); only the answer is unreadable.
                self._stop_if_not_idempotent(invalid)
                return self._retry_or_raise(invalid, reply.headers, retryable=True)
        error = error_from_response(reply, self.request, secret)
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
        raise error


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
    attempts = Attempts(settings, request, parse, deadline)
    while True:
        budget.spend(settings)
        timeout = attempts.next_timeout()
        try:
            reply = _exchange(client, settings, request, timeout)
            budget.observe(settings, reply.status_code, reply.headers)
            outcome = attempts.after_response(reply)
        except httpx.HTTPError as exc:
            outcome = attempts.after_transport_error(exc)
        if not isinstance(outcome, _Retry):
            return outcome  # type: ignore[no-any-return]
        sleep(outcome.delay)


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
    attempts = Attempts(settings, request, parse, deadline)
    while True:
        try:
            # The gate keeps waiting requests in a cheap FIFO instead of the pool's wait list.
            async with gate:
                # Inside the gate: a 429 seen meanwhile still holds back every request queued.
                await budget.aspend(settings)
                timeout = attempts.next_timeout()
                reply = await _aexchange(client, settings, request, timeout)
            budget.observe(settings, reply.status_code, reply.headers)
            outcome = attempts.after_response(reply)
        except httpx.HTTPError as exc:
            outcome = attempts.after_transport_error(exc)
        if not isinstance(outcome, _Retry):
            return outcome  # type: ignore[no-any-return]
        await asyncio.sleep(outcome.delay)


def _build(
    client: httpx.Client | httpx.AsyncClient,
    settings: ClientSettings,
    request: ApiRequest,
    timeout: float,
) -> httpx.Request:
    headers = {**settings.headers(), "accept-encoding": ACCEPT_ENCODING}
    for name, value in headers.items():
        # Settings loaded from a connection are checked already; this guards settings built by
        # hand, before httpcore's debug trace or h11's error could quote the value.
        if header_value_problem(value, allow_inner_spaces=True):
            raise httpx.LocalProtocolError(f"the {name} header holds a value HTTP cannot carry")
    try:
        return client.build_request(
            request.method,
            request.url,
            headers=headers,
            json=request.json_body,
            timeout=httpx.Timeout(timeout, pool=None),
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
