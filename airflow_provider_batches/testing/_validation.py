"""Validation of request bodies and query strings, with the API's style of messages."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ._batches import MAX_REQUESTS
from ._types import FakeApiError

VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CUSTOM_ID = 64


@dataclass(frozen=True)
class CreateRequest:
    custom_ids: list[str]
    models: list[str]


def parse_json_body(body: bytes) -> Any:
    """Decode a JSON request body or raise a 400.

    orjson parses the bytes as they are (a 256 MB create body is not copied into a str first);
    a body it refuses is read by ``json`` for the error message (and for what ``json`` accepts
    that orjson does not, such as ``NaN``).
    """
    import orjson

    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FakeApiError(400, f"Request body is not valid JSON: {exc}") from None


def _bad(location: str, message: str) -> FakeApiError:
    return FakeApiError(400, f"{location}: {message}")


def validate_create(body: Any) -> CreateRequest:
    """Check a create-batch body: ``{"requests": [{"custom_id", "params"}, ...]}``."""
    if not isinstance(body, dict):
        raise FakeApiError(400, "Request body must be a JSON object.")
    if "requests" not in body:
        raise _bad("requests", "Field required")
    requests = body["requests"]
    if not isinstance(requests, list):
        raise _bad("requests", "Input should be a valid list")
    if not requests:
        raise _bad("requests", "List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_REQUESTS:
        raise _bad(
            "requests",
            f"List should have at most {MAX_REQUESTS} items after validation, not {len(requests)}",
        )
    custom_ids: list[str] = []
    models: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(requests):
        where = f"requests.{index}"
        if not isinstance(item, dict):
            raise _bad(where, "Input should be a valid dictionary")
        custom_id = _custom_id(item, where)
        if custom_id in seen:
            raise _bad(
                f"{where}.custom_id",
                f"Duplicate custom_id {custom_id!r}; custom_id values must be unique "
                "within a Message Batch",
            )
        seen.add(custom_id)
        custom_ids.append(custom_id)
        models.append(_params(item, f"{where}.params"))
    return CreateRequest(custom_ids=custom_ids, models=models)


def _custom_id(item: dict[str, Any], where: str) -> str:
    if "custom_id" not in item:
        raise _bad(f"{where}.custom_id", "Field required")
    value = item["custom_id"]
    if not isinstance(value, str):
        raise _bad(f"{where}.custom_id", "Input should be a valid string")
    if not value:
        raise _bad(f"{where}.custom_id", "String should have at least 1 character")
    if len(value) > MAX_CUSTOM_ID:
        raise _bad(f"{where}.custom_id", f"String should have at most {MAX_CUSTOM_ID} characters")
    return value


def _params(item: dict[str, Any], where: str) -> str:
    """Check the messages.create params of one request; returns its model."""
    if "params" not in item:
        raise _bad(where, "Field required")
    params = item["params"]
    if not isinstance(params, dict):
        raise _bad(where, "Input should be a valid dictionary")
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            raise _bad(f"{where}.{name}", "Field required")
    model = params["model"]
    if not isinstance(model, str) or not model:
        raise _bad(f"{where}.model", "Input should be a non-empty string")
    max_tokens = params["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _bad(f"{where}.max_tokens", "Input should be a valid integer")
    if max_tokens < 1:
        raise _bad(f"{where}.max_tokens", "Input should be greater than or equal to 1")
    messages = params["messages"]
    if not isinstance(messages, list):
        raise _bad(f"{where}.messages", "Input should be a valid list")
    if not messages:
        raise _bad(f"{where}.messages", "List should have at least 1 item after validation, not 0")
    return model


def parse_limit(query: dict[str, str]) -> int:
    """The list endpoint's ``limit``: 1..1000, default 20."""
    raw = query.get("limit")
    if raw is None or raw == "":
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise _bad("limit", f"Input should be a valid integer, got {raw!r}") from None
    if not 1 <= limit <= 1000:
        raise _bad("limit", f"Input should be between 1 and 1000, got {limit}")
    return limit
