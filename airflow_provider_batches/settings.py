"""Turn an Airflow connection into validated client settings, and batch ids into URL paths."""

from __future__ import annotations

import json
import math
import re
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from airflow_provider_batches.base_url import (
    DEFAULT_BASE_URL,
    InsecureEndpointWarning,
    base_url,
    is_loopback_host,
)
from airflow_provider_batches.exceptions import ConnectionConfigError, InvalidBatchIdError
from airflow_provider_batches.header_values import api_key_from_password, check_header_value

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientSettings",
    "InsecureEndpointWarning",
    "is_loopback_host",
    "quote_batch_id",
    "validate_batch_id",
]

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
BATCHES_PATH = "/v1/messages/batches"
MAX_BATCH_ID_LENGTH = 1024

_VERSION_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_KNOWN_EXTRAS = frozenset(
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
    }
)


class ConnectionLike(Protocol):
    """What the hook reads from an Airflow connection (any connection type)."""

    conn_id: str
    host: str | None
    schema: str | None
    port: int | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ClientSettings:
    """Everything needed to talk to the API, parsed and checked once per connection."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION
    betas: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    verify: bool | str = True
    workspace_id: str | None = None
    max_requests_per_minute: float = DEFAULT_MAX_REQUESTS_PER_MINUTE
    #: Other hosts (``name`` or ``name:port``) a batch's ``results_url`` may point at.
    results_hosts: tuple[str, ...] = ()

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """What makes two settings safe to share one connection pool (never the key)."""
        return (self.conn_id, self.base_url, self.timeout, self.max_connections, self.verify)

    def headers(self) -> dict[str, str]:
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": self.anthropic_version,
            "accept": "application/json",
        }
        if self.betas:
            headers["anthropic-beta"] = ",".join(self.betas)
        if self.workspace_id:
            headers["anthropic-workspace-id"] = self.workspace_id
        return headers

    def batch_url(self, batch_id: str) -> str:
        return f"{self.base_url}{BATCHES_PATH}/{quote_batch_id(batch_id)}"

    def batches_url(self) -> str:
        return f"{self.base_url}{BATCHES_PATH}"

    @classmethod
    def from_connection(cls, conn: ConnectionLike, extras: Any = None) -> ClientSettings:
        """``extras``: the connection's extras when the caller already read them (the async
        path reads them without Airflow's blocking masking call); else ``conn.extra_dejson``."""
        conn_id = conn.conn_id
        api_key = api_key_from_password(conn_id, conn.password)
        extras = _extras(conn) if extras is None else _checked_extras(conn_id, extras)
        unknown = sorted(set(extras) - _KNOWN_EXTRAS)
        if unknown:
            warnings.warn(
                f"Connection {conn_id!r} has extras this provider ignores: {unknown}. "
                f"Known extras: {sorted(_KNOWN_EXTRAS)}.",
                UserWarning,
                stacklevel=3,
            )
        return cls(
            conn_id=conn_id,
            base_url=base_url(conn_id, conn.host, conn.schema, conn.port),
            api_key=api_key,
            anthropic_version=_version(conn_id, extras.get("anthropic_version")),
            betas=_betas(conn_id, extras.get("betas")),
            timeout=_positive_float(conn_id, "timeout", extras.get("timeout"), DEFAULT_TIMEOUT),
            max_retries=_whole_number(
                conn_id, "max_retries", extras.get("max_retries"), DEFAULT_MAX_RETRIES, 0
            ),
            max_connections=_whole_number(
                conn_id,
                "max_connections",
                extras.get("max_connections"),
                DEFAULT_MAX_CONNECTIONS,
                1,
            ),
            max_response_bytes=_whole_number(
                conn_id,
                "max_response_bytes",
                extras.get("max_response_bytes"),
                DEFAULT_MAX_RESPONSE_BYTES,
                MIN_MAX_RESPONSE_BYTES,
            ),
            verify=_verify(conn_id, extras.get("verify")),
            workspace_id=_workspace_id(conn_id, extras.get("workspace_id")),
            max_requests_per_minute=_requests_per_minute(conn_id, extras),
            results_hosts=_results_hosts(conn_id, extras.get("results_hosts")),
        )


def validate_batch_id(batch_id: object) -> str:
    """Return ``batch_id`` if it names exactly one URL path segment, else raise.

    Only what keeps the path intact is checked: the API may change the id format.
    """
    if not isinstance(batch_id, str):
        raise InvalidBatchIdError(
            f"batch_id must be a string such as 'msgbatch_013Zva2CMHLNnXjNJJKqJ2EF', "
            f"got {type(batch_id).__name__}."
        )
    problem = _batch_id_problem(batch_id)
    if problem:
        shown = batch_id if len(batch_id) <= 80 else batch_id[:80] + "..."
        raise InvalidBatchIdError(
            f"Invalid batch_id {shown!r}: {problem}. Pass the 'id' of the batch as the API "
            "returned it, for example 'msgbatch_013Zva2CMHLNnXjNJJKqJ2EF'."
        )
    return batch_id


def _batch_id_problem(batch_id: str) -> str | None:
    if not batch_id.strip():
        return "it is empty"
    if len(batch_id) > MAX_BATCH_ID_LENGTH:
        return f"it is {len(batch_id)} characters long, more than {MAX_BATCH_ID_LENGTH}"
    if batch_id in (".", ".."):
        return "it is a relative path segment"
    for char in batch_id:
        if char in "/\\?#":
            return f"it contains {char!r}, which would change the request's URL path"
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"it contains the whitespace or control character U+{ord(char):04X}"
    return None


def quote_batch_id(batch_id: str) -> str:
    return quote(validate_batch_id(batch_id), safe="")


def _extras(conn: ConnectionLike) -> dict[str, Any]:
    try:
        extras = conn.extra_dejson
    except (TypeError, ValueError) as exc:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r} has extras that are not a JSON object: {exc}"
        ) from None
    return _checked_extras(conn.conn_id, extras)


def _checked_extras(conn_id: str, extras: Any) -> dict[str, Any]:
    if not isinstance(extras, Mapping):
        raise ConnectionConfigError(f"Connection {conn_id!r}: extras must be a JSON object.")
    return dict(extras)


def _version(conn_id: str, value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_ANTHROPIC_VERSION
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra 'anthropic_version' must be a date like "
            f"{DEFAULT_ANTHROPIC_VERSION!r}, got {value!r}."
        )
    return value


def _betas(conn_id: str, value: Any) -> tuple[str, ...]:
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


def _positive_float(conn_id: str, name: str, value: Any, default: float) -> float:
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


def _whole_number(conn_id: str, name: str, value: Any, default: int, minimum: int) -> int:
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


def _verify(conn_id: str, value: Any) -> bool | str:
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


def _results_hosts(conn_id: str, value: Any) -> tuple[str, ...]:
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


def _workspace_id(conn_id: str, value: Any) -> str | None:
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


def _requests_per_minute(conn_id: str, extras: Mapping[str, Any]) -> float:
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
