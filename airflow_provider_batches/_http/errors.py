"""Turn a failed exchange into a typed :class:`APIError` that never holds the API key."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from airflow_provider_batches._http.request import ApiRequest, ResponseLike
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BatchCreateOutcomeUnknownError,
    InvalidResponseError,
    status_error_class,
)

MAX_MESSAGE_CHARS = 500
_MAX_REQUEST_ID_CHARS = 200
_URL_USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#@]*@")

#: Raised before a byte is sent, for a reason that sending again cannot fix.
LOCAL_ERRORS = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
#: Raised before the request could have reached the server: a create may be sent again.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def redact(text: str, secret: str) -> str:
    """Remove the API key, raw or escaped, and any URL user info from text shown to people.

    Text from outside (an echoing server, an h11 error quoting a header) may carry the key in
    its ``repr``, JSON, percent-encoded or ``\\n``-escaped form rather than raw.
    """
    if secret:
        for form in _secret_forms(secret):
            if form in text:
                text = text.replace(form, "[redacted]")
    return _URL_USERINFO_RE.sub(r"\g<scheme>[redacted]@", text)


@functools.lru_cache(maxsize=16)
def _secret_forms(secret: str) -> tuple[str, ...]:
    utf8 = secret.encode("utf-8", "backslashreplace")
    forms = {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        repr(utf8)[2:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    stripped = secret.strip()
    if stripped and stripped != secret:
        forms |= set(_secret_forms(stripped))
    # Longest first, so a form that contains another is replaced whole.
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


def outcome_unknown(error: APIError, sent_at: float | None) -> BatchCreateOutcomeUnknownError:
    """The error for a create that may or may not have made a batch."""
    unknown = BatchCreateOutcomeUnknownError(
        f"{error.message} ({type(error).__name__}). Whether the batch was created is unknown; "
        "the request was not sent again, since that could create and bill a second batch. "
        "List the batches (newest first) to look for it before creating it again",
        sent_at=sent_at,
        method=error.method,
        url=error.url,
        batch_id=error.batch_id,
        status_code=error.status_code,
        error_type=error.error_type,
        request_id=error.request_id,
    )
    unknown.retry_after = error.retry_after
    return unknown


def error_from_response(response: ResponseLike, request: ApiRequest, secret: str) -> APIError:
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
            message += (
                f" (non-JSON body: {response.headers.get('content-type', 'unknown type')[:100]})"
            )
    problem = getattr(response, "problem", None)
    if problem:
        message += f" (error body not read in full: {problem})"
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
    if isinstance(exc, LOCAL_ERRORS):
        # Its text quotes the offending header value, which may be the key: never shown.
        return APIConnectionError(
            f"The request could not be sent ({type(exc).__name__}): a value from the connection "
            "(the API key in Password, an extra sent as a header, or the base URL in Host) is "
            "not valid in an HTTP request. Fix the connection; sending again cannot help",
            method=request.method,
            url=request.url,
            batch_id=request.batch_id,
        )
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    kind = "timed out" if cls is APITimeoutError else "failed"
    detail = redact(str(exc), secret) or type(exc).__name__
    return cls(
        f"Request {kind} without a response ({type(exc).__name__}: {detail[:MAX_MESSAGE_CHARS]})",
        method=request.method,
        url=request.url,
        batch_id=request.batch_id,
    )


def invalid_response(
    response: ResponseLike, request: ApiRequest, secret: str, problem: str
) -> InvalidResponseError:
    return InvalidResponseError(
        redact(f"HTTP {response.status_code} response is not valid: {problem}", secret)[
            : MAX_MESSAGE_CHARS * 2
        ],
        method=request.method,
        url=request.url,
        batch_id=request.batch_id,
        status_code=response.status_code,
        request_id=_short_str(response.headers.get("request-id"), secret, _MAX_REQUEST_ID_CHARS)
        or None,
    )


def response_json(response: ResponseLike, request: ApiRequest, secret: str) -> Any:
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


def _json_or_none(response: ResponseLike) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        return None


def has_retry_after(headers: Mapping[str, str]) -> bool:
    return "retry-after" in headers or "retry-after-ms" in headers


def _short_str(value: Any, secret: str, limit: int = MAX_MESSAGE_CHARS) -> str | None:
    """A string from the response, without the API key, then cut to ``limit`` characters."""
    if not isinstance(value, str):
        return None
    return redact(value, secret)[:limit]
