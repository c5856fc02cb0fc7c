"""ClientSettings.from_connection and batch id validation / URL quoting."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from airflow.sdk import Connection
from helpers import API_KEY

from airflow_provider_batches._connection.extras import (
    DEFAULT_ANTHROPIC_VERSION,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from airflow_provider_batches._connection.settings import (
    DEFAULT_BASE_URL,
    ClientSettings,
    InsecureEndpointWarning,
)
from airflow_provider_batches.batch_ids import (
    MAX_BATCH_ID_LENGTH,
    quote_batch_id,
    validate_batch_id,
)
from airflow_provider_batches.exceptions import ConnectionConfigError, InvalidBatchIdError

BATCH_ID = "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"


def make_conn(
    *,
    host: str | None = None,
    password: str | None = API_KEY,
    extra: dict[str, Any] | None = None,
    conn_type: str = "anthropic_batches",
    conn_id: str = "my_conn",
    **fields: Any,
) -> Connection:
    return Connection(
        conn_id=conn_id,
        conn_type=conn_type,
        host=host,
        password=password,
        extra=None if extra is None else json.dumps(extra),
        **fields,
    )


def settings_of(**kwargs: Any) -> ClientSettings:
    """Settings from a connection, failing on any warning (warnings are tested separately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return ClientSettings.from_connection(make_conn(**kwargs))


# ---- defaults and base URL ----------------------------------------------------------------------


def test_defaults() -> None:
    settings = settings_of()
    assert settings.conn_id == "my_conn"
    assert settings.base_url == DEFAULT_BASE_URL == "https://api.anthropic.com"
    assert settings.api_key == API_KEY
    assert settings.anthropic_version == DEFAULT_ANTHROPIC_VERSION == "2023-06-01"
    assert settings.betas == ()
    assert settings.timeout == DEFAULT_TIMEOUT
    assert settings.max_retries == DEFAULT_MAX_RETRIES == 2
    assert settings.max_connections == DEFAULT_MAX_CONNECTIONS
    assert settings.verify is True
    assert settings.workspace_id is None
    assert (
        settings.batch_url(BATCH_ID) == f"https://api.anthropic.com/v1/messages/batches/{BATCH_ID}"
    )
    assert settings.batches_url() == "https://api.anthropic.com/v1/messages/batches"


def test_empty_extras_object_gives_defaults() -> None:
    assert settings_of(extra={}) == settings_of()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com"),
        ("https://api.anthropic.com/", "https://api.anthropic.com"),
        ("api.anthropic.com", "https://api.anthropic.com"),
        ("gateway.example.com:8443", "https://gateway.example.com:8443"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765/", "http://localhost:8765"),
        ("https://gateway.example.com/anthropic", "https://gateway.example.com/anthropic"),
        ("https://gateway.example.com/anthropic/", "https://gateway.example.com/anthropic"),
        ("  https://api.anthropic.com  ", "https://api.anthropic.com"),
    ],
)
def test_base_url_from_host(host: str, expected: str) -> None:
    assert settings_of(host=host).base_url == expected


def test_path_prefix_is_kept_in_every_url() -> None:
    settings = settings_of(host="https://gateway.example.com/llm/anthropic/")
    assert settings.batches_url() == "https://gateway.example.com/llm/anthropic/v1/messages/batches"
    assert settings.batch_url(BATCH_ID) == (
        f"https://gateway.example.com/llm/anthropic/v1/messages/batches/{BATCH_ID}"
    )


def test_host_port_and_schema_fields_build_the_url() -> None:
    settings = settings_of(host="127.0.0.1", port=8080, schema="http")
    assert settings.base_url == "http://127.0.0.1:8080"


def test_host_and_port_without_schema_default_to_https() -> None:
    assert settings_of(host="api.example.com", port=8443).base_url == "https://api.example.com:8443"


def test_schema_that_is_not_a_scheme_is_ignored() -> None:
    # Airflow's Schema field is free text; only http/https pick the scheme.
    assert settings_of(host="api.example.com", schema="public").base_url == (
        "https://api.example.com"
    )


