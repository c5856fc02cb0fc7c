"""Provider metadata for Airflow's providers manager: hook, connection type and its form."""

from __future__ import annotations

from typing import Any

CONNECTION_TYPE = "anthropic_batches"

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
    },
    "max_retries": {
        "label": "Retries on transient errors",
        "schema": {"type": ["integer", "null"], "default": 2},
    },
    "max_connections": {
        "label": "Max pooled HTTP connections",
        "schema": {"type": ["integer", "null"], "default": 32},
    },
    "workspace_id": {
        "label": "Workspace id (anthropic-workspace-id)",
        "schema": {"type": ["string", "null"]},
    },
}


def provider_info() -> dict[str, Any]:
    from airflow_provider_batches import __version__

    return {
        "package-name": "airflow-provider-batches",
        "name": "Anthropic Message Batches",
        "description": "Wait on Anthropic Message Batches from Airflow: hook, sensor, trigger.",
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
                "python-modules": ["airflow_provider_batches.operators.batch"],
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
                "python-modules": ["airflow_provider_batches.triggers.batch"],
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
