"""Builders for the API's JSON, JSONL, error and injected-fault responses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ._http import HttpResponse, ResponseAction
from ._ids import new_request_id
from ._types import Fault, default_error_type

JSON_TYPE = "application/json"
JSONL_TYPE = "application/x-jsonl"
HTML_BAD_GATEWAY = b"<html><body>Bad gateway</body></html>"
#: Body bytes sent before a ``reset``/``truncated`` fault cuts a streamed body.
STREAM_CUT_DEFAULT = 32 * 1024


def dump_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def body_response(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    content_type: str = JSON_TYPE,
    extra: Mapping[str, str] | None = None,
    action: ResponseAction = "send",
) -> HttpResponse:
    """A response with ``content-type``, ``request-id`` (unless None) and ``extra`` headers."""
    headers = [("content-type", content_type)]
    if request_id is not None:
        headers.append(("request-id", request_id))
    headers.extend((extra or {}).items())
    return HttpResponse(status, tuple(headers), body, action)


def json_response(value: Any, *, status: int = 200, request_id: str | None = None) -> HttpResponse:
    return body_response(status, dump_json(value), request_id=request_id or new_request_id())


def error_response(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    request_id: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> HttpResponse:
    """The API's error shape, with the same request id in the body and the header."""
    request_id = request_id or new_request_id()
    payload = {
        "type": "error",
        "error": {"type": error_type or default_error_type(status), "message": message},
        "request_id": request_id,
    }
    return body_response(status, dump_json(payload), request_id=request_id, extra=extra)


_DEFAULT_MESSAGES = {
    429: "Number of requests has exceeded your rate limit.",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
    529: "Overloaded",
}


def fault_status_response(fault: Fault) -> HttpResponse:
    message = fault.message or _DEFAULT_MESSAGES.get(
        fault.status, f"Injected fault: HTTP {fault.status}"
    )
    return error_response(fault.status, message, error_type=fault.error_type, extra=fault.headers)


def fault_body_response(fault: Fault, base: HttpResponse) -> HttpResponse:
    """The response for the body-mangling fault kinds, built from the ``base`` response."""
    request_id = new_request_id()
    if base.stream is not None and fault.kind in ("truncated", "reset"):
        return HttpResponse(
            base.status,
            base.headers,
            stream=base.stream,
            action="reset" if fault.kind == "reset" else "send",
            cut_after=STREAM_CUT_DEFAULT if fault.after_bytes is None else fault.after_bytes,
        )
    if fault.kind == "html":
        return body_response(
            200, HTML_BAD_GATEWAY, content_type="text/html; charset=utf-8", extra=fault.headers
        )
    if fault.kind == "body":
        return body_response(200, dump_json(fault.body), request_id=request_id, extra=fault.headers)
    content_type = dict(base.headers).get("content-type", JSON_TYPE)
    half = len(base.body) // 2 if fault.after_bytes is None else fault.after_bytes
    if fault.kind == "truncated":
        cut = base.body[:half]
        return body_response(
            200, cut, request_id=request_id, content_type=content_type, extra=fault.headers
        )
    # "reset": the full body is declared, part of it is sent, then the connection closes.
    response = body_response(
        200,
        base.body,
        request_id=request_id,
        content_type=content_type,
        extra=fault.headers,
        action="reset",
    )
    return dataclasses.replace(response, cut_after=half)
