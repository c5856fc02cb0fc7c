"""Turn an Airflow connection into validated client settings, and batch ids into URL paths."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from airflow_provider_batches.exceptions import ConnectionConfigError, InvalidBatchIdError

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_CONNECTIONS = 32
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
        "verify",
        "workspace_id",
        "results_hosts",
    }
)


class InsecureEndpointWarning(UserWarning):
    """The API key would travel over plain HTTP to a host other than loopback."""


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
    verify: bool | str = True
    workspace_id: str | None = None
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
    def from_connection(cls, conn: ConnectionLike) -> ClientSettings:
        conn_id = conn.conn_id
        if not conn.password:
            raise ConnectionConfigError(
                f"Connection {conn_id!r} has no API key: put the Anthropic API key in its "
                "Password field."
            )
        extras = _extras(conn)
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
            base_url=_base_url(conn),
            api_key=conn.password,
            anthropic_version=_version(conn_id, extras.get("anthropic_version")),
            betas=_betas(conn_id, extras.get("betas")),
            timeout=_number(
                conn_id, "timeout", extras.get("timeout"), DEFAULT_TIMEOUT, float, positive=True
            ),
            max_retries=int(
                _number(conn_id, "max_retries", extras.get("max_retries"), DEFAULT_MAX_RETRIES, int)
            ),
            max_connections=max(
                1,
                int(
                    _number(
                        conn_id,
                        "max_connections",
                        extras.get("max_connections"),
                        DEFAULT_MAX_CONNECTIONS,
                        int,
                    )
                ),
            ),
            verify=_verify(conn_id, extras.get("verify")),
            workspace_id=_optional_str(conn_id, "workspace_id", extras.get("workspace_id")),
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


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _extras(conn: ConnectionLike) -> dict[str, Any]:
    try:
        extras = conn.extra_dejson
    except (TypeError, ValueError) as exc:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r} has extras that are not a JSON object: {exc}"
        ) from None
    if not isinstance(extras, Mapping):
        raise ConnectionConfigError(f"Connection {conn.conn_id!r}: extras must be a JSON object.")
    return dict(extras)


def _base_url(conn: ConnectionLike) -> str:
    host = (conn.host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = conn.schema if conn.schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
        bare = urlsplit(host)
        if conn.port and ":" not in bare.netloc.rsplit("]", 1)[-1]:
            host = bare._replace(netloc=f"{bare.netloc}:{conn.port}").geturl()
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r} has Host {host!r}, which is not an http(s) URL. "
            f"Use a base URL such as {DEFAULT_BASE_URL!r}, or leave Host empty for that default."
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r} has Host {host!r}, whose port is not a number "
            "between 0 and 65535."
        ) from None
    if parts.query or parts.fragment:
        raise ConnectionConfigError(
            f"Connection {conn.conn_id!r}: the base URL must not carry a query or fragment."
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        warnings.warn(
            f"Connection {conn.conn_id!r} sends the API key over plain HTTP to "
            f"{parts.hostname}; use https:// for anything but a local test server.",
            InsecureEndpointWarning,
            stacklevel=4,
        )
    return host.rstrip("/")


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
        if not item or any(c.isspace() or c == "," or not c.isprintable() for c in item):
            raise ConnectionConfigError(
                f"Connection {conn_id!r}: beta name {item!r} in extra 'betas' is empty or "
                "contains spaces, commas or control characters."
            )
    return tuple(items)


def _number(
    conn_id: str, name: str, value: Any, default: float, kind: type, *, positive: bool = False
) -> float:
    if value is None or value == "":
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if (
        isinstance(value, bool)
        or number is None
        or not math.isfinite(number)
        or number < 0
        or (positive and number == 0)
    ):
        raise ConnectionConfigError(
            f"Connection {conn_id!r}: extra {name!r} must be a finite "
            f"{'positive' if positive else 'non-negative'} "
            f"{'integer' if kind is int else 'number'}, got {value!r}."
        )
    return float(number)


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


def _optional_str(conn_id: str, name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isprintable():
        raise ConnectionConfigError(f"Connection {conn_id!r}: extra {name!r} must be a string.")
    return value
