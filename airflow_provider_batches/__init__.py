"""Apache Airflow provider that waits on Anthropic Message Batches.

Importing this package is nearly free: the hook, sensor and trigger live in their own modules
and load only when a DAG imports them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Entry point ``apache_airflow_provider``: what Airflow's providers manager registers."""
    from airflow_provider_batches.provider_info import provider_info

    return provider_info()
