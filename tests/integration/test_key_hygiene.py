"""An API key or header value that HTTP cannot carry.

Surrounding whitespace is stripped with one warning; anything else is a ConnectionConfigError
naming the field; a request that still cannot be encoded fails at once, not as a transient
fault; and the key, raw or escaped, is in no log record, exception, event or result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus

import pytest
from airflow.sdk import Connection
from helpers import API_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches._http.send import ApiRequest, asend, redact, send
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    ApiKeyWhitespaceWarning,
    ConnectionConfigError,
    MessageBatchError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook, parse_batch
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.utils.trigger_events import error_event

BATCH_ID = "msgbatch_hygiene"

#: Passwords whose surrounding whitespace is pasted by accident: each must work as ``API_KEY``.
PADDED = {
    "trailing-newline": API_KEY + "\n",
    "trailing-crlf": API_KEY + "\r\n",
    "leading-tab": "\t" + API_KEY,
    "leading-space": " " + API_KEY,
}
#: Passwords that cannot travel in the ``x-api-key`` header even after stripping.
ILLEGAL = {
    "inner-newline": API_KEY[:20] + "\n" + API_KEY[20:],
    "inner-crlf": API_KEY[:20] + "\r\n" + API_KEY[20:],
    "inner-tab": API_KEY[:20] + "\t" + API_KEY[20:],
    "non-ascii": API_KEY[:20] + "é" + API_KEY[20:],
    "nul": API_KEY[:20] + "\x00" + API_KEY[20:],
    "line-separator": API_KEY[:20] + "\u2028" + API_KEY[20:],
}


def key_forms(key: str) -> set[str]:
    """The key as text may show it: raw, repr, escaped, JSON, percent-encoded, bytes repr."""
    forms = {
        key,
        repr(key)[1:-1],
        ascii(key)[1:-1],
        json.dumps(key)[1:-1],
        key.encode("unicode_escape").decode("ascii"),
        repr(key.encode("utf-8", "backslashreplace"))[2:-1],
        quote(key, safe=""),
        quote_plus(key),
    }
    core = key.strip()
    # Pieces of a key split by an illegal character are key material too.
    pieces = [part for part in core.replace("\r", "\n").split("\n") if len(part) >= 16]
    return forms | {core} | set(pieces)


def assert_key_absent(text: str, key: str) -> None:
    for form in key_forms(key):
        assert form not in text, "the key (or an escaped form of it) leaked"


def assert_error_clean(error: BaseException, key: str) -> None:
    """str, repr, pickle and the trigger's error event of ``error`` hold no form of the key."""
    assert_key_absent(str(error), key)
    assert_key_absent(repr(error), key)
    assert_key_absent(repr(pickle.dumps(error)), key)
    assert_key_absent(pickle.dumps(error).decode("latin-1"), key)
    if isinstance(error, MessageBatchError):
        event = error_event(BATCH_ID, error, None, None)
        assert_key_absent(json.dumps(event), key)
        assert_key_absent(json.dumps(event, ensure_ascii=False), key)


def make_conn(password: str, **extra: object) -> Connection:
    return Connection(
        conn_id="hygiene",
        conn_type="anthropic_batches",
        host="http://127.0.0.1:1",
        password=password,
        extra=json.dumps(extra),
    )


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


@pytest.fixture
def audit_logs(caplog: pytest.LogCaptureFixture) -> Callable[[str], None]:
    caplog.set_level(logging.DEBUG)

    def check(key: str) -> None:
        formatter = logging.Formatter()
        for record in caplog.records:
            assert_key_absent(formatter.format(record), key)
            assert_key_absent(repr(record.args), key)

    return check


# ---- surrounding whitespace: stripped, one warning, the request works ------------------------


@pytest.mark.parametrize("password", PADDED.values(), ids=PADDED.keys())
def test_padded_key_is_stripped_with_one_warning_and_works(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    audit_logs: Callable[[str], None],
    password: str,
) -> None:
    served = fake.create_batch(batch_id=BATCH_ID, ends_after=None)
    set_connection("hygiene", fake.base_url, api_key=password, max_retries=0)
    hook = MessageBatchHook("hygiene")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = hook.retrieve_batch(BATCH_ID)
    assert batch.to_xcom() == served
    assert fake.requests[-1].authenticated is True
    assert hook.settings.api_key == API_KEY
    key_warnings = [w for w in caught if issubclass(w.category, ApiKeyWhitespaceWarning)]
    assert len(key_warnings) == 1
    assert "Password" in str(key_warnings[0].message)
    for warning in caught:
        assert_key_absent(str(warning.message), password)
    assert_key_absent(json.dumps(batch.to_xcom()), password)
    audit_logs(password)


