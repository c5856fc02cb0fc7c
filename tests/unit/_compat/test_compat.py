"""The _compat layer on whichever Airflow release runs the tests (make test, make test-matrix).

The feature table is checked against the running Airflow: every feature it calls available is
really there, every one it calls missing is really absent, so docs/compatibility.md (rendered
from the same table) cannot claim what a release does not do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY

from airflow_provider_batches import _compat
from airflow_provider_batches._compat import (
    FEATURES,
    TESTED_RELEASES,
    UnsupportedAirflowFeatureError,
    airflow_version,
    render_feature_table,
    require,
    supports,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook

pytestmark = pytest.mark.matrix

ROOT = Path(__file__).resolve().parents[3]
RUNNING_MINOR = "{}.{}".format(*airflow_version())


def _minor_tuple(minor: str) -> tuple[int, int]:
    major, minor_number = minor.split(".")
    return int(major), int(minor_number)


def test_the_running_airflow_is_a_tested_release() -> None:
    from airflow import __version__

    assert TESTED_RELEASES.get(RUNNING_MINOR) == __version__


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_feature_table_matches_the_running_airflow(feature: _compat.Feature) -> None:
    assert feature.probe() is feature.available()
    assert supports(feature.name) is (airflow_version() >= feature.since)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_require_raises_a_clear_error_only_where_the_feature_is_missing(
    feature: _compat.Feature,
) -> None:
    if feature.available():
        require(feature.name, "my_task")
        return
    with pytest.raises(UnsupportedAirflowFeatureError) as raised:
        require(feature.name, "my_task")
    message = str(raised.value)
    assert message.startswith("my_task needs ")
    assert f"Airflow {feature.since_text}+" in message
    assert f"this is Airflow {RUNNING_MINOR}." in message


def test_unknown_feature_names_fail_loudly() -> None:
    with pytest.raises(KeyError, match="Unknown feature 'no_such_thing'"):
        supports("no_such_thing")


def test_every_feature_starts_at_a_tested_minor() -> None:
    for feature in FEATURES:
        assert feature.since_text in TESTED_RELEASES, feature.name


def test_compatibility_doc_table_is_the_rendered_feature_table() -> None:
    page = (ROOT / "docs" / "compatibility.md").read_text()
    match = re.search(r"<!-- features:start -->\n(.*?)<!-- features:end -->", page, re.S)
    assert match, "docs/compatibility.md lost its <!-- features:start/end --> markers"
    assert match.group(1) == render_feature_table()


def test_rendered_table_has_one_column_per_tested_minor() -> None:
    header, _, *rows = render_feature_table().splitlines()
    assert header.count("Airflow 3.") == len(TESTED_RELEASES)
    for feature, row in zip(FEATURES, rows, strict=True):
        cells = [cell.strip() for cell in row.split("|")[2:-2]]
        expected = ["yes" if _minor_tuple(m) >= feature.since else "no" for m in TESTED_RELEASES]
        assert cells == expected, feature.name


def _constraint_lines(minor: str) -> list[str]:
    path = ROOT / "constraints" / f"airflow-{minor}.txt"
    raw: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            raw += (path.parent / line[3:]).read_text().splitlines()
        else:
            raw.append(line)
    return [line for line in raw if line and not line.startswith("#")]


@pytest.mark.parametrize("minor", list(TESTED_RELEASES))
def test_each_constraints_file_pins_its_tested_release_exactly(minor: str) -> None:
    lines = _constraint_lines(minor)
    assert f"apache-airflow=={TESTED_RELEASES[minor]}" in lines
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]


def test_pyproject_and_readme_claim_exactly_the_tested_minors() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    oldest = next(iter(TESTED_RELEASES))
    assert re.findall(r'"apache-airflow(?:[<>=!~][^"]*)?"', pyproject) == [
        f'"apache-airflow>={oldest}"'
    ]
    readme = (ROOT / "README.md").read_text()
    for minor, release in TESTED_RELEASES.items():
        assert f"| {minor} | {release} |" in readme, minor


def test_hook_base_class_is_the_one_this_airflow_defines() -> None:
    from airflow_provider_batches.hooks.batch import MessageBatchHook

    expected = "airflow.sdk" if airflow_version() >= (3, 1) else "airflow.hooks.base"
    assert _compat.BaseHook.__module__.startswith(expected)
    assert issubclass(MessageBatchHook, _compat.BaseHook)


def test_connection_form_has_the_shape_this_airflow_reads() -> None:
    from airflow_provider_batches.hooks.batch import MessageBatchHook

    behaviour = MessageBatchHook.get_ui_field_behaviour()
    widgets = MessageBatchHook.get_connection_form_widgets()
    if supports("declarative_connection_form"):
        assert "hidden-fields" in behaviour
        assert widgets == {}
    else:
        assert behaviour["hidden_fields"] == ["schema", "login", "port"]
        assert set(widgets) >= {"anthropic_version", "betas", "timeout", "workspace_id"}


@pytest.mark.parametrize(
    "batch_id", ["{{ dag_run.conf['batch_id'] }}", "{% if true %}msgbatch_x{% endif %}"]
)
def test_templated_start_from_trigger_is_refused_at_parse_only_where_not_rendered(
    batch_id: str,
) -> None:
    from airflow_provider_batches.sensors.batch import MessageBatchSensor

    def build() -> MessageBatchSensor:
        return MessageBatchSensor(
            task_id="wait", batch_id=batch_id, deferrable=True, start_from_trigger=True
        )

    if supports("templated_start_from_trigger"):
        assert build().start_from_trigger is True
        return
    with pytest.raises(UnsupportedAirflowFeatureError, match="wait: start_from_trigger=True"):
        build()


def test_literal_batch_id_with_start_from_trigger_works_on_every_release() -> None:
    from airflow_provider_batches.sensors.batch import MessageBatchSensor

    sensor = MessageBatchSensor(
        task_id="wait", batch_id="msgbatch_literal", deferrable=True, start_from_trigger=True
    )
    assert sensor.start_from_trigger is True


def test_non_string_batch_id_counts_as_templated() -> None:
    fields: dict[str, Any] = {"batch_id": object(), "conn_id": "anthropic_default"}
    if supports("templated_start_from_trigger"):
        _compat.check_start_from_trigger_kwargs("wait", fields)
    else:
        with pytest.raises(UnsupportedAirflowFeatureError, match="templated batch_id"):
            _compat.check_start_from_trigger_kwargs("wait", fields)


async def test_aget_connection_reads_an_environment_connection(
    set_connection: Any,
) -> None:
    set_connection("compat_env", "http://127.0.0.1:9")
    conn = await _compat.aget_connection("compat_env")
    assert conn.password == API_KEY
    assert conn.host == "http://127.0.0.1:9"


class _RunnerChannel:
    """Airflow 3.0's real trigger-runner channel (``TriggerCommsDecoder``) to a supervisor that
    answers on the same event loop: a lookup that blocked the loop could never see an answer."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections: dict[str, Any] = {}

    async def __aenter__(self) -> _RunnerChannel:
        import socket

        from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder

        runner_end, supervisor_end = socket.socketpair()
        reader, self._writer = await asyncio.open_connection(sock=runner_end)
        self._sup_reader, self._sup_writer = await asyncio.open_connection(sock=supervisor_end)
        self.comms = TriggerCommsDecoder(
            async_reader=reader, async_writer=self._writer, socket=runner_end
        )
        self._serving = asyncio.ensure_future(self._serve())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._serving
        self._writer.close()
        self._sup_writer.close()

    async def _serve(self) -> None:
        import msgspec
        from airflow.sdk.execution_time.comms import _RequestFrame, _ResponseFrame

        while True:
            length = int.from_bytes(await self._sup_reader.readexactly(4), "big")
            frame = msgspec.msgpack.decode(
                await self._sup_reader.readexactly(length), type=_RequestFrame
            )
            body = frame.body or {}
            self.requests.append(body)
            answer = None
            if body.get("type") == "GetConnection":
                answer = self.connections[body["conn_id"]].model_dump()
            self._sup_writer.write(_ResponseFrame(id=frame.id, body=answer).as_bytes())
            await self._sup_writer.drain()

    def masked(self) -> list[Any]:
        return [r["value"] for r in self.requests if r.get("type") == "MaskSecret"]


