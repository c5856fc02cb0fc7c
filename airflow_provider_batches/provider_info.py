"""Provider metadata for Airflow's providers manager: hook, connection type and its form."""

from __future__ import annotations

from typing import Any

CONNECTION_TYPE = "anthropic_batches"

#: Schema and Port stay hidden: Host takes a whole base URL. Both still work on connections made
#: outside the form (environment variable, CLI, another connection type); see docs/connection.md.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://api.anthropic.com",
        "password": "sk-ant-...",
        "extra": '{"anthropic_version": "2023-06-01", "betas": [], "timeout": 30, '
        '"max_retries": 2}',
    },
}

#: One form field per extra the hook reads (``connection_extras.KNOWN_EXTRAS``).
CONN_FIELDS: dict[str, Any] = {
    "anthropic_version": {
        "label": "anthropic-version header",
        "schema": {"type": ["string", "null"], "default": "2023-06-01"},
        "description": "API version date sent as the anthropic-version header.",
    },
    "betas": {
        "label": "Beta features",
        "schema": {"type": ["array", "null"], "items": {"type": "string"}},
        "description": "Values for the anthropic-beta header, e.g. message-batches-2024-09-24.",
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 30},
        "description": "Longest time one request may take in all: connect, send and read.",
    },
    "max_retries": {
        "label": "Retries on transient errors",
        "schema": {"type": ["integer", "null"], "default": 2},
        "description": "Times one request is sent again after a transient fault (0 or more).",
    },
    "max_connections": {
        "label": "Max pooled HTTP connections",
        "schema": {"type": ["integer", "null"], "default": 32},
        "description": "Sockets shared by every wait on this connection in one process (1+).",
    },
    "max_response_bytes": {
        "label": "Max response size (bytes)",
        "schema": {"type": ["integer", "null"], "default": 8388608},
        "description": "Largest decoded response body read; larger answers are errors.",
    },
    "verify": {
        "label": "TLS verification",
        "schema": {"type": ["boolean", "string", "null"], "default": True},
        "description": "true (default), false, or the path of a CA bundle (PEM) to trust.",
    },
    "max_requests_per_minute": {
        "label": "Max requests per minute (50 at tier 1)",
        "schema": {"type": ["number", "null"], "default": 50},
        "description": "Request budget of this connection per process; raise for tiers 2-4.",
    },
    "workspace_id": {
        "label": "Workspace id (anthropic-workspace-id)",
        "schema": {"type": ["string", "null"]},
        "description": "Only for API keys that span several workspaces.",
    },
    "results_hosts": {
        "label": "Other hosts allowed to serve results",
        "schema": {"type": ["array", "null"], "items": {"type": "string"}},
        "description": "Hosts (name or name:port) a batch's results_url may point at; the API "
        "key is sent there. Empty: only the Base URL's host.",
    },
    "default_model": {
        "label": "Default model",
        "schema": {"type": ["string", "null"]},
        "description": "Model of requests that name none, unless the operator sets model.",
    },
    "default_max_tokens": {
        "label": "Default max_tokens",
        "schema": {"type": ["integer", "null"]},
        "description": "max_tokens of requests that set none, unless the operator sets it.",
    },
    "prices": {
        "label": "Model prices (USD per million tokens)",
        "schema": {"type": ["object", "string", "null"]},
        "description": "Override or extend the shipped price table: {model: {input, "
        "cache_write_5m, cache_write_1h, cache_read, output}} at standard prices.",
    },
}


def provider_info() -> dict[str, Any]:
    from airflow_provider_batches import __version__

    return {
        "package-name": "airflow-provider-batches",
        "name": "Anthropic Message Batches",
        "description": (
            "Anthropic Message Batches for Apache Airflow: operators that submit batches and "
            "store their results, a sensor and triggers that wait without holding a worker, "
            "and a hook."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Anthropic Message Batches",
                "external-doc-url": "https://docs.anthropic.com/en/api/retrieving-message-batches",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Anthropic Message Batches",
                "python-modules": ["airflow_provider_batches.hooks.batch"],
            }
        ],
        "operators": [
            {
                "integration-name": "Anthropic Message Batches",
                "python-modules": [
                    "airflow_provider_batches.operators.batch",
                    "airflow_provider_batches.operators.results",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Anthropic Message Batches",
                "python-modules": ["airflow_provider_batches.sensors.batch"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Anthropic Message Batches",
                "python-modules": [
                    "airflow_provider_batches.triggers.batch",
                    "airflow_provider_batches.triggers.events",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_batches.hooks.batch.MessageBatchHook",
                "hook-name": "Anthropic Message Batches",
                "connection-type": CONNECTION_TYPE,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
