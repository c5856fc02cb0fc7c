"""The decoded size of every response is capped while it is read.

Counts, not clocks: how many bytes a server managed to write before the client stopped reading,
and how much memory (tracemalloc's peak) a gzip bomb cost.
"""

from __future__ import annotations

import asyncio
import json
import math
import tracemalloc
import warnings
from collections.abc import Callable, Iterator

import httpx
import pytest
from airflow.sdk import Connection
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_server import RawServer, batch_json, endless, fixed, gzip_bomb

from airflow_provider_batches._connection.extras import DEFAULT_MAX_RESPONSE_BYTES
from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches._http.send import ApiRequest, Reply, response_json, send
from airflow_provider_batches.exceptions import (
    ConnectionConfigError,
    InternalServerError,
    InvalidResponseError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer, Fault
from airflow_provider_batches.utils.trigger_events import error_event

MIB = 1024 * 1024
BATCH_ID = "msgbatch_raw"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


def hook_for(
    set_connection: Callable[..., None], base_url: str, **extra: object
) -> MessageBatchHook:
    extra.setdefault("max_retries", 0)
    set_connection("caps", base_url, **extra)
    return MessageBatchHook("caps")


# ---- success bodies ----------------------------------------------------------------------------


def test_body_over_the_configured_cap_is_an_invalid_response(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(kind="body", body={**served, "padding": "x" * (2 * MIB)}, batch_id=served["id"])
    )
    hook = hook_for(set_connection, fake.base_url, max_response_bytes=MIB)
    with pytest.raises(InvalidResponseError, match="larger than 1048576 bytes") as info:
        hook.retrieve_batch(served["id"])
    event = error_event(served["id"], info.value, None, None)
    assert len(json.dumps(event)) < 4096


def test_the_same_body_under_the_default_cap_parses(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(kind="body", body={**served, "padding": "x" * (2 * MIB)}, batch_id=served["id"])
    )
    assert hook_for(set_connection, fake.base_url).retrieve_batch(served["id"]).id == served["id"]


def test_endless_body_is_not_read_past_the_cap(set_connection: Callable[..., None]) -> None:
    total = 200 * MIB
    with RawServer(endless(200, total)) as server:
        hook = hook_for(set_connection, server.base_url, max_response_bytes=MIB)
        with pytest.raises(InvalidResponseError, match="larger than"):
            hook.retrieve_batch(BATCH_ID)
        close_shared_sync_clients()
    # Socket buffers hold a few MB; reading it all would have taken every byte.
    assert server.body_bytes_sent < 40 * MIB


def test_endless_body_is_not_read_past_the_cap_async(set_connection: Callable[..., None]) -> None:
    from airflow_provider_batches._http.clients import aclose_shared_clients

    total = 200 * MIB
    with RawServer(endless(200, total)) as server:
        hook = hook_for(set_connection, server.base_url, max_response_bytes=MIB)

        async def run() -> None:
            try:
                await hook.aretrieve_batch(BATCH_ID)
            finally:
                await aclose_shared_clients()

        with pytest.raises(InvalidResponseError, match="larger than"):
            asyncio.run(run())
    assert server.body_bytes_sent < 40 * MIB


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gzip_bomb_is_cut_while_decoding(set_connection: Callable[..., None], mode: str) -> None:
    from airflow_provider_batches._http.clients import aclose_shared_clients

    bomb = gzip_bomb(200 * MIB)
    assert len(bomb) < 400 * 1024
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with RawServer(fixed(200, headers, bomb)) as server:
        hook = hook_for(set_connection, server.base_url, max_response_bytes=MIB)
        hook.settings  # noqa: B018 - load the connection before measuring

        async def run_async() -> None:
            try:
                await hook.aretrieve_batch(BATCH_ID)
            finally:
                await aclose_shared_clients()

        tracemalloc.start()
        try:
            call = (
                (lambda: hook.retrieve_batch(BATCH_ID))
                if mode == "sync"
                else (lambda: asyncio.run(run_async()))
            )
            with pytest.raises(InvalidResponseError, match="larger than") as info:
                call()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Decoding it whole would hold 200 MB; a bounded decoder holds about the cap.
    assert peak < 24 * MIB
    assert len(json.dumps(error_event(BATCH_ID, info.value, None, None))) < 4096


def test_gzip_body_within_the_cap_is_decoded(set_connection: Callable[..., None]) -> None:
    import gzip

    body = gzip.compress(json.dumps(batch_json()).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with RawServer(fixed(200, headers, body)) as server:
        batch = hook_for(set_connection, server.base_url).retrieve_batch(BATCH_ID)
    assert batch.to_xcom() == batch_json()


def test_unknown_content_encoding_is_an_invalid_response(
    set_connection: Callable[..., None],
) -> None:
    headers = {"content-type": "application/json", "content-encoding": "br"}
    with (
        RawServer(fixed(200, headers, b"\x1b\x00\x00")) as server,
        pytest.raises(InvalidResponseError, match="content-encoding 'br'"),
    ):
        hook_for(set_connection, server.base_url).retrieve_batch(BATCH_ID)


# ---- error bodies --------------------------------------------------------------------------


def test_error_body_is_read_only_up_to_a_small_cap(set_connection: Callable[..., None]) -> None:
    with RawServer(endless(503, 200 * MIB)) as server:
        hook = hook_for(set_connection, server.base_url)
        with pytest.raises(InternalServerError) as info:
            hook.retrieve_batch(BATCH_ID)
        close_shared_sync_clients()
    assert info.value.status_code == 503
    assert "not read in full" in info.value.message
    assert len(str(info.value)) < 2000
    assert server.body_bytes_sent < 40 * MIB


# ---- the default fits the largest legitimate answer -----------------------------------------


def test_a_list_page_of_1000_batches_fits_the_default_cap_with_room(
    fake: FakeBatchesServer,
) -> None:
    fake.create_batches_bulk(1000, 0.0, 0.0, num_requests=100_000)
    settings_ = ClientSettings(conn_id="caps", base_url=fake.base_url, api_key=fake.api_key)
    request = ApiRequest("GET", settings_.batches_url() + "?limit=1000")
    sizes: list[int] = []

    def parse(reply: Reply, request: ApiRequest, secret: str) -> int:
        sizes.append(len(reply.content))
        return len(response_json(reply, request, secret)["data"])

    with httpx.Client() as client:
        assert send(client, settings_, request, parse) == 1000
    assert sizes[0] * 4 < DEFAULT_MAX_RESPONSE_BYTES


# ---- the extra -------------------------------------------------------------------------------


def _settings(**extra: object) -> ClientSettings:
    conn = Connection(
        conn_id="caps", conn_type="anthropic_batches", password="k", extra=json.dumps(extra)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return ClientSettings.from_connection(conn)


def test_max_response_bytes_default_and_override() -> None:
    assert _settings().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 8 * MIB
    assert _settings(max_response_bytes=2048).max_response_bytes == 2048
    assert _settings(max_response_bytes="65536").max_response_bytes == 65536


@settings(max_examples=80, deadline=None)
@given(
    value=st.one_of(
        st.integers(max_value=1023),
        st.floats().filter(lambda f: not (math.isfinite(f) and f.is_integer() and f >= 1024)),
        st.booleans(),
        st.text(alphabet=st.characters(whitelist_categories=("L", "P", "Zs")), min_size=1),
        st.lists(st.integers(), max_size=2),
    )
)
def test_bad_max_response_bytes_is_a_config_error(value: object) -> None:
    with pytest.raises(ConnectionConfigError, match="max_response_bytes"):
        _settings(max_response_bytes=value)
