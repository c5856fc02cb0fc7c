"""The results file of one fake batch, generated lazily line by line.

Nothing is kept per request but the shuffled order (one int each), so a batch of 100,000 results
of several hundred MB streams in constant memory. Every line is a pure function of the batch id
and the request index: two reads of the same batch serve the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_ERROR_TYPES: tuple[str, ...] = ("invalid_request_error",)
CHUNK_BYTES = 256 * 1024
_SENTENCE = (
    "The batch finished processing and this answer was generated for a request that asked "
    "about data pipelines, retries, object storage, manifests, token usage and streaming "
    "results in constant memory while the scheduler keeps running other tasks. "
)
# One long filler text (about 1 MB); each response is a slice of it, so padding is cheap.
_FILLER = _SENTENCE * (1_001_000 // len(_SENTENCE))
MAX_RESPONSE_CHARS = 1_000_000


def default_answer_text(custom_id: str) -> str:
    """The fake's own answer to a request it was given no content for."""
    return f"Fake response for {custom_id}."


@dataclass(frozen=True)
class ResultsSpec:
    """What the results of one batch look like.

    ``kinds``: the result type of each request, in request order. ``response_chars``: length of
    each succeeded message's text (None = a short sentence). ``error_types``: the ``error.type``
    values errored requests cycle through. ``contents``: the succeeded messages' content blocks,
    cycled by request index, instead of the generated text.
    """

    batch_id: str
    kinds: Sequence[str]
    custom_ids: Sequence[str] | None = None
    models: Sequence[str] | None = None
    response_chars: int | None = None
    error_types: Sequence[str] = DEFAULT_ERROR_TYPES
    contents: Sequence[Sequence[dict[str, Any]]] | None = None

    def custom_id(self, index: int) -> str:
        return self.custom_ids[index] if self.custom_ids is not None else f"request-{index}"

    def order(self) -> list[int]:
        """Request indexes in serving order: shuffled, the same on every read."""
        order = list(range(len(self.kinds)))
        random.Random(self.batch_id).shuffle(order)
        return order

    def line(self, index: int) -> bytes:
        line = {"custom_id": self.custom_id(index), "result": self.result(index)}
        return json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n"

    def line_bytes_by_index(self) -> list[bytes]:
        """Every line in request order (small batches, for tests)."""
        return [self.line(index) for index in range(len(self.kinds))]

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The JSONL body in chunks of about ``chunk_bytes`` (whole lines)."""
        pending: list[bytes] = []
        size = 0
        for index in self.order():
            line = self.line(index)
            pending.append(line)
            size += len(line)
            if size >= chunk_bytes:
                yield b"".join(pending)
                pending.clear()
                size = 0
        if pending:
            yield b"".join(pending)

    def result(self, index: int) -> dict[str, Any]:
        kind = self.kinds[index]
        if kind == "succeeded":
            return {"type": "succeeded", "message": self._message(index)}
        if kind == "errored":
            return {"type": "errored", "error": self._error(index)}
        return {"type": kind}

    def _error(self, index: int) -> dict[str, Any]:
        error_type = self.error_types[index % len(self.error_types)]
        return {
            "type": "error",
            "error": {
                "type": error_type,
                "message": f"Fake error for request {self.custom_id(index)!r}",
            },
            "request_id": "req_" + _stable_id(f"{self.batch_id}/error/{index}"),
        }

    def _message(self, index: int) -> dict[str, Any]:
        custom_id = self.custom_id(index)
        text = default_answer_text(custom_id)
        if self.response_chars is not None:
            start = (index * 7919) % 1000
            padding = _FILLER[start : start + max(0, self.response_chars - len(text) - 1)]
            text = f"{text} {padding}" if padding else text
        content: list[Any] = [{"type": "text", "text": text}]
        if self.contents:
            content = list(self.contents[index % len(self.contents)])
            text = json.dumps(content)
        model = self.models[index] if self.models is not None else DEFAULT_MODEL
        cache_read = (index % 3 == 0) * (1024 + index % 500)
        cache_5m = (index % 5 == 1) * (512 + index % 100)
        cache_1h = (index % 7 == 2) * 256
        return {
            "id": "msg_" + _stable_id(f"{self.batch_id}/{index}"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "max_tokens" if index % 11 == 10 else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10 + index % 17,
                "output_tokens": max(1, len(text) // 4),
                "cache_creation_input_tokens": cache_5m + cache_1h,
                "cache_read_input_tokens": cache_read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": cache_5m,
                    "ephemeral_1h_input_tokens": cache_1h,
                },
                "service_tier": "batch",
            },
        }


def _stable_id(seed: str) -> str:
    """24 characters derived from ``seed`` (hex: cheap enough for 100,000 lines per read)."""
    return hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()
