"""Typed results lines: ``{"custom_id": ..., "result": {...}}``, one per request of a batch.

Every model keeps fields the API adds later (``extra="allow"``). A result type this provider
does not know parses as :class:`UnknownResult` with all its data kept; a line that is not a
results line at all raises :class:`InvalidResultLineError`, never anything else.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from airflow_provider_batches.exceptions import InvalidResultLineError

KNOWN_RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
UNKNOWN = "unknown"


class _ResultModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CacheCreation(_ResultModel):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class Usage(_ResultModel):
    """Token usage of one message. Total input = input + cache creation + cache read."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None
    server_tool_use: dict[str, Any] | None = None
    service_tier: str | None = None


class Message(_ResultModel):
    """The assistant message of a succeeded request. ``content`` blocks are kept as sent."""

    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[Any]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage

    @property
    def text(self) -> str:
        """The text of every ``text`` block, joined."""
        return "".join(
            block["text"]
            for block in self.content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )


class ErrorDetail(_ResultModel):
    type: str
    message: str = ""


class ErrorEnvelope(_ResultModel):
    """``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``."""

    type: str = "error"
    error: ErrorDetail
    request_id: str | None = None


class SucceededResult(_ResultModel):
    type: Literal["succeeded"]
    message: Message


class ErroredResult(_ResultModel):
    type: Literal["errored"]
    error: ErrorEnvelope


class CanceledResult(_ResultModel):
    type: Literal["canceled"]


class ExpiredResult(_ResultModel):
    type: Literal["expired"]


class UnknownResult(_ResultModel):
    """A result type introduced after this provider: every field is kept (see :attr:`raw`)."""

    type: str | None = None

    @property
    def raw(self) -> dict[str, Any]:
        return self.model_dump()


def _result_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in KNOWN_RESULT_TYPES else UNKNOWN


Result = Annotated[
    Annotated[SucceededResult, Tag("succeeded")]
    | Annotated[ErroredResult, Tag("errored")]
    | Annotated[CanceledResult, Tag("canceled")]
    | Annotated[ExpiredResult, Tag("expired")]
    | Annotated[UnknownResult, Tag(UNKNOWN)],
    Discriminator(_result_tag),
]


class BatchResult(_ResultModel):
    """One results line. Match it to its request by ``custom_id``: the order is not defined."""

    custom_id: Annotated[str, Field(min_length=1)]
    result: Result

    @property
    def type(self) -> str:
        """``succeeded``, ``errored``, ``canceled``, ``expired``, or ``unknown``."""
        return _result_tag(self.result) if not isinstance(self.result, UnknownResult) else UNKNOWN


def parse_result_line(line: bytes, line_number: int = 0) -> BatchResult:
    """One JSONL line as a :class:`BatchResult`, or :class:`InvalidResultLineError`."""
    try:
        return BatchResult.model_validate_json(line)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'line'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:3]
        )
        where = f"line {line_number}" if line_number else "a line"
        raise InvalidResultLineError(
            f"Results {where} ({len(line)} bytes) is not a results line: {problems[:500]}. "
            "The results endpoint should serve one JSON object per line with 'custom_id' and "
            "'result'."
        ) from None
