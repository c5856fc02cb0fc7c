"""Control routes under ``/_fake/`` for a fake running in another process.

No auth, never faulted, never delayed, not recorded in the request log.
"""

from __future__ import annotations

from typing import Any

from ._http import HttpRequest, HttpResponse
from ._responses import error_response, json_response
from ._state import FakeState
from ._target import Target
from ._types import FakeApiError, Fault
from ._validation import parse_json_body

CREATE_FIELDS = frozenset(
    {
        "num_requests",
        "ends_after",
        "outcomes",
        "batch_id",
        "expires_after",
        "archive_after",
        "cancel_delay",
        "custom_ids",
        "models",
        "response_chars",
        "error_types",
        "results_base_url",
        "contents",
    }
)
BULK_FIELDS = frozenset({"count", "ends_after_min", "ends_after_max", "num_requests"})


def _object(request: HttpRequest, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    body = parse_json_body(request.body)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise FakeApiError(400, "Request body must be a JSON object.")
    if allowed is not None:
        unknown = set(body) - allowed
        if unknown:
            raise FakeApiError(400, f"Unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return body


class AdminRoutes:
    def __init__(self, state: FakeState) -> None:
        self._state = state

    async def handle(self, request: HttpRequest, target: Target) -> HttpResponse:
        try:
            return self._dispatch(request, target)
        except FakeApiError as exc:
            return error_response(exc.status, exc.message, error_type=exc.error_type)
        except (ValueError, TypeError) as exc:
            return error_response(400, str(exc))

    def _dispatch(self, request: HttpRequest, target: Target) -> HttpResponse:
        route = (request.method, *target.segments[1:])
        state = self._state
        match route:
            case ("GET", "health"):
                return json_response({"ok": True, "base_url": state.base_url})
            case ("POST", "batches"):
                return json_response(state.create_batch(**_object(request, CREATE_FIELDS)))
            case ("POST", "batches", "bulk"):
                ids, ends_at = state.create_bulk(**_object(request, BULK_FIELDS))
                return json_response({"ids": ids, "ends_at": ends_at})
            case ("GET", "batches", batch_id):
                return json_response(state.get_batch(batch_id))
            case ("POST", "batches", batch_id, "end"):
                return json_response(state.end_batch(batch_id))
            case ("POST", "batches", batch_id, "cancel"):
                return json_response(state.cancel_batch(batch_id))
            case ("POST", "batches", batch_id, "status_override"):
                status = _object(request, frozenset({"status"})).get("status")
                if status is not None and not isinstance(status, str):
                    raise FakeApiError(400, "status must be a string or null")
                state.set_status_override(batch_id, status)
                return json_response(state.get_batch(batch_id))
            case ("POST", "faults"):
                fault = Fault.from_dict(_object(request))
                state.inject_fault(fault)
                return json_response({"ok": True, "pending_faults": state.pending_faults()})
            case ("DELETE", "faults"):
                state.clear_faults()
                return json_response({"ok": True, "pending_faults": 0})
            case ("GET", "stats"):
                return json_response(state.stats())
            case ("GET", "requests"):
                return json_response([r.to_dict() for r in state.recorded()])
            case ("GET", "request_count"):
                query = target.query
                count = state.request_count(query.get("batch_id"), query.get("method"))
                return json_response({"count": count})
            case ("POST", "latency"):
                seconds = _object(request, frozenset({"seconds"})).get("seconds")
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                    raise FakeApiError(400, "seconds must be a number")
                state.set_latency(float(seconds))
                return json_response({"ok": True, "latency": state.latency})
            case ("POST", "reset"):
                state.reset()
                return json_response({"ok": True})
        raise FakeApiError(404, f"Unknown admin route: {request.method} {target.path}")
