"""Airflow names that moved between 3.x releases, imported from wherever this release has them."""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # Airflow 3.0 kept them in airflow.exceptions
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's configuration."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow < 3.1
        from airflow.configuration import conf
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "default_deferrable",
]