only_airflow_3_0 = pytest.mark.skipif(
    supports("aget_connection"), reason="Airflow has aget_connection itself"
)


@only_airflow_3_0
async def test_airflow_3_0_trigger_reads_the_connection_over_the_runners_async_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ConnectionResult

    monkeypatch.delenv("AIRFLOW_CONN_FROM_SUPERVISOR", raising=False)
    async with _RunnerChannel() as channel:
        channel.connections["from_supervisor"] = ConnectionResult(
            conn_id="from_supervisor",
            conn_type="anthropic_batches",
            password=API_KEY,
            extra='{"timeout": 5}',
        )
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel.comms, raising=False)
        conn = await asyncio.wait_for(_compat.aget_connection("from_supervisor"), 60)

    assert channel.requests[0] == {"type": "GetConnection", "conn_id": "from_supervisor"}
    assert conn.password == API_KEY
    assert conn.extra_dejson == {"timeout": 5}
    assert API_KEY in channel.masked()  # the supervisor, which writes the logs, was told


@only_airflow_3_0
async def test_airflow_3_0_trigger_reads_an_environment_connection_in_the_loop(
    monkeypatch: pytest.MonkeyPatch, set_connection: Any
) -> None:
    """Airflow 3.0's own connection classes mask through the sync channel, which raises from
    the loop's thread in a real triggerer; the JSON form is parsed and masked without them."""
    from airflow.sdk.execution_time import task_runner

    set_connection("from_env", "http://127.0.0.1:9", timeout=5)
    async with _RunnerChannel() as channel:
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel.comms, raising=False)
        conn = await asyncio.wait_for(_compat.aget_connection("from_env"), 60)
        settings = await asyncio.wait_for(MessageBatchHook("from_env").asettings(), 60)

    assert conn.password == API_KEY
    assert conn.extra_dejson["timeout"] == 5
    assert settings.api_key == API_KEY
    assert not [r for r in channel.requests if r.get("type") == "GetConnection"]
    assert API_KEY in channel.masked()