def test_port_field_goes_before_a_host_path_prefix() -> None:
    # Host "gateway.example.com/anthropic" with Port 8443 means the gateway on port 8443.
    settings = settings_of(host="gateway.example.com/anthropic", port=8443)
    assert settings.base_url == "https://gateway.example.com:8443/anthropic"
    assert (
        settings.batches_url() == "https://gateway.example.com:8443/anthropic/v1/messages/batches"
    )


@pytest.mark.parametrize(
    "host",
    ["ftp://files.example.com", "https://", "https://api.anthropic.com?x=1", "https://a.com/#frag"],
)
def test_unusable_host_is_a_config_error(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match="my_conn"):
        settings_of(host=host)


@pytest.mark.parametrize("host", ["http://127.0.0.1:99999", "https://api.example.com:notaport"])
def test_invalid_port_in_host_is_a_config_error(host: str) -> None:
    with pytest.raises(ConnectionConfigError, match="my_conn"):
        settings_of(host=host)


# ---- warnings about plain HTTP ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["http://api.example.com", "http://10.0.0.5:8080", "api.example.com"],
)
def test_plain_http_to_a_remote_host_warns(host: str) -> None:
    conn = make_conn(host=host, schema="http")
    with pytest.warns(InsecureEndpointWarning, match="plain HTTP"):
        settings = ClientSettings.from_connection(conn)
    assert settings.base_url.startswith("http://")


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8765",
        "http://localhost:8765",
        "http://[::1]:8765",
        "http://127.1.2.3",
        "https://api.example.com",
    ],
)
def test_loopback_or_https_does_not_warn(host: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClientSettings.from_connection(make_conn(host=host))


# ---- extras -------------------------------------------------------------------------------------


def test_every_known_extra_is_read() -> None:
    settings = settings_of(
        extra={
            "anthropic_version": "2025-01-01",
            "betas": ["message-batches-2024-09-24", "prompt-caching-2024-07-31"],
            "timeout": 12.5,
            "max_retries": 5,
            "max_connections": 7,
            "verify": False,
            "workspace_id": "wrkspc_123",
        }
    )
    assert settings.anthropic_version == "2025-01-01"
    assert settings.betas == ("message-batches-2024-09-24", "prompt-caching-2024-07-31")
    assert settings.timeout == 12.5
    assert settings.max_retries == 5
    assert settings.max_connections == 7
    assert settings.verify is False
    assert settings.workspace_id == "wrkspc_123"
    headers = settings.headers()
    assert headers["anthropic-version"] == "2025-01-01"
    assert headers["anthropic-beta"] == "message-batches-2024-09-24,prompt-caching-2024-07-31"
    assert headers["anthropic-workspace-id"] == "wrkspc_123"
    assert headers["x-api-key"] == API_KEY


def test_numbers_given_as_strings_are_accepted() -> None:
    settings = settings_of(extra={"timeout": "7.5", "max_retries": "3", "max_connections": "4"})
    assert (settings.timeout, settings.max_retries, settings.max_connections) == (7.5, 3, 4)


@pytest.mark.parametrize("version", ["2023-06-01", "2025-05-14", "1999-12-31"])
def test_anthropic_version_accepts_dates(version: str) -> None:
    assert settings_of(extra={"anthropic_version": version}).anthropic_version == version


@pytest.mark.parametrize(
    "version",
    [
        "2023-6-1",
        "20230601",
        "latest",
        "2023-06-01T00:00:00",
        " 2023-06-01",
        "2023-06-01\n",  # a stray newline would make the header value illegal
        "\uff12\uff10\uff12\uff13-\uff10\uff16-\uff10\uff11",  # full-width digits: not ASCII
        20230601,
        ["2023-06-01"],
    ],
)
def test_anthropic_version_rejects_non_dates(version: object) -> None:
    with pytest.raises(ConnectionConfigError, match="anthropic_version"):
        settings_of(extra={"anthropic_version": version})


@pytest.mark.parametrize(
    ("betas", "expected"),
    [
        (["message-batches-2024-09-24"], ("message-batches-2024-09-24",)),
        (
            ["message-batches-2024-09-24", "some-future-beta-2031-01-01"],
            ("message-batches-2024-09-24", "some-future-beta-2031-01-01"),
        ),
        ("message-batches-2024-09-24", ("message-batches-2024-09-24",)),
        (
            "message-batches-2024-09-24, pdfs-2024-09-25",
            ("message-batches-2024-09-24", "pdfs-2024-09-25"),
        ),
        ([" padded-beta "], ("padded-beta",)),
        ([], ()),
        ("", ()),
        (None, ()),
    ],
)
def test_betas_as_list_or_comma_string(betas: object, expected: tuple[str, ...]) -> None:
    settings = settings_of(extra={"betas": betas})
    assert settings.betas == expected
    if expected:
        assert settings.headers()["anthropic-beta"] == ",".join(expected)
    else:
        assert "anthropic-beta" not in settings.headers()


@pytest.mark.parametrize(
    "betas",
    [
        ["a,b"],
        ["has space"],
        ["ok", ""],
        "a,,b",
        ["tab\tbeta"],
        ["ctl\x01beta"],
        [1, 2],
        {"beta": True},
        42,
    ],
)
def test_bad_betas_are_config_errors(betas: object) -> None:
    with pytest.raises(ConnectionConfigError, match="betas"):
        settings_of(extra={"betas": betas})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", -1),
        ("timeout", "soon"),
        ("timeout", True),
        ("timeout", [30]),
        ("timeout", float("nan")),
        ("timeout", "nan"),
        ("timeout", "inf"),  # an infinite timeout cannot be handed to the socket layer
        ("max_retries", -1),
        ("max_retries", "two"),
        ("max_retries", "2.5"),
        ("max_retries", False),
        ("max_retries", {"n": 2}),
        ("max_connections", -5),
        ("max_connections", "many"),
    ],
)
def test_bad_numbers_are_config_errors_naming_the_field(name: str, value: object) -> None:
    with pytest.raises(ConnectionConfigError, match=rf"my_conn.*{name}") as info:
        settings_of(extra={name: value})
    expected = {
        "timeout": "finite positive number",
        "max_retries": "finite non-negative integer",
        "max_connections": "integer of at least 1",
    }[name]
    assert expected in str(info.value)


