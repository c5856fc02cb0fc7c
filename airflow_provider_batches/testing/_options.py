"""Checks of the options a test passes to the fake's state: seconds, batch ids, results shape."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._results import MAX_RESPONSE_CHARS

_FORBIDDEN_ID_CHARS = set("/?#")


def validate_batch_id(batch_id: str) -> None:
    """Reject ids that would not survive as one URL path segment."""
    if not isinstance(batch_id, str) or not batch_id:
        raise ValueError("batch_id must be a non-empty string")
    bad = [c for c in batch_id if c in _FORBIDDEN_ID_CHARS or c.isspace() or not c.isprintable()]
    if bad:
        raise ValueError(f"batch_id {batch_id!r} contains characters not allowed in an id: {bad}")


def optional_seconds(name: str, value: float | None) -> float | None:
    """``value`` as a float of seconds (finite, >= 0), or None."""
    if value is None:
        return None
    return required_seconds(name, value)


def required_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def check_results_options(
    response_chars: int | None,
    error_types: Sequence[str] | None,
    results_base_url: str | None,
    contents: Sequence[Sequence[dict[str, Any]]] | None = None,
) -> None:
    if response_chars is not None and (
        isinstance(response_chars, bool)
        or not isinstance(response_chars, int)
        or not 0 <= response_chars <= MAX_RESPONSE_CHARS
    ):
        raise ValueError(
            f"response_chars must be an integer from 0 to {MAX_RESPONSE_CHARS}, "
            f"got {response_chars!r}"
        )
    if error_types is not None and (
        isinstance(error_types, str)
        or not error_types
        or not all(isinstance(t, str) and t for t in error_types)
    ):
        raise ValueError(f"error_types must be a non-empty list of strings, got {error_types!r}")
    if results_base_url is not None and (
        not isinstance(results_base_url, str) or "://" not in results_base_url
    ):
        raise ValueError(f"results_base_url must be an http(s) URL, got {results_base_url!r}")
    if contents is not None and (
        isinstance(contents, (str, dict))
        or not contents
        or not all(
            isinstance(blocks, (list, tuple)) and all(isinstance(b, dict) for b in blocks)
            for blocks in contents
        )
    ):
        raise ValueError(
            "contents must be a non-empty list of content-block lists (each block a JSON "
            f"object such as {{'type': 'text', 'text': '...'}}), got {str(contents)[:200]}"
        )
