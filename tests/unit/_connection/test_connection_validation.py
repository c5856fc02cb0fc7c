"""The connection form and test button: each bad field is rejected at load
with a ConnectionConfigError naming the field and the fix, never a raw httpx error later."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.sdk import Connection
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches._connection.extras import KNOWN_EXTRAS
from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches.exceptions import ConnectionConfigError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_batches.testing import FakeBatchesServer

SECRET = "hunter2-PASSWORD-in-host"


def settings_of(
    host: str | None = None, *, port: Any = None, schema: str | None = None, **extra: object
) -> ClientSettings:
    conn = Connection(
        conn_id="val",
        conn_type="anthropic_batches",
        host=host,
        port=port,
        schema=schema,
        password="sk-ant-key",
        extra=json.dumps(extra),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClientSettings.from_connection(conn)


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


# ---- Host -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "https://gw example.com",
        "https://gw\texample.com/p",
        "https://gw.example.com/a b",
        "https://gw\x00.example.com",
        "https://gw.exa\u200dmple.com",
    ],
)
def test_host_with_whitespace_or_control_characters_is_rejected(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match=r"'val'.*Host.*U\+"):
        settings_of(host)


_BAD_CHARS = st.characters(whitelist_categories=("Zs", "Zl", "Zp", "Cc", "Cf"))


@settings(max_examples=150, deadline=None)
@given(char=_BAD_CHARS, position=st.integers(min_value=9, max_value=30))
def test_any_inner_whitespace_or_control_character_in_host_is_rejected(
    char: str, position: int
) -> None:
    base = "https://gateway.example.com/prefix"
    with pytest.raises(ConnectionConfigError, match="Host"):
        settings_of(base[:position] + char + base[position:])


@pytest.mark.parametrize(
    "host", ["https://xn--a.com", "https://xn--zz-.com/p", "https://ab\u0301\u0301--.com"]
)
def test_invalid_international_host_is_a_config_error(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match=r"Host.*not a valid host name"):
        settings_of(host)


def test_valid_international_host_is_accepted() -> None:
    assert settings_of("https://例え.jp/api").base_url == "https://例え.jp/api"


@pytest.mark.parametrize(
    "host",
    [
        f"https://user:{SECRET}@gw.example.com",
        f"https://{SECRET}@gw.example.com/p",
        f"user:{SECRET}@gw.example.com:8443",
        f"http://user:{SECRET}@127.0.0.1:8080",
    ],
)
def test_userinfo_in_host_is_rejected_and_never_shown(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match="Password field") as info:
        settings_of(host)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_port_is_added_to_a_host_with_a_scheme() -> None:
    assert settings_of("https://gw.example.com/p", port=8443).base_url == (
        "https://gw.example.com:8443/p"
    )


def test_port_equal_to_the_hosts_port_is_fine() -> None:
    assert settings_of("https://gw.example.com:8443", port=8443).base_url == (
        "https://gw.example.com:8443"
    )


@pytest.mark.parametrize("host", ["https://gw.example.com:9000", "gw.example.com:9000"])
def test_port_that_disagrees_with_the_host_is_rejected(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match=r"port 9000.*Port field says 8443"):
        settings_of(host, port=8443)


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_port_out_of_range_is_rejected(port: int) -> None:
    with pytest.raises(ConnectionConfigError, match="Port must be"):
        settings_of("https://gw.example.com", port=port)


def test_port_without_host_is_rejected() -> None:
    with pytest.raises(ConnectionConfigError, match="Port is set but Host is empty"):
        settings_of(None, port=8443)


# ---- integer extras are whole numbers or errors, never truncated or clamped -------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_retries", 2.7),
        ("max_retries", "2.7"),
        ("max_retries", True),
        ("max_connections", 0),
        ("max_connections", "0"),
        ("max_connections", 1.5),
        ("max_connections", -3),
    ],
)
def test_odd_integer_extras_are_rejected(name: str, value: object) -> None:
    with pytest.raises(ConnectionConfigError, match=rf"'val'.*{name}.*got"):
        settings_of(**{name: value})


def _not_whole(value: float) -> bool:
    return not (math.isfinite(value) and value.is_integer())


_ODD_INTEGERS = st.one_of(
    st.floats().filter(_not_whole),
    st.booleans(),
    st.integers(max_value=-1),
    st.text(alphabet=st.characters(whitelist_categories=("L", "P")), min_size=1),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["max_retries", "max_connections"]), value=_ODD_INTEGERS)
def test_every_odd_integer_extra_is_rejected(name: str, value: object) -> None:
    with pytest.raises(ConnectionConfigError, match=name):
        settings_of(**{name: value})


@settings(max_examples=50, deadline=None)
@given(number=st.integers(min_value=1, max_value=10_000))
def test_whole_numbers_are_kept_exactly(number: int) -> None:
    for value in (number, float(number), str(number)):
        parsed = settings_of(max_retries=value, max_connections=value)
        assert (parsed.max_retries, parsed.max_connections) == (number, number)


# ---- the form shows every extra the hook reads --------------------------------------------------


def test_form_has_a_field_for_every_extra_the_hook_reads() -> None:
    assert set(CONN_FIELDS) == set(KNOWN_EXTRAS)
    assert "verify" in CONN_FIELDS
    assert "max_response_bytes" in CONN_FIELDS
    for field in CONN_FIELDS.values():
        assert field["label"]
        assert field["description"]


def test_form_hides_only_fields_the_docs_do_not_ask_for() -> None:
    assert set(UI_FIELD_BEHAVIOUR["hidden-fields"]) == {"schema", "login", "port"}


# ---- the test button ------------------------------------------------------------------------


def test_test_connection_success_message_reads_plainly(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection("val", fake.base_url)
    ok, message = MessageBatchHook("val").test_connection()
    assert ok is True
    assert message == f"Connected to {fake.base_url}; the API key was accepted."


def test_test_connection_reports_a_bad_host_as_a_config_error(
    set_connection: Callable[..., None],
) -> None:
    set_connection("val", f"https://user:{SECRET}@gw.example.com")
    ok, message = MessageBatchHook("val").test_connection()
    assert ok is False
    assert "Password field" in message
    assert SECRET not in message
