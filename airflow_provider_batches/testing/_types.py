"""Value types shared by the fake Batches API: faults, recorded requests, API errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

FaultKind = Literal["status", "delay", "drop", "reset", "truncated", "html", "body"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
#: ``hook(query, page)``: the list request's query parameters and the page the fake would send;
#: returns None (send that page), a JSON value or raw bytes to send with status 200 instead, or
#: raises :class:`FakeApiError` to answer that error.
ListHook = Callable[[dict[str, str], dict[str, Any]], Any]
#: ``hook(custom_id, params)``: the content blocks of that request's succeeded answer, or None
#: for the fake's own text answer.
AnswerHook = Callable[[str, dict[str, Any]], Sequence[dict[str, Any]] | None]

#: ``error.type`` the real API uses for each HTTP status (see the wire contract's error table).
DEFAULT_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "api_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def default_error_type(status: int) -> str:
    """The ``error.type`` the API sends with ``status``; ``api_error`` when unknown."""
    if status in DEFAULT_ERROR_TYPES:
        return DEFAULT_ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


class FakeApiError(Exception):
    """An API error the fake answers with: HTTP status, ``error.type`` and message."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or default_error_type(status)
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Fault:
    """A failure to inject into the next matching API request(s).

    ``times`` is how many matching requests it affects (-1 = forever); ``batch_id``,
    ``method`` and ``endpoint`` (the path's last segment after the batch id: ``"results"`` or
    ``"cancel"``; or ``"list"``: ``GET /v1/messages/batches`` only) restrict which requests
    match (None = any API request).
    ``after_bytes``: for ``reset`` and ``truncated``, how many body bytes are sent before the
    cut (default: half the body; for a streamed body such as results, 32 KiB).
    ``after_effect=True`` lets the request take effect first (a create creates, a cancel
    cancels) and then fails the answer: the client cannot know that the server acted.
    """

    kind: FaultKind
    status: int = 500
    error_type: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    times: int = 1
    batch_id: str | None = None
    method: str | None = None
    endpoint: str | None = None
    after_bytes: int | None = None
    after_effect: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if not 200 <= self.status <= 599:
            raise ValueError(
                f"fault status must be a final HTTP status (200-599), got {self.status}"
            )
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ValueError(f"fault delay must be >= 0, got {self.delay}")
        if self.times == 0 or self.times < -1:
            raise ValueError(f"fault times must be >= 1 or -1 (forever), got {self.times}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()):
            raise ValueError("fault headers must map str to str")
        if self.after_bytes is not None and (
            isinstance(self.after_bytes, bool)
            or not isinstance(self.after_bytes, int)
            or self.after_bytes < 0
        ):
            raise ValueError(f"fault after_bytes must be an integer >= 0, got {self.after_bytes}")
        if self.method is not None:
            object.__setattr__(self, "method", self.method.upper())
        if self.after_effect and self.kind == "delay":
            raise ValueError("after_effect applies to failing faults, not to 'delay'")

    def matches(self, method: str, batch_id: str | None, endpoint: str | None = None) -> bool:
        """Whether this fault applies to a request with ``method`` targeting ``batch_id``."""
        if self.method is not None and self.method != method.upper():
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return self.batch_id is None or self.batch_id == batch_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the admin client)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build from JSON, rejecting unknown fields and wrong types with ValueError."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if "kind" not in data:
            raise ValueError("fault field 'kind' is required")
        _check_type(data, "status", int)
        _check_type(data, "times", int)
        _check_type(data, "delay", (int, float))
        _check_type(data, "headers", dict)
        _check_type(data, "after_bytes", (int, type(None)))
        for name in ("error_type", "message", "batch_id", "method", "endpoint"):
            _check_type(data, name, (str, type(None)))
        if "after_effect" in data and not isinstance(data["after_effect"], bool):
            raise ValueError(f"fault field 'after_effect' must be a bool: {data['after_effect']!r}")
        values = dict(data)
        if "delay" in values:
            values["delay"] = float(values["delay"])
        return cls(**values)


def _check_type(data: dict[str, Any], name: str, types: type | tuple[type, ...]) -> None:
    if name not in data:
        return
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"fault field {name!r} has the wrong type: {value!r}")


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the fake received it. Credential header values are redacted."""

    method: str
    path: str
    raw_target: str
    query: dict[str, str]
    headers: dict[str, str]
    authenticated: bool
    client: tuple[str, int]
    received_at: float
    batch_id: str | None = None
    #: Size and sha256 (hex) of the request body as received: what a client sent, compared
    #: without the fake keeping bodies (``None`` for an empty body).
    body_bytes: int = 0
    body_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the admin routes)."""
        data = asdict(self)
        data["client"] = list(self.client)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordedRequest:
        """Inverse of :meth:`to_dict`."""
        host, port = cast("list[Any]", data["client"])
        return cls(
            method=str(data["method"]),
            path=str(data["path"]),
            raw_target=str(data["raw_target"]),
            query={str(k): str(v) for k, v in dict(data["query"]).items()},
            headers={str(k): str(v) for k, v in dict(data["headers"]).items()},
            authenticated=bool(data["authenticated"]),
            client=(str(host), int(port)),
            received_at=float(data["received_at"]),
            batch_id=None if data.get("batch_id") is None else str(data["batch_id"]),
            body_bytes=int(data.get("body_bytes", 0)),
            body_sha256=None if data.get("body_sha256") is None else str(data["body_sha256"]),
        )
