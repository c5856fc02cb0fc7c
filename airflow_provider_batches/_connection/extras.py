"""The connection extras the hook reads: their names, defaults and one parser per extra."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_batches._connection.headers import check_header_value
from airflow_provider_batches.exceptions import ConnectionConfigError, PriceTableError

if TYPE_CHECKING:
    from airflow_provider_batches.cost.prices import ModelPrices

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_MAX_REQUESTS_PER_MINUTE = 50.0  # the Batches API's tier-1 limit
#: Largest decoded JSON body read from the API. The largest legitimate answer is a list page of
#: 1,000 batches, about 0.7 MB (one batch is about 700 bytes of JSON); 8 MiB leaves room for
#: fields the API may add while keeping what a hostile or broken server can make us hold small.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: Below this even one batch would not fit.
MIN_MAX_RESPONSE_BYTES = 1024

_VERSION_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
KNOWN_EXTRAS = frozenset(
    {
        "anthropic_version",
        "betas",
        "timeout",
        "max_retries",
        "max_connections",
        "max_response_bytes",
        "verify",
        "workspace_id",
        "max_requests_per_minute",
        "results_hosts",
        "default_model",
        "default_max_tokens",
        "prices",
    }
)


def read_version(conn_id: str, value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_ANTHROPIC_VERSION
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'anthropic_version' must be a date like "
            f"{DEFAULT_ANTHROPIC_VERSION!r}, got {value!r}."
        )
    return value


def read_betas(conn_id: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'betas' must be a list of strings such as "
            f'["message-batches-2024-09-24"], got {json.dumps(value)[:100]}.'
        )
    for item in items:
        if not item or any(c == "," or not "\x21" <= c <= "\x7e" for c in item):
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: beta name {ascii(item)[:100]} in extra 'betas' is "
                "empty or contains spaces, commas, control or non-ASCII characters, which cannot "
                "be sent in the anthropic-beta header. Use names such as "
                "'message-batches-2024-09-24'."
            )
    return tuple(items)


def read_positive_float(conn_id: str, name: str, value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    number: float | None = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be a finite positive number of "
            f"seconds, got {_shown(value)}."
        )
    return number


def read_whole_number(conn_id: str, name: str, value: Any, default: int, minimum: int) -> int:
    """An integer extra; 2.7, true or "2.5" are errors, never rounded or truncated."""
    if value is None or value == "":
        return default
    number = _as_int(value)
    if number is None or number < minimum:
        expected = (
            "a finite non-negative integer" if minimum == 0 else f"an integer of at least {minimum}"
        )
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be {expected}, got {_shown(value)}. "
            f"Write it as a plain number such as {default}."
        )
    return number


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def read_verify(conn_id: str, value: Any) -> bool | str:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, str) and value:
        return value
    raise ConnectionConfigError(
        f"Connection {conn_id!r}: extra 'verify' must be true, false or a CA bundle path, "
        f"got {value!r}."
    )


def read_results_hosts(conn_id: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'results_hosts' must be a list of host names "
            f'such as ["results.example.com"], got {json.dumps(value)[:100]}.'
        )
    hosts = tuple(item.strip().lower() for item in items)
    for host in hosts:
        if not host or "/" in host or "@" in host or any(c.isspace() for c in host):
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: {host!r} in extra 'results_hosts' is not a host name "
                "(write 'name' or 'name:port', without a scheme or path)."
            )
    return hosts


def read_workspace_id(conn_id: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'workspace_id' must be a string such as "
            f"'wrkspc_01...', got {type(value).__name__}."
        )
    return check_header_value(
        conn_id,
        "extra 'workspace_id'",
        value,
        "Copy the workspace id from the Anthropic console (ASCII letters, digits, '_').",
    )


def read_requests_per_minute(conn_id: str, extras: Mapping[str, Any]) -> float:
    """The ``max_requests_per_minute`` extra: a positive number (self-contained on purpose)."""
    value = extras.get("max_requests_per_minute")
    if value is None or value == "":
        return DEFAULT_MAX_REQUESTS_PER_MINUTE
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'max_requests_per_minute' must be a positive number "
            "of requests per minute (the organisation's Batches API limit: 50 at tier 1, up to "
            f"4000 at tier 4), got {repr(value)[:100]}."
        )
    return number


def read_default_model(conn_id: str, value: Any) -> str | None:
    """The ``default_model`` extra: the model of requests that name none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'default_model' must be a model name such as "
            f"'claude-sonnet-4-5', got {_shown(value)}."
        )
    return value


def read_default_max_tokens(conn_id: str, value: Any) -> int | None:
    """The ``default_max_tokens`` extra: the max_tokens of requests that set none."""
    if value is None or value == "":
        return None
    number = _as_int(value)
    if number is None or number < 1:
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'default_max_tokens' must be an integer of at least "
            f"1, got {_shown(value)}. Write it as a plain number such as 1024."
        )
    return number


def read_prices(conn_id: str, value: Any) -> dict[str, ModelPrices]:
    """The ``prices`` extra: rows that override or extend the shipped price table."""
    if value is None or value == "":
        return {}
    from airflow_provider_batches.cost.prices import parse_price_rows

    try:
        return parse_price_rows(value, f"Connection {conn_id!r}: extra 'prices'")
    except PriceTableError as error:
        raise ConnectionConfigError(str(error)) from None