@settings(max_examples=60, deadline=None)
@given(
    before=st.text(alphabet=" \t\r\n\x0b\x0c", max_size=4),
    after=st.text(alphabet=" \t\r\n\x0b\x0c", max_size=4),
)
def test_any_surrounding_whitespace_is_stripped(before: str, after: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings_ = ClientSettings.from_connection(make_conn(before + API_KEY + after))
    assert settings_.api_key == API_KEY
    expected = 1 if before or after else 0
    assert sum(issubclass(w.category, ApiKeyWhitespaceWarning) for w in caught) == expected


# ---- illegal keys: a config error naming the field, never the value --------------------------


@pytest.mark.parametrize("password", ILLEGAL.values(), ids=ILLEGAL.keys())
def test_illegal_key_is_a_config_error_naming_the_field(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    audit_logs: Callable[[str], None],
    password: str,
) -> None:
    set_connection("hygiene", fake.base_url, api_key=password, max_retries=3)
    with pytest.raises(ConnectionConfigError, match="Password") as info:
        MessageBatchHook("hygiene").retrieve_batch(BATCH_ID)
    assert "API key" in str(info.value)
    assert fake.request_count() == 0
    assert_error_clean(info.value, password)
    audit_logs(password)


@pytest.mark.asyncio
@pytest.mark.parametrize("password", ILLEGAL.values(), ids=ILLEGAL.keys())
async def test_illegal_key_fails_the_async_path_the_same_way(
    fake: FakeBatchesServer, set_connection: Callable[..., None], password: str
) -> None:
    set_connection("hygiene", fake.base_url, api_key=password, max_retries=3)
    with pytest.raises(ConnectionConfigError, match="Password") as info:
        await MessageBatchHook("hygiene").aretrieve_batch(BATCH_ID)
    assert fake.request_count() == 0
    assert_error_clean(info.value, password)


_HEADER_ILLEGAL = st.characters(
    blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(0x21, 0x7F)]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(char=_HEADER_ILLEGAL, position=st.integers(min_value=1, max_value=len(API_KEY) - 1))
def test_every_header_illegal_character_in_the_key_is_rejected_without_showing_it(
    char: str, position: int
) -> None:
    password = API_KEY[:position] + char + API_KEY[position:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ConnectionConfigError, match="Password") as info:
            ClientSettings.from_connection(make_conn(password))
    assert_error_clean(info.value, password)
    for part in (API_KEY[:position], API_KEY[position:]):
        if len(part) >= 16:
            assert part not in str(info.value)


@settings(max_examples=100, deadline=None)
@given(char=_HEADER_ILLEGAL, field=st.sampled_from(["workspace_id", "betas", "anthropic_version"]))
def test_header_extras_with_illegal_characters_are_config_errors(char: str, field: str) -> None:
    value = f"wrkspc{char}01"
    extra: dict[str, object] = {field: [value] if field == "betas" else value}
    with pytest.raises(ConnectionConfigError, match=field):
        ClientSettings.from_connection(make_conn(API_KEY, **extra))


# ---- a request that cannot be encoded is a permanent error, not a transient one --------------


def _unchecked_settings(base_url: str, **fields: object) -> ClientSettings:
    """Settings built around the loader's checks, as a caller constructing them directly would."""
    values: dict[str, object] = {
        "conn_id": "hygiene",
        "base_url": base_url,
        "api_key": API_KEY,
        "max_retries": 3,
    }
    values.update(fields)
    return ClientSettings(**values)  # type: ignore[arg-type]


UNSENDABLE = {
    "key-with-newline": {"api_key": API_KEY + "\n"},
    "key-with-inner-crlf": {"api_key": API_KEY[:20] + "\r\n" + API_KEY[20:]},
    "non-ascii-key": {"api_key": API_KEY + "é"},
    "non-ascii-workspace": {"workspace_id": "wrkspc_é"},
    "control-in-beta": {"betas": ("beta\x01",)},
}


@pytest.mark.parametrize("fields", UNSENDABLE.values(), ids=UNSENDABLE.keys())
def test_unsendable_request_is_permanent_and_never_retried(
    fake: FakeBatchesServer, audit_logs: Callable[[str], None], fields: dict[str, object]
) -> None:
    import httpx

    settings_ = _unchecked_settings(fake.base_url, **fields)
    request = ApiRequest("GET", settings_.batch_url(BATCH_ID), BATCH_ID)
    with httpx.Client() as client, pytest.raises(APIConnectionError) as info:
        send(client, settings_, request, parse_batch, sleep=lambda _: None)
    assert info.value.retryable is False
    assert info.value.attempts == 1
    assert fake.request_count() == 0
    assert "Fix the connection" in str(info.value)
    assert_error_clean(info.value, settings_.api_key)
    audit_logs(settings_.api_key)


@pytest.mark.parametrize("fields", UNSENDABLE.values(), ids=UNSENDABLE.keys())
def test_unsendable_request_is_permanent_on_the_async_path(
    fake: FakeBatchesServer, fields: dict[str, object]
) -> None:
    import httpx

    settings_ = _unchecked_settings(fake.base_url, **fields)
    request = ApiRequest("GET", settings_.batch_url(BATCH_ID), BATCH_ID)

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            await asend(client, asyncio.Semaphore(1), settings_, request, parse_batch)

    with pytest.raises(APIConnectionError) as info:
        asyncio.run(run())
    assert info.value.retryable is False
    assert fake.request_count() == 0
    assert_error_clean(info.value, settings_.api_key)


# ---- redaction covers escaped forms and URL user info ------------------------------------------


@settings(max_examples=200, deadline=None)
@given(char=_HEADER_ILLEGAL, position=st.integers(min_value=1, max_value=len(API_KEY) - 1))
def test_redact_removes_every_escaped_form_of_the_key(char: str, position: int) -> None:
    key = API_KEY[:position] + char + API_KEY[position:]
    for form in key_forms(key) - {API_KEY[:position], API_KEY[position:]}:
        text = f"Illegal header value b'{form}' in request"
        assert_key_absent(redact(text, key).replace("[redacted]", ""), key)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2-SECRET@gw.example.com/v1",
        "http://hunter2-SECRET@127.0.0.1:8080/",
        "see https://a:hunter2-SECRET@h/x and more",
    ],
)
def test_redact_removes_url_user_info(url: str) -> None:
    shown = redact(url, API_KEY)
    assert "hunter2-SECRET" not in shown
    assert "[redacted]@" in shown