def test_zero_timeout_is_a_config_error() -> None:
    # httpx treats 0 as "fail at once": every request would fail with a confusing ConnectError.
    with pytest.raises(ConnectionConfigError, match=r"my_conn.*timeout"):
        settings_of(extra={"timeout": 0})


def test_zero_retries_is_allowed() -> None:
    assert settings_of(extra={"max_retries": 0}).max_retries == 0


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("false", False), ("TRUE", True)])
def test_verify_flags(value: object, expected: bool) -> None:
    assert settings_of(extra={"verify": value}).verify is expected


def test_verify_ca_bundle_path() -> None:
    assert settings_of(extra={"verify": "/etc/ssl/ca.pem"}).verify == "/etc/ssl/ca.pem"


@pytest.mark.parametrize("value", ["", 1, []])
def test_bad_verify_is_a_config_error(value: object) -> None:
    with pytest.raises(ConnectionConfigError, match="verify"):
        settings_of(extra={"verify": value})


@pytest.mark.parametrize("value", [123, "bad\nid"])
def test_bad_workspace_id_is_a_config_error(value: object) -> None:
    with pytest.raises(ConnectionConfigError, match="workspace_id"):
        settings_of(extra={"workspace_id": value})


def test_unknown_extras_warn_and_are_named() -> None:
    conn = make_conn(extra={"max_retry": 3, "timeout": 5})
    with pytest.warns(UserWarning, match="max_retry") as record:
        settings = ClientSettings.from_connection(conn)
    assert settings.timeout == 5.0
    assert settings.max_retries == DEFAULT_MAX_RETRIES
    assert all(API_KEY not in str(w.message) for w in record)


# ---- password, connection types, secrecy --------------------------------------------------------


@pytest.mark.parametrize("password", [None, ""])
def test_missing_password_names_the_password_field(password: str | None) -> None:
    with pytest.raises(ConnectionConfigError, match="Password") as info:
        ClientSettings.from_connection(make_conn(password=password))
    assert "my_conn" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("conn_type", ["http", "generic", "anthropic"])
def test_connection_of_another_type_works(conn_type: str) -> None:
    settings = settings_of(conn_type=conn_type, host="https://proxy.example.com/a")
    assert settings.base_url == "https://proxy.example.com/a"
    assert settings.api_key == API_KEY


