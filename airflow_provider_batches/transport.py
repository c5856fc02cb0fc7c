"""Send one API request with retries and turn the response into a result or a typed error.

The retry decisions live in :class:`Attempts`, shared by the sync and async send loops, so the
two loops differ only in how they send and sleep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from airflow_provider_batches import budget
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    status_error_class,
)
from airflow_provider_batches.retry import DEFAULT_BACKOFF, Backoff, is_retryable_status
from airflow_provider_batches.settings import ClientSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_MESSAGE_CHARS = 500
_MAX_REQUEST_ID_CHARS = 200


@dataclass(frozen=True)
class ApiRequest:
    """One logical API call; ``batch_id`` only labels errors and logs.

    ``idempotent=False`` (creating a batch) is not resent after a failure that leaves unknown
    whether the server acted on it: a timeout, a dropped connection, an unreadable success body.
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
    """Decides, after each attempt, whether to return, raise, or retry after a delay."""

    settings: ClientSettings
    request: ApiRequest
    parse: Callable[[httpx.Response, ApiRequest, str], Any]
    backoff: Backoff = DEFAULT_BACKOFF
    attempt: int = 0

    def after_response(self, response: httpx.Response) -> Any:
        """The parsed result, or a :class:`_Retry`; raises once retrying is pointless."""
        if response.is_success:
            try:
                return self.parse(response, self.request, self.settings.api_key)
            except InvalidResponseError as error:
                return self._retry_or_raise(
                    error, response.headers, retryable=self.request.idempotent
                )
        status_error = error_from_response(response, self.request, self.settings.api_key)
        retryable = is_retryable_status(response.status_code, response.headers)
        return self._retry_or_raise(status_error, response.headers, retryable=retryable)

    def after_transport_error(self, exc: httpx.HTTPError) -> _Retry:
        error = error_from_transport(exc, self.request, self.settings.api_key)
        return self._retry_or_raise(error, None, retryable=self.request.idempotent)

    def _retry_or_raise(
        self, error: APIError, headers: Mapping[str, str] | None, *, retryable: bool
    ) -> _Retry:
        error.retryable = retryable
        if headers is not None:
            error.retry_after = (
                self.backoff.delay(0, headers) if _has_retry_after(headers) else None
            )
        if not retryable or self.attempt >= self.settings.max_retries:
            if self.attempt:
                error.attempts = self.attempt + 1
            raise error
        delay = self.backoff.delay(self.attempt, headers)
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


def send(
    client: httpx.Client,
    settings: ClientSettings,
    request: ApiRequest,
    parse: Callable[[httpx.Response, ApiRequest, str], T],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    attempts = Attempts(settings, request, parse)
    while True:
        budget.spend(settings)
        try:
            response = client.request(
                request.method, request.url, headers=settings.headers(), json=request.json_body
            )
            budget.observe(settings, response.status_code, response.headers)
            outcome = attempts.after_response(response)
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
    parse: Callable[[httpx.Response, ApiRequest, str], T],
) -> T:
    attempts = Attempts(settings, request, parse)
    while True:
        try:
            # The gate keeps waiting requests in a cheap FIFO instead of the pool's wait list.
            async with gate:
                # Inside the gate: a 429 seen meanwhile still holds back every request queued.
                await budget.aspend(settings)
                response = await client.request(
                    request.method,
                    request.url,
                    headers=settings.headers(),
                    json=request.json_body,
                )
            budget.observe(settings, response.status_code, response.headers)
            outcome = attempts.after_response(response)
        except httpx.HTTPError as exc:
            outcome = attempts.after_transport_error(exc)
        if not isinstance(outcome, _Retry):
            return outcome  # type: ignore[no-any-return]
        await asyncio.sleep(outcome.delay)


def redact(text: str, secret: str) -> str:
    """Remove the API key from text that came from outside (a hostile or echoing server)."""
    if secret and secret in text:
        text = text.replace(secret, "[redacted]")
    return text


def error_from_response(response: httpx.Response, request: ApiRequest, secret: str) -> APIError:
    status = response.status_code
    body = _json_or_none(response)
    error_type: str | None = None
    message: str | None = None
    request_id = response.headers.get("request-id")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error_type = _short_str(error.get("type"), secret)
            message = _short_str(error.get("message"), secret)
        request_id = request_id or _short_str(body.get("request_id"), secret)
    if message is None:
        message = response.reason_phrase or "error"
        if body is None and response.content:
            message += f" (non-JSON body: {response.headers.get('content-type', 'unknown type')})"
    return status_error_class(status)(
        redact(message, secret),
        method=request.method,
        url=request.url,
        batch_id=request.batch_id,
        status_code=status,
        error_type=error_type,
        request_id=_short_str(request_id, secret, _MAX_REQUEST_ID_CHARS) or None,
    )


def error_from_transport(exc: httpx.HTTPError, request: ApiRequest, secret: str) -> APIError:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    kind = "timed out" if cls is APITimeoutError else "failed"
    detail = redact(str(exc), secret) or type(exc).__name__
    return cls(
        f"Request {kind} without a response ({type(exc).__name__}: {detail[:_MAX_MESSAGE_CHARS]})",
        method=request.method,
        url=request.url,
        batch_id=request.batch_id,
    )


def invalid_response(
    response: httpx.Response, request: ApiRequest, secret: str, problem: str
) -> InvalidResponseError:
    return InvalidResponseError(
        redact(f"HTTP {response.status_code} response is not valid: {problem}", secret)[
            : _MAX_MESSAGE_CHARS * 2
        ],
        method=request.method,
        url=request.url,
        batch_id=request.batch_id,
        status_code=response.status_code,
        request_id=_short_str(response.headers.get("request-id"), secret, _MAX_REQUEST_ID_CHARS)
        or None,
    )


def response_json(response: httpx.Response, request: ApiRequest, secret: str) -> Any:
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type.lower():
        raise invalid_response(
            response, request, secret, f"expected JSON, got content-type {content_type!r}"
        )
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError) as exc:
        raise invalid_response(
            response, request, secret, f"body is not valid JSON ({str(exc)[:200]})"
        ) from None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def _has_retry_after(headers: Mapping[str, str]) -> bool:
    return "retry-after" in headers or "retry-after-ms" in headers


def _short_str(value: Any, secret: str, limit: int = _MAX_MESSAGE_CHARS) -> str | None:
    """A string from the response, without the API key, then cut to ``limit`` characters."""
    if not isinstance(value, str):
        return None
    return redact(value, secret)[:limit]
