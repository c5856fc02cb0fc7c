"""Every difference between the Airflow 3 releases this provider supports, in one place.

Other modules import Airflow names that moved from here, ask :func:`supports` before using a
feature only newer releases have, and call :func:`require` at DAG parse time when a DAG asks for
one the running Airflow lacks. :data:`FEATURES` is the single source of truth for
``docs/compatibility.md`` (a test checks the page equals :func:`render_feature_table`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # Airflow 3.0 kept them in airflow.exceptions
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

try:
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 3.0: the hook base class still lived in core
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]

#: Releases tested by ``make test-matrix`` / ``make test`` (newest patch of each minor).
TESTED_RELEASES: dict[str, str] = {"3.0": "3.0.6", "3.1": "3.1.8", "3.2": "3.2.2", "3.3": "3.3.2"}


@functools.cache
def airflow_version() -> tuple[int, int]:
    """``(major, minor)`` of the running Airflow."""
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


def _has_native_aget_connection() -> bool:
    return hasattr(BaseHook, "aget_connection")


def _has_amask_secret() -> bool:
    from airflow.sdk import log

    return hasattr(log, "amask_secret")


def _has_trigger_on_kill() -> bool:
    from airflow.triggers.base import BaseTrigger

    return "on_kill" in vars(BaseTrigger)


def _has_task_state_store() -> bool:
    from airflow.sdk.execution_time import context

    return hasattr(context, "TaskStateStoreAccessor")


def _renders_start_trigger_kwargs() -> bool:
    from airflow.triggers.base import BaseTrigger

    return hasattr(BaseTrigger, "render_template_fields")


def _reads_declarative_connection_form() -> bool:
    from airflow.providers_manager import ProvidersManager

    return hasattr(ProvidersManager, "_load_ui_metadata")


@dataclass(frozen=True)
class Feature:
    """A capability that depends on the Airflow release.

    :param name: The key code passes to :func:`supports` and :func:`require`.
    :param title: What it is, for the docs table.
    :param since: First Airflow ``(major, minor)`` that has it.
    :param older: What the provider does on releases before ``since``.
    :param probe: Checks the running Airflow really has it (tests compare it with ``since``).
    """

    name: str
    title: str
    since: tuple[int, int]
    older: str
    probe: Callable[[], bool]

    @property
    def since_text(self) -> str:
        return f"{self.since[0]}.{self.since[1]}"

    def available(self) -> bool:
        return airflow_version() >= self.since


FEATURES: tuple[Feature, ...] = (
    Feature(
        "declarative_connection_form",
        "Connection form (labels, hidden fields, extra fields) read from provider metadata",
        (3, 2),
        "The hook supplies the form itself (`get_ui_field_behaviour`, "
        "`get_connection_form_widgets`); Airflow shows the extra fields only when "
        "`flask-appbuilder` is installed, as for every provider on these releases.",
        _reads_declarative_connection_form,
    ),
    Feature(
        "aget_connection",
        "Trigger reads its connection with `BaseHook.aget_connection`",
        (3, 1),
        "The provider reads it itself without blocking the loop: a JSON `AIRFLOW_CONN_<ID>` "
        "in the loop (no I/O), connections stored in Airflow over the trigger runner's async "
        "channel to its supervisor (`SUPERVISOR_COMMS.asend`). A URI-form variable or a custom "
        "`[secrets] backend` is read by Airflow's sync code in a worker thread "
        "(`sync_to_async`), as Airflow 3.0's own providers do.",
        _has_native_aget_connection,
    ),
    Feature(
        "amask_secret",
        "API key masked with `amask_secret` (the supervisor is told without blocking)",
        (3, 3),
        "Masked in the trigger runner and sent to the supervisor with "
        "`await SUPERVISOR_COMMS.asend(MaskSecret(...))` (the sync `mask_secret` cannot reach "
        "it from the loop).",
        _has_amask_secret,
    ),
    Feature(
        "templated_start_from_trigger",
        "Templated `batch_id` / `conn_id` with `start_from_trigger=True`",
        (3, 3),
        "Rejected at DAG parse with a message naming the fix (Airflow would hand the template "
        "text to the trigger unrendered): pass a literal batch id, or drop `start_from_trigger` "
        "(the sensor then defers from a worker, after templates are rendered).",
        _renders_start_trigger_kwargs,
    ),
    Feature(
        "trigger_on_kill",
        "`BaseTrigger.on_kill`: Airflow tells a trigger its deferred task was killed",
        (3, 3),
        "Airflow never calls it: killing, clearing or marking a deferred task only stops the "
        "wait. Provider code that would stop external work there checks "
        '`supports("trigger_on_kill")` and documents its fallback.',
        _has_trigger_on_kill,
    ),
    Feature(
        "task_state_store",
        "`context['task_state_store']`: state kept across a task's retries",
        (3, 3),
        'Not available: provider code that needs it calls `require("task_state_store", ...)` '
        "at DAG parse, which names Airflow 3.3; never an `AttributeError` at run time.",
        _has_task_state_store,
    ),
)

_BY_NAME = {feature.name: feature for feature in FEATURES}


class UnsupportedAirflowFeatureError(ValueError):
    """A DAG asks for something the running Airflow release does not have."""


def feature(name: str) -> Feature:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"Unknown feature {name!r}; known: {sorted(_BY_NAME)}.") from None


def supports(name: str) -> bool:
    """Whether the running Airflow has the feature ``name`` (see :data:`FEATURES`)."""
    return feature(name).available()


def require(name: str, needed_by: str) -> None:
    """Raise a clear error (meant for DAG parse time) if the running Airflow lacks ``name``."""
    wanted = feature(name)
    if wanted.available():
        return
    from airflow import __version__

    raise UnsupportedAirflowFeatureError(
        f"{needed_by} needs Airflow {wanted.since_text}+ ({wanted.title}); this is Airflow "
        f"{__version__}. On this release: {wanted.older}"
    )


def check_start_from_trigger_kwargs(task_id: str, fields: dict[str, Any]) -> None:
    """Before 3.3 Airflow does not render ``start_trigger_args``: refuse templated values."""
    templated = sorted(
        name
        for name, value in fields.items()
        if not isinstance(value, str) or "{{" in value or "{%" in value
    )
    if templated:
        require(
            "templated_start_from_trigger",
            f"{task_id}: start_from_trigger=True with a templated {', '.join(templated)}",
        )


def render_feature_table() -> str:
    """The Markdown feature x release table for ``docs/compatibility.md``."""
    minors = list(TESTED_RELEASES)
    header = "| Feature | " + " | ".join(f"Airflow {m}" for m in minors) + " | On older releases |"
    rule = "| --- | " + " | ".join("---" for _ in minors) + " | --- |"
    rows = [header, rule]
    for item in FEATURES:
        cells = [
            "yes" if tuple(int(part) for part in m.split(".")) >= item.since else "no"
            for m in minors
        ]
        rows.append(f"| {item.title} | " + " | ".join(cells) + f" | {item.older} |")
    return "\n".join(rows) + "\n"


def hook_ui_field_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """``behaviour`` (provider metadata, kebab-case) in the shape this Airflow wants from a hook."""
    if supports("declarative_connection_form"):
        return behaviour
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def hook_connection_form_widgets(conn_fields: dict[str, Any]) -> dict[str, Any]:
    """Form widgets for ``conn_fields`` where Airflow asks the hook for them (before 3.2)."""
    if supports("declarative_connection_form"):
        return {}  # Airflow builds the form from the provider metadata
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from wtforms import StringField

    # Text fields only: the settings parser accepts numbers and comma-separated betas as text.
    return {
        name: StringField(
            field["label"], description=field.get("description", ""), widget=BS3TextFieldWidget()
        )
        for name, field in conn_fields.items()
    }


async def aget_connection(conn_id: str) -> Any:
    """The connection ``conn_id``, read without blocking the event loop, on every release."""
    if _has_native_aget_connection():
        return await BaseHook.aget_connection(conn_id)
    from airflow_provider_batches._compat import _legacy

    return await _legacy.aget_connection(conn_id)


async def amask_secret(secret: Any) -> None:
    """Add ``secret`` to the log masker from async code without blocking the loop."""
    if _has_amask_secret():
        from airflow.sdk.log import amask_secret as native_amask_secret

        await native_amask_secret(secret)
        return
    from airflow_provider_batches._compat import _legacy

    await _legacy.amask_secret(secret)


async def aconnection_extras(conn: Any) -> Any:
    """The connection's extras, masked without blocking the event loop.

    ``Connection.extra_dejson`` masks them with the sync ``mask_secret``, a blocking round trip
    to the supervisor from the loop; 3.3 has ``aextra_dejson``. Before it, the raw JSON is
    parsed here and masked through :func:`amask_secret`. Unparseable or non-object extras are
    returned as they are, for the settings to report.
    """
    native = getattr(conn, "aextra_dejson", None)
    if callable(native):
        return await native()
    raw = getattr(conn, "extra", None)
    if not isinstance(raw, str):
        return conn.extra_dejson  # a connection view that is already parsed and masked
    if not raw:
        return {}
    try:
        extras = json.loads(raw)
    except ValueError:
        return raw
    await amask_secret(extras)
    return extras


def mask_secret(secret: str) -> None:
    """Add ``secret`` to the log masker (sync code: workers)."""
    from airflow.sdk.log import mask_secret as native_mask_secret

    native_mask_secret(secret)


def dag_bag_class() -> type[Any]:
    """Airflow's ``DagBag``, which parses DAG files (tests use it); it moved in 3.2."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]
    return DagBag  # type: ignore[no-any-return,unused-ignore]


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's configuration."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow < 3.1
        from airflow.configuration import conf
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


__all__ = [
    "FEATURES",
    "TESTED_RELEASES",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "Feature",
    "UnsupportedAirflowFeatureError",
    "aget_connection",
    "airflow_version",
    "amask_secret",
    "check_start_from_trigger_kwargs",
    "dag_bag_class",
    "default_deferrable",
    "hook_connection_form_widgets",
    "hook_ui_field_behaviour",
    "mask_secret",
    "render_feature_table",
    "require",
    "supports",
]