def test_airflow_models_connection_works_too() -> None:
    from airflow.models import Connection as ModelConnection

    conn = ModelConnection(
        conn_id="model_conn",
        conn_type="anthropic_batches",
        host="https://gw.example.com/p/",
        password=API_KEY,
        extra=json.dumps({"max_retries": 4, "betas": "b1,b2"}),
    )
    settings = ClientSettings.from_connection(conn)
    assert settings.conn_id == "model_conn"
    assert settings.base_url == "https://gw.example.com/p"
    assert settings.max_retries == 4
    assert settings.betas == ("b1", "b2")


def test_repr_and_pool_key_never_contain_the_key() -> None:
    settings = settings_of(extra={"workspace_id": "wrkspc_1"})
    assert API_KEY not in repr(settings)
    assert API_KEY not in str(settings)
    assert API_KEY not in repr(settings.pool_key)
    assert "my_conn" in repr(settings)


def test_config_errors_never_contain_the_key() -> None:
    for extra in ({"timeout": "x"}, {"betas": [1]}, {"anthropic_version": "v"}):
        with pytest.raises(ConnectionConfigError) as info:
            settings_of(extra=extra)
        assert API_KEY not in str(info.value)
        assert API_KEY not in repr(info.value)


# ---- batch ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_id",
    [
        BATCH_ID,
        "msgbatch_01",
        "a",
        "batch-with-dashes_and_underscores.and.dots",
        "...",
        "x" * MAX_BATCH_ID_LENGTH,
        "100%",
        "bätch_ü",
        "id:with:colons",
    ],
)
def test_validate_batch_id_accepts_normal_ids(batch_id: str) -> None:
    assert validate_batch_id(batch_id) == batch_id


@pytest.mark.parametrize(
    ("batch_id", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\t", "empty"),
        ("msgbatch_1/cancel", "'/'"),
        ("../msgbatch_1", "'/'"),
        ("msgbatch\\1", "'\\\\\\\\'"),
        ("msgbatch_1?beta=true", "'\\?'"),
        ("msgbatch_1#frag", "'#'"),
        (".", "relative path segment"),
        ("..", "relative path segment"),
        ("msg batch", "U\\+0020"),
        ("msgbatch_1\n", "U\\+000A"),
        ("msgbatch\r\n1", "U\\+000D"),
        ("msgbatch\x001", "U\\+0000"),
        ("msgbatch\x7f1", "U\\+007F"),
        ("msgbatch\u200b1", "U\\+200B"),
        ("msgbatch\u20281", "U\\+2028"),
        ("x" * (MAX_BATCH_ID_LENGTH + 1), "more than 1024"),
    ],
)
def test_validate_batch_id_rejects_with_a_reason(batch_id: str, problem: str) -> None:
    with pytest.raises(InvalidBatchIdError, match=problem) as info:
        validate_batch_id(batch_id)
    assert isinstance(info.value, ValueError)
    assert "Invalid batch_id" in str(info.value)


def test_long_invalid_id_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidBatchIdError) as info:
        validate_batch_id("y" * 5000)
    assert "y" * 81 not in str(info.value)
    assert "5000 characters" in str(info.value)


@pytest.mark.parametrize("batch_id", [None, 123, b"msgbatch_1", ["msgbatch_1"]])
def test_validate_batch_id_rejects_non_strings(batch_id: object) -> None:
    with pytest.raises(InvalidBatchIdError, match="must be a string") as info:
        validate_batch_id(batch_id)
    assert type(batch_id).__name__ in str(info.value)


@pytest.mark.parametrize(
    ("batch_id", "segment"),
    [
        (BATCH_ID, BATCH_ID),
        ("100%", "100%25"),
        ("a%2Fb", "a%252Fb"),
        ("bätch", "b%C3%A4tch"),
        ("id:x;y=z&w", "id%3Ax%3By%3Dz%26w"),
        ("猫", "%E7%8C%AB"),
    ],
)
def test_batch_url_percent_encodes_the_segment(batch_id: str, segment: str) -> None:
    settings = settings_of()
    assert quote_batch_id(batch_id) == segment
    assert (
        settings.batch_url(batch_id) == f"https://api.anthropic.com/v1/messages/batches/{segment}"
    )


def test_batch_url_validates() -> None:
    with pytest.raises(InvalidBatchIdError):
        settings_of().batch_url("a/b")
