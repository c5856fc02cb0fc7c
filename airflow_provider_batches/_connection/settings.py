"""Turn an Airflow connection into validated client settings and the API's URLs and headers."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_batches._connection.base_url import (
    DEFAULT_BASE_URL,
    base_url,
    is_loopback_host,
)
from airflow_provider_batches._connection.extras import (
    DEFAULT_ANTHROPIC_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    KNOWN_EXTRAS,
    MIN_MAX_RESPONSE_BYTES,
    read_betas,
    read_default_max_tokens,
    read_default_model,
    read_positive_float,
    read_prices,
    read_requests_per_minute,
    read_results_hosts,
    read_verify,
    read_version,
    read_whole_number,
    read_workspace_id,
)
from airflow_provider_batches._connection.headers import api_key_from_password
from airflow_provider_batches.batch_ids import quote_batch_id
from airflow_provider_batches.exceptions import ConnectionConfigError, InsecureEndpointWarning

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientSettings",
    "InsecureEndpointWarning",
    "is_loopback_host",
]

if TYPE_CHECKING:
    from airflow_provider_batches.cost.prices import ModelPrices

BATCHES_PATH = "/v1/messages/batches"


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
    #: What a request that names no model or max_tokens gets (after the operator's own).
    default_model: str | None = None
    default_max_tokens: int | None = None
    #: Price rows that override or extend the shipped price table (docs/cost.md).
    prices: Mapping[str, ModelPrices] = field(default_factory=dict, compare=False)

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
        unknown = sorted(set(extras) - KNOWN_EXTRAS)
        if unknown:
            warnings.warn(
                f"Connection {conn_id!r} has extras this provider ignores: {unknown}. "
                f"Known extras: {sorted(KNOWN_EXTRAS)}.",
                UserWarning,
                stacklevel=3,
            )
        return cls(
            conn_id=conn_id,
            base_url=base_url(conn_id, conn.host, conn.schema, conn.port),
            api_key=api_key,
            anthropic_version=read_version(conn_id, extras.get("anthropic_version")),
            betas=read_betas(conn_id, extras.get("betas")),
            timeout=read_positive_float(conn_id, "timeout", extras.get("timeout"), DEFAULT_TIMEOUT),
            max_retries=read_whole_number(
                conn_id, "max_retries", extras.get("max_retries"), DEFAULT_MAX_RETRIES, 0
            ),
            max_connections=read_whole_number(
                conn_id,
                "max_connections",
                extras.get("max_connections"),
                DEFAULT_MAX_CONNECTIONS,
                1,
            ),
            max_response_bytes=read_whole_number(
                conn_id,
                "max_response_bytes",
                extras.get("max_response_bytes"),
                DEFAULT_MAX_RESPONSE_BYTES,
                MIN_MAX_RESPONSE_BYTES,
            ),
            verify=read_verify(conn_id, extras.get("verify")),
            workspace_id=read_workspace_id(conn_id, extras.get("workspace_id")),
            max_requests_per_minute=read_requests_per_minute(conn_id, extras),
            results_hosts=read_results_hosts(conn_id, extras.get("results_hosts")),
            default_model=read_default_model(conn_id, extras.get("default_model")),
            default_max_tokens=read_default_max_tokens(conn_id, extras.get("default_max_tokens")),
            prices=read_prices(conn_id, extras.get("prices")),
        )


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
