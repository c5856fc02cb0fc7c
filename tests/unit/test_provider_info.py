"""Provider metadata: get_provider_info, its entry point, and Airflow's providers manager."""

from __future__ import annotations

import importlib
import json
import warnings
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import airflow_provider_batches
import airflow_provider_batches._connection.extras as connection_extras
from airflow_provider_batches import get_provider_info
from airflow_provider_batches._compat import hook_ui_field_behaviour
from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches.hooks.batch import MessageBatchHook

pytestmark = pytest.mark.matrix

PACKAGE = "airflow-provider-batches"
HOOK_CLASS = "airflow_provider_batches.hooks.batch.MessageBatchHook"
CONN_TYPE = "anthropic_batches"


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


def test_basic_fields(info: dict[str, Any]) -> None:
    assert info["package-name"] == PACKAGE
    assert info["name"]
    assert info["description"]
    assert info["versions"] == [airflow_provider_batches.__version__]
    assert metadata.version(PACKAGE) == airflow_provider_batches.__version__


def test_info_is_json_safe(info: dict[str, Any]) -> None:
    assert json.loads(json.dumps(info)) == info


def test_info_matches_airflows_provider_info_schema(info: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    if not schema_path.exists():
        pytest.skip("this Airflow ships no provider_info.schema.json")
    jsonschema.validate(info, json.loads(schema_path.read_text()))


def test_connection_type_names_our_hook(info: dict[str, Any]) -> None:
    (conn,) = info["connection-types"]
    assert conn["hook-class-name"] == HOOK_CLASS
    assert conn["connection-type"] == CONN_TYPE
    assert conn["hook-name"] == MessageBatchHook.hook_name
    module_name, _, class_name = conn["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module_name), class_name)
    assert hook_class is MessageBatchHook
    assert hook_class.conn_type == CONN_TYPE
    assert hook_class.default_conn_name == "anthropic_default"
    assert hook_class.conn_name_attr == "conn_id"
    # Airflow < 3.2 asks the hook for the same form, in its own key style.
    expected = hook_ui_field_behaviour(conn["ui-field-behaviour"])
    assert MessageBatchHook.get_ui_field_behaviour() == expected


def _settings(**fields: Any) -> ClientSettings:
    conn = SimpleNamespace(
        conn_id="info", host=None, schema=None, port=None, login=None, password="k"
    )
    for name, value in fields.items():
        setattr(conn, name, value)
    extras = fields.get("extra_dejson", {})
    conn.extra_dejson = extras
    return ClientSettings.from_connection(conn)  # type: ignore[arg-type]


def test_the_form_matches_what_the_hook_reads(info: dict[str, Any]) -> None:
    """Checked against the hook's real parsing, not against the form itself."""
    (conn,) = info["connection-types"]
    behaviour = conn["ui-field-behaviour"]
    placeholders = behaviour["placeholders"]
    # The Host placeholder is the URL the hook uses when Host is empty.
    assert _settings().base_url == placeholders["host"]
    # The Extra placeholder is accepted as it is, and states the hook's defaults.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shown = _settings(extra_dejson=json.loads(placeholders["extra"]))
    assert shown == _settings()
    # Hidden fields change nothing once the Base URL (relabeled Host) is a full URL; a Port
    # that disagrees with it is an error (tests/unit/_connection/test_connection_validation.py).
    full = "https://batches.example.com:8443"
    assert behaviour["relabeling"]["host"] == "Base URL"
    hidden = {"schema": "http", "login": "someone", "port": 8443}
    assert set(hidden) == set(behaviour["hidden-fields"])
    assert _settings(host=full, **hidden) == _settings(host=full)
    # The relabeled Password is the API key the hook sends.
    assert behaviour["relabeling"]["password"] == "API key"
    assert _settings(password="sk-ant-form").headers()["x-api-key"] == "sk-ant-form"


def test_conn_fields_are_exactly_the_extras_the_hook_reads(info: dict[str, Any]) -> None:
    """From connection_extras.py: a new extra without a form field (or the reverse) fails."""
    (conn,) = info["connection-types"]
    fields = conn["conn-fields"]
    assert set(fields) == set(connection_extras.KNOWN_EXTRAS)
    defaults = _settings()
    for name, field in fields.items():
        assert field["label"]
        assert "null" in field["schema"]["type"], f"{name} must be optional"
        if "default" in field["schema"]:
            assert field["schema"]["default"] == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("hooks", ["airflow_provider_batches.hooks.batch"]),
        ("sensors", ["airflow_provider_batches.sensors.batch"]),
        (
            "triggers",
            ["airflow_provider_batches.triggers.batch", "airflow_provider_batches.triggers.events"],
        ),
    ],
)
def test_listed_modules_import(info: dict[str, Any], section: str, expected: list[str]) -> None:
    modules = [m for entry in info[section] for m in entry["python-modules"]]
    assert modules == expected
    for name in modules:
        assert importlib.import_module(name)


def test_integration_names_are_consistent(info: dict[str, Any]) -> None:
    integrations = {item["integration-name"] for item in info["integrations"]}
    for section in ("hooks", "sensors", "triggers"):
        for entry in info[section]:
            assert entry["integration-name"] in integrations


def test_entry_point_resolves_to_get_provider_info() -> None:
    points = [
        point
        for point in metadata.entry_points(group="apache_airflow_provider")
        if point.value.startswith("airflow_provider_batches")
    ]
    assert len(points) == 1
    (point,) = points
    assert point.value == "airflow_provider_batches:get_provider_info"
    assert point.dist is not None
    assert point.dist.metadata["Name"] == PACKAGE
    loaded = point.load()
    assert loaded is get_provider_info
    assert loaded()["package-name"] == PACKAGE


def test_ui_field_behaviour() -> None:
    (conn,) = get_provider_info()["connection-types"]
    behaviour = conn["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "login", "port"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert behaviour["placeholders"]["host"] == "https://api.anthropic.com"
    assert json.loads(behaviour["placeholders"]["extra"])["anthropic_version"] == "2023-06-01"
    # Neither the Host nor the Password field may be hidden: they hold the URL and the key.
    assert "host" not in behaviour["hidden-fields"]
    assert "password" not in behaviour["hidden-fields"]


def test_providers_manager_lists_the_provider_and_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert PACKAGE in manager.providers
    assert manager.providers[PACKAGE].version == airflow_provider_batches.__version__

    behaviours = manager.field_behaviours[CONN_TYPE]
    assert behaviours["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert set(behaviours["hidden_fields"]) == {"schema", "login", "port"}
    widgets = manager.connection_form_widgets
    for name in connection_extras.KNOWN_EXTRAS:
        assert f"extra__{CONN_TYPE}__{name}" in widgets

    triggers = {t.trigger_class_name for t in manager.trigger if t.package_name == PACKAGE}
    assert triggers == {
        "airflow_provider_batches.triggers.batch",
        "airflow_provider_batches.triggers.events",
    }


def test_task_runtime_providers_manager_knows_the_hook() -> None:
    runtime = pytest.importorskip("airflow.sdk.providers_manager_runtime")
    manager = runtime.ProvidersManagerTaskRuntime()
    hook_info = manager.hooks[CONN_TYPE]
    assert hook_info is not None
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.package_name == PACKAGE
    assert hook_info.connection_id_attribute_name == "conn_id"
    assert hook_info.connection_testable is True
