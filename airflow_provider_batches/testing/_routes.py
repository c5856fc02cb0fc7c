"""The Message Batches API routes: auth, version check, faults, latency, dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import time
from typing import Any

from ._http import HttpRequest, HttpResponse
from ._ids import new_request_id
from ._options import check_results_options
from ._responses import (
    JSONL_TYPE,
    body_response,
    error_response,
    fault_body_response,
    fault_status_response,
    json_response,
)
from ._results import default_answer_text
from ._state import FakeState
from ._target import Target
from ._types import AnswerHook, FakeApiError, Fault, RecordedRequest
from ._validation import VERSION_RE, parse_json_body, parse_limit, validate_create

BATCHES = ("v1", "messages", "batches")
REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})


def target_batch_id(target: Target) -> str | None:
    """The batch id a ``/v1/messages/batches/{id}[/...]`` path targets, else None."""
    segments = target.segments
    if len(segments) >= 4 and segments[:3] == BATCHES and segments[3]:
        return segments[3]
    return None


class ApiRoutes:
    """Serves ``/v1/*`` (and answers 404 for any other non-admin path)."""

    def __init__(self, state: FakeState, api_key: str) -> None:
        if not api_key:
            raise ValueError("api_key must be non-empty")
        self._state = state
        self._key = api_key.encode("utf-8")

    def _authenticated(self, request: HttpRequest) -> bool:
        candidates = []
        api_key = request.header("x-api-key")
        if api_key is not None:
            candidates.append(api_key.strip())
        authorization = request.header("authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                candidates.append(token.strip())
        return any(hmac.compare_digest(c.encode("utf-8", "replace"), self._key) for c in candidates)

    def _record(self, request: HttpRequest, target: Target, authenticated: bool) -> None:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            value = REDACTED if name in _SECRET_HEADERS else value
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._state.record(
            RecordedRequest(
                method=request.method,
                path=target.path,
                raw_target=target.raw,
                query=dict(target.query),
                headers=headers,
                authenticated=authenticated,
                client=request.client,
                received_at=time.time(),
                batch_id=target_batch_id(target),
                body_bytes=len(request.body),
                body_sha256=hashlib.sha256(request.body).hexdigest() if request.body else None,
            )
        )

    async def handle(self, request: HttpRequest, target: Target) -> HttpResponse:
        authenticated = self._authenticated(request)
        self._record(request, target, authenticated)
        if authenticated and self._state.rate_limit.enabled:
            # Counted at arrival, before faults are claimed: a rejected request uses none.
            allowed, limit_headers = self._state.rate_limit.take("api-key")
            if not allowed:
                await asyncio.sleep(self._state.latency)
                return error_response(
                    429,
                    "Number of request tokens has exceeded your per-minute rate limit.",
                    error_type="rate_limit_error",
                    extra=limit_headers,
                )
            response = await self._answer(request, target, authenticated)
            return dataclasses.replace(
                response, headers=response.headers + tuple(limit_headers.items())
            )
        return await self._answer(request, target, authenticated)

    async def _answer(
        self, request: HttpRequest, target: Target, authenticated: bool
    ) -> HttpResponse:
        batch_id = target_batch_id(target)
        # Faults are claimed in arrival order, before the latency sleep.
        endpoint = _endpoint(request.method, target, batch_id)
        fault = self._state.take_fault(request.method, batch_id, endpoint)
        latency = self._state.latency
        if latency > 0:
            await asyncio.sleep(latency)
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
            else:
                if fault.after_effect:
                    with contextlib.suppress(FakeApiError):
                        self._dispatch(request, target, authenticated)
                return self._faulted(fault, request, target, batch_id, authenticated)
        try:
            return self._dispatch(request, target, authenticated)
        except FakeApiError as exc:
            return error_response(
                exc.status, exc.message, error_type=exc.error_type, extra=exc.headers
            )

    def _faulted(
        self,
        fault: Fault,
        request: HttpRequest,
        target: Target,
        batch_id: str | None,
        authenticated: bool,
    ) -> HttpResponse:
        if fault.kind == "status":
            return fault_status_response(fault)
        if fault.kind == "drop":
            return HttpResponse(0, action="drop")
        base: HttpResponse | None = None
        if request.method == "GET":  # side-effect free: mangle the real answer if it is a 200
            try:
                base = self._dispatch(request, target, authenticated)
            except FakeApiError:
                base = None
            if base is not None and base.status != 200:
                base = None
        if base is None:
            base = json_response(self._state.placeholder_batch(batch_id))
        return fault_body_response(fault, base)

    def _dispatch(self, request: HttpRequest, target: Target, authenticated: bool) -> HttpResponse:
        segments = target.segments
        if not segments or segments[0] != "v1":
            raise FakeApiError(404, f"Not found: {target.path}")
        if not authenticated:
            raise FakeApiError(401, "invalid x-api-key")
        version = request.header("anthropic-version")
        if version is None:
            raise FakeApiError(400, "anthropic-version: header is required")
        if not VERSION_RE.match(version.strip()):
            raise FakeApiError(
                400, f"anthropic-version: invalid value {version!r}; expected a YYYY-MM-DD date"
            )
        method = request.method
        if segments == BATCHES:
            if method == "POST":
                return self._create(request)
            if method == "GET":
                return self._list(target)
            raise _not_allowed(method, "GET, POST")
        batch_id = target_batch_id(target)
        if batch_id is None or len(segments) > 5:
            raise FakeApiError(404, f"Not found: {target.path}")
        if len(segments) == 4:
            if method == "GET":
                return json_response(self._state.get_batch(batch_id))
            if method == "DELETE":
                return json_response(self._state.delete_batch(batch_id))
            raise _not_allowed(method, "GET, DELETE")
        action = segments[4]
        if action == "cancel":
            if method != "POST":
                raise _not_allowed(method, "POST")
            return json_response(self._state.cancel_batch(batch_id))
        if action == "results":
            if method != "GET":
                raise _not_allowed(method, "GET")
            spec = self._state.results(batch_id)
            return HttpResponse(
                200,
                (("content-type", JSONL_TYPE), ("request-id", new_request_id())),
                stream=spec.iter_chunks(),
            )
        raise FakeApiError(404, f"Not found: {target.path}")

    def _create(self, request: HttpRequest) -> HttpResponse:
        body = parse_json_body(request.body)
        checked = validate_create(body)
        hook = self._state.answer_hook
        batch = self._state.create_batch(
            num_requests=len(checked.custom_ids),
            ends_after=self._state.processing_seconds,
            custom_ids=checked.custom_ids,
            models=checked.models,
            contents=None if hook is None else _hooked_answers(hook, body["requests"]),
        )
        return json_response(batch)

    def _list(self, target: Target) -> HttpResponse:
        query = target.query
        limit = parse_limit(query)
        before_id = query.get("before_id") or None
        after_id = query.get("after_id") or None
        if before_id is not None and after_id is not None:
            raise FakeApiError(400, "before_id and after_id cannot both be given")
        page = self._state.list_batches(limit, before_id, after_id)
        hook = self._state.list_hook
        answer = None if hook is None else hook(dict(query), page)
        if answer is None:
            return json_response(page)
        if isinstance(answer, bytes):
            return body_response(200, answer, request_id=new_request_id())
        return json_response(answer)


def _endpoint(method: str, target: Target, batch_id: str | None) -> str | None:
    """What a fault's ``endpoint`` names: ``"list"``, or the segment after the batch id."""
    if batch_id is None:
        return "list" if target.segments == BATCHES and method == "GET" else None
    return target.segments[4] if len(target.segments) > 4 else None


def _not_allowed(method: str, allowed: str) -> FakeApiError:
    message = f"Method {method} is not allowed for this endpoint (allowed: {allowed})."
    return FakeApiError(405, message, headers={"allow": allowed})


def _hooked_answers(hook: AnswerHook, requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each request's answer blocks from ``hook``, the fake's own text where it gives None,
    checked as ``create_batch(contents=...)`` checks them (anything else answers a 500)."""
    answers: list[Any] = []
    for item in requests:
        custom_id = item["custom_id"]
        blocks = hook(custom_id, item["params"])
        answers.append(
            [{"type": "text", "text": default_answer_text(custom_id)}] if blocks is None else blocks
        )
    try:
        check_results_options(None, None, None, answers)
    except ValueError as error:
        raise FakeApiError(500, f"the answer hook returned unusable blocks: {error}") from None
    return [list(blocks) for blocks in answers]
