"""MessageBatchHook (sync) against the embedded fake API over real sockets."""

from __future__ import annotations

import json
import logging
import pickle
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import API_KEY, assert_no_secret_in_records, connection_json

from airflow_provider_batches import __version__
from airflow_provider_batches._http.clients import close_shared_sync_clients
from airflow_provider_batches.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchCreateOutcomeUnknownError,
    BillingError,
    ConflictError,
    InternalServerError,
    InvalidBatchIdError,
    InvalidResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    RequestTooLargeError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.testing import FakeBatchesServer, Fault

WRONG_KEY = "sk-ant-api03-WRONGKEY-0000000000000000-NOT-VALID"
CONN_ID = "batches_test"

Connect = Callable[..., MessageBatchHook]


# ---- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of every test in this module is searched for the API key."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    assert_no_secret_in_records(records, API_KEY, WRONG_KEY)


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    close_shared_sync_clients()
    yield
    close_shared_sync_clients()


@pytest.fixture
def connect(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> Connect:
    """``connect(**extras)``: a fresh hook on connection ``CONN_ID`` pointing at the fake."""

    def _connect(
        conn_id: str = CONN_ID,
        *,
        api_key: str = API_KEY,
        base_url: str | None = None,
        **extras: Any,
    ) -> MessageBatchHook:
        extras.setdefault("max_retries", 2)
        set_connection(conn_id, base_url or fake.base_url, api_key=api_key, **extras)
        return MessageBatchHook(conn_id)

    return _connect


@pytest.fixture
def echoing_server(caplog: pytest.LogCaptureFixture) -> None:
    """For tests whose fake echoes the key in response headers on purpose.

    httpcore's DEBUG trace prints raw response headers; that third-party trace is off in any
    real deployment, so it is left out of the log audit here. Everything else is still audited.
    """
    caplog.set_level(logging.INFO, logger="httpcore")


class CapturedResponse:
    """Status, headers and raw body of a response the hook read (it streams every body)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.body = bytearray()

    def json(self) -> Any:
        return json.loads(self.body)


class _TeeStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, record: CapturedResponse) -> None:
        self._inner = inner
        self._record = record

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._record.body += chunk
            yield chunk

    def close(self) -> None:
        self._inner.close()


def capture_responses(hook: MessageBatchHook) -> list[CapturedResponse]:
    """Responses the hook's shared client receives, observed through httpx's event hooks."""
    seen: list[CapturedResponse] = []

    def on_response(response: httpx.Response) -> None:
        record = CapturedResponse(response)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _TeeStream(response.stream, record)
        seen.append(record)

    hook.get_conn().event_hooks["response"].append(on_response)
    return seen


def assert_secret_free(exc: BaseException) -> None:
    """The key is not in the exception's text, fields or pickled form; pickling keeps fields."""
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)
    assert API_KEY not in repr(exc.args)
    data = pickle.dumps(exc)
    assert API_KEY.encode() not in data
    again = pickle.loads(data)
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    if isinstance(exc, APIError):
        fields = exc.to_dict()
        assert API_KEY not in json.dumps(fields)
        assert again.to_dict() == fields


def free_closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_gap(fake: FakeBatchesServer) -> float:
    """Seconds between the last two requests the fake received."""
    first, second = fake.requests[-2:]
    return second.received_at - first.received_at


# ---- success ------------------------------------------------------------------------------------


def test_retrieve_batch_returns_the_exact_fields(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(num_requests=7, ends_after=None)
    hook = connect()
    responses = capture_responses(hook)

    batch = hook.retrieve_batch(served["id"])

    assert isinstance(batch, MessageBatch)
    assert batch.to_xcom() == served
    assert batch.to_xcom() == responses[-1].json()
    assert batch.id == served["id"]
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 7
    assert batch.total_requests == 7
    assert isinstance(batch.created_at, datetime)
    assert batch.created_at.utcoffset() == timedelta(0)
    assert batch.expires_at - batch.created_at == timedelta(hours=24)
    assert batch.ended_at is None
    assert batch.cancel_initiated_at is None
    assert batch.archived_at is None
    assert batch.results_url is None
    assert fake.request_count(served["id"], "GET") == 1


def test_retrieve_ended_batch(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(
        num_requests=10,
        ends_after=0,
        outcomes={"succeeded": 6, "errored": 2, "canceled": 1, "expired": 1},
    )
    batch = connect().retrieve_batch(served["id"])
    assert batch.is_ended
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 6, 2)
    assert (counts.canceled, counts.expired) == (1, 1)
    assert batch.ended_at is not None
    assert batch.results_url == f"{fake.base_url}/v1/messages/batches/{served['id']}/results"
    assert batch.to_xcom() == fake.get_batch(served["id"])


def test_unknown_status_from_the_server_parses(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.set_status_override(served["id"], "archiving")
    batch = connect().retrieve_batch(served["id"])
    assert batch.processing_status == "archiving"
    assert not batch.is_ended
    assert not batch.is_known_status


def test_percent_and_unicode_ids_reach_the_server_intact(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    batch_id = "msgbatch_ü%20x:y"
    fake.create_batch(batch_id=batch_id, ends_after=None)
    batch = connect().retrieve_batch(batch_id)
    assert batch.id == batch_id
    seen = fake.requests[-1]
    assert seen.batch_id == batch_id
    assert seen.raw_target == "/v1/messages/batches/msgbatch_%C3%BC%2520x%3Ay"


def test_connection_of_another_type_works(
    fake: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(connection_json(fake.base_url, max_retries=0))
    conn["conn_type"] = "http"
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN_HTTP", json.dumps(conn))
    served = fake.create_batch(ends_after=None)
    assert MessageBatchHook("plain_http").retrieve_batch(served["id"]).id == served["id"]


def test_path_prefix_is_kept(fake: FakeBatchesServer, connect: Connect) -> None:
    hook = connect(base_url=fake.base_url + "/gateway/", max_retries=0)
    with pytest.raises(NotFoundError) as info:
        hook.retrieve_batch("msgbatch_x")
    assert fake.requests[-1].path == "/gateway/v1/messages/batches/msgbatch_x"
    assert info.value.url == f"{fake.base_url}/gateway/v1/messages/batches/msgbatch_x"


# ---- headers ------------------------------------------------------------------------------------


def test_default_headers(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    connect().retrieve_batch(served["id"])
    seen = fake.requests[-1]
    assert seen.authenticated is True
    assert seen.headers["x-api-key"] == "<redacted>"
    assert "authorization" not in seen.headers
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in seen.headers
    assert "anthropic-workspace-id" not in seen.headers
    assert seen.headers["user-agent"] == f"airflow-provider-batches/{__version__}"
    assert seen.headers["accept"] == "application/json"
    assert seen.query == {}


@pytest.mark.parametrize(
    ("betas", "header"),
    [
        (["message-batches-2024-09-24"], "message-batches-2024-09-24"),
        (
            ["message-batches-2024-09-24", "new-beta-2030-01-01"],
            "message-batches-2024-09-24,new-beta-2030-01-01",
        ),
        ("pdfs-2024-09-25 , files-api-2025-04-14", "pdfs-2024-09-25,files-api-2025-04-14"),
    ],
)
def test_custom_headers(
    fake: FakeBatchesServer, connect: Connect, betas: object, header: str
) -> None:
    served = fake.create_batch(ends_after=None)
    hook = connect(anthropic_version="2025-02-19", betas=betas, workspace_id="wrkspc_01abc")
    hook.retrieve_batch(served["id"])
    seen = fake.requests[-1]
    assert seen.authenticated is True
    assert seen.headers["anthropic-version"] == "2025-02-19"
    assert seen.headers["anthropic-beta"] == header
    assert seen.headers["anthropic-workspace-id"] == "wrkspc_01abc"


def test_empty_betas_send_no_beta_header(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    connect(betas=[]).retrieve_batch(served["id"])
    assert "anthropic-beta" not in fake.requests[-1].headers


# ---- error statuses -----------------------------------------------------------------------------

STATUS_CASES = [
    (400, BadRequestError, "invalid_request_error", False),
    (401, AuthenticationError, "authentication_error", False),
    (402, BillingError, "billing_error", False),
    (403, PermissionDeniedError, "permission_error", False),
    (404, NotFoundError, "not_found_error", False),
    (408, RequestTimeoutError, "timeout_error", True),
    (409, ConflictError, "api_error", True),
    (413, RequestTooLargeError, "request_too_large", False),
    (429, RateLimitError, "rate_limit_error", True),
    (500, InternalServerError, "api_error", True),
    (502, InternalServerError, "api_error", True),
    (503, InternalServerError, "api_error", True),
    (504, InternalServerError, "timeout_error", True),
    (529, OverloadedError, "overloaded_error", True),
]


@pytest.mark.parametrize(("status", "cls", "error_type", "retryable"), STATUS_CASES)
def test_error_status_maps_to_exception(
    fake: FakeBatchesServer,
    connect: Connect,
    status: int,
    cls: type[APIStatusError],
    error_type: str,
    retryable: bool,
) -> None:
    served = fake.create_batch(ends_after=None)
    batch_id = served["id"]
    message = f"injected failure {status}"
    fake.inject_fault(Fault(kind="status", status=status, message=message, batch_id=batch_id))
    hook = connect(max_retries=0)
    responses = capture_responses(hook)

    with pytest.raises(APIStatusError) as info:
        hook.retrieve_batch(batch_id)

    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.error_type == error_type
    assert exc.message == message
    assert exc.batch_id == batch_id
    assert exc.method == "GET"
    assert exc.url == f"{fake.base_url}/v1/messages/batches/{batch_id}"
    assert exc.retryable is retryable
    assert exc.attempts == 1
    assert exc.retry_after is None
    # The request id is the one the server sent, in its header and its error body alike.
    (response,) = responses
    assert response.status_code == status
    assert exc.request_id is not None
    assert exc.request_id.startswith("req_")
    assert exc.request_id == response.headers["request-id"]
    assert exc.request_id == response.json()["request_id"]
    text = str(exc)
    for part in (message, f"HTTP {status}", error_type, batch_id, exc.request_id, "GET"):
        assert part in text
    assert fake.request_count(batch_id) == 1
    assert_secret_free(exc)


def test_wrong_key_is_an_authentication_error_not_retried(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    hook = connect(api_key=WRONG_KEY, max_retries=3)
    with pytest.raises(AuthenticationError) as info:
        hook.retrieve_batch(served["id"])
    assert info.value.status_code == 401
    assert info.value.error_type == "authentication_error"
    assert fake.requests[-1].authenticated is False
    assert fake.request_count() == 1
    assert WRONG_KEY not in str(info.value)
    assert_secret_free(info.value)


def test_unknown_batch_is_not_found_not_retried(fake: FakeBatchesServer, connect: Connect) -> None:
    hook = connect(max_retries=3)
    responses = capture_responses(hook)
    with pytest.raises(NotFoundError) as info:
        hook.retrieve_batch("msgbatch_doesnotexist")
    exc = info.value
    assert exc.status_code == 404
    assert exc.error_type == "not_found_error"
    assert "msgbatch_doesnotexist" in exc.message
    assert exc.request_id == responses[-1].headers["request-id"]
    assert fake.request_count("msgbatch_doesnotexist") == 1
    assert_secret_free(exc)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_errors_are_sent_exactly_once(
    fake: FakeBatchesServer, connect: Connect, status: int
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=status, times=-1))
    with pytest.raises(APIStatusError) as info:
        connect(max_retries=3).retrieve_batch(served["id"])
    assert info.value.status_code == status
    assert info.value.attempts == 1
    assert fake.request_count() == 1


# ---- retries ------------------------------------------------------------------------------------


def test_rate_limited_twice_then_success_is_three_requests(
    fake: FakeBatchesServer, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, times=2, headers={"retry-after-ms": "10"}))
    batch = connect(max_retries=2).retrieve_batch(served["id"])
    assert batch.to_xcom() == fake.get_batch(served["id"])
    assert fake.request_count(served["id"], "GET") == 3
    retries = [r for r in caplog.records if "Retrying GET" in r.getMessage()]
    assert len(retries) == 2
    assert "retry 1 of 2" in retries[0].getMessage()
    assert "retry 2 of 2" in retries[1].getMessage()


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_server_errors_beyond_max_retries_raise_with_attempts(
    fake: FakeBatchesServer, connect: Connect, max_retries: int
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=500, times=-1, headers={"retry-after-ms": "5"}))
    with pytest.raises(InternalServerError) as info:
        connect(max_retries=max_retries).retrieve_batch(served["id"])
    exc = info.value
    assert exc.attempts == max_retries + 1
    assert exc.retryable is True
    assert exc.retry_after == pytest.approx(0.005)
    assert fake.request_count(served["id"]) == max_retries + 1
    assert_secret_free(exc)


@pytest.mark.parametrize("status", [408, 409, 502, 503, 504, 529])
def test_transient_statuses_are_retried(
    fake: FakeBatchesServer, connect: Connect, status: int
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=status, headers={"retry-after-ms": "1"}))
    assert connect(max_retries=1).retrieve_batch(served["id"]).id == served["id"]
    assert fake.request_count(served["id"]) == 2


def test_retry_after_ms_is_honored(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, headers={"retry-after-ms": "300"}))
    hook = connect(max_retries=1)
    hook.settings  # load the connection before timing  # noqa: B018
    start = time.monotonic()
    hook.retrieve_batch(served["id"])
    assert time.monotonic() - start >= 0.3
    assert request_gap(fake) >= 0.3
    assert fake.request_count(served["id"]) == 2


def test_retry_after_seconds_is_honored(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=503, headers={"retry-after": "0.4"}))
    hook = connect(max_retries=1)
    hook.settings  # noqa: B018
    start = time.monotonic()
    hook.retrieve_batch(served["id"])
    assert time.monotonic() - start >= 0.4
    assert request_gap(fake) >= 0.4


def test_retry_after_is_reported_on_the_final_error(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, headers={"retry-after": "12"}))
    with pytest.raises(RateLimitError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert info.value.retry_after == 12.0
    assert info.value.to_dict()["retry_after"] == 12.0


def test_backoff_without_retry_after_waits_at_least_the_jittered_base(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=503))
    connect(max_retries=1).retrieve_batch(served["id"])
    assert fake.request_count(served["id"]) == 2
    assert request_gap(fake) >= 0.5 * 0.75


def test_x_should_retry_false_stops_retries(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(kind="status", status=503, times=-1, headers={"x-should-retry": "false"})
    )
    with pytest.raises(InternalServerError) as info:
        connect(max_retries=3).retrieve_batch(served["id"])
    assert info.value.retryable is False
    assert info.value.attempts == 1
    assert fake.request_count() == 1


def test_x_should_retry_true_retries_a_400(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(
            kind="status",
            status=400,
            headers={"x-should-retry": "true", "retry-after-ms": "1"},
        )
    )
    assert connect(max_retries=2).retrieve_batch(served["id"]).id == served["id"]
    assert fake.request_count() == 2


# ---- transport failures and bad bodies ----------------------------------------------------------

BROKEN = [
    ("drop", APIConnectionError, None),
    ("reset", APIConnectionError, None),
    ("truncated", InvalidResponseError, "not valid JSON"),
    ("html", InvalidResponseError, "text/html"),
]


@pytest.mark.parametrize(("kind", "cls", "text"), BROKEN)
def test_broken_responses_raise_the_right_error(
    fake: FakeBatchesServer, connect: Connect, kind: str, cls: type[APIError], text: str | None
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind=kind, times=-1))  # type: ignore[arg-type]
    with pytest.raises(APIError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    exc = info.value
    assert type(exc) is cls
    assert exc.retryable is True
    assert exc.batch_id == served["id"]
    assert exc.method == "GET"
    if cls is InvalidResponseError:
        assert exc.status_code == 200
    else:
        assert exc.status_code is None
        assert "without a response" in exc.message
    if text:
        assert text in exc.message
    assert fake.request_count() == 1
    assert_secret_free(exc)


@pytest.mark.parametrize("kind", [kind for kind, _, _ in BROKEN])
def test_broken_responses_are_retried(fake: FakeBatchesServer, connect: Connect, kind: str) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind=kind))  # type: ignore[arg-type]
    batch = connect(max_retries=1).retrieve_batch(served["id"])
    assert batch.to_xcom() == fake.get_batch(served["id"])
    assert fake.request_count() == 2


def test_dropped_connection_beyond_max_retries(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="drop", times=-1))
    with pytest.raises(APIConnectionError) as info:
        connect(max_retries=1).retrieve_batch(served["id"])
    assert type(info.value) is APIConnectionError
    assert info.value.attempts == 2
    assert fake.request_count() == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"id": "msgbatch_1", "type": "message_batch"}, "processing_status"),
        ({"type": "error"}, "not a message batch"),
        ([1, 2, 3], "not a message batch"),
        (None, "not a message batch"),
        ("just a string", "not a message batch"),
    ],
)
def test_body_that_is_not_a_batch_is_invalid_response(
    fake: FakeBatchesServer, connect: Connect, body: object, problem: str
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="body", body=body, times=-1))
    with pytest.raises(InvalidResponseError, match=problem) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert info.value.status_code == 200
    assert info.value.request_id is not None
    assert fake.request_count() == 1


def test_body_missing_fields_is_retried(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="body", body={"id": served["id"]}))
    assert connect(max_retries=1).retrieve_batch(served["id"]).id == served["id"]
    assert fake.request_count() == 2


def test_read_timeout_is_api_timeout_error(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    # Delayed far past any test's patience: only the read timeout can end this call.
    fake.inject_fault(Fault(kind="delay", delay=600.0))
    hook = connect(timeout=0.3, max_retries=0)
    hook.settings  # noqa: B018
    start = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        hook.retrieve_batch(served["id"])
    assert time.monotonic() - start >= 0.3
    assert fake.request_count(served["id"]) == 1
    exc = info.value
    assert isinstance(exc, APIConnectionError)
    assert exc.retryable is True
    assert "timed out" in exc.message
    assert fake.request_count() == 1
    assert_secret_free(exc)


def test_read_timeout_is_retried(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="delay", delay=3.0))
    batch = connect(timeout=0.3, max_retries=1).retrieve_batch(served["id"])
    assert batch.id == served["id"]
    assert fake.request_count() == 2


# ---- batch id validation ------------------------------------------------------------------------

BAD_IDS = [
    "",
    "   ",
    "a/b",
    "a\\b",
    "a?b",
    "a#b",
    ".",
    "..",
    "a\nb",
    "a\x00b",
    "x" * 1025,
    None,
    42,
]


@pytest.mark.parametrize("batch_id", BAD_IDS)
def test_bad_batch_ids_never_reach_the_server(
    fake: FakeBatchesServer, connect: Connect, batch_id: Any
) -> None:
    hook = connect()
    with pytest.raises(InvalidBatchIdError):
        hook.retrieve_batch(batch_id)
    with pytest.raises(InvalidBatchIdError):
        hook.cancel_batch(batch_id)
    assert fake.request_count() == 0


# ---- secrets ------------------------------------------------------------------------------------


def test_key_echoed_by_the_server_is_redacted(
    fake: FakeBatchesServer, connect: Connect, echoing_server: None
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(
        Fault(
            kind="status",
            status=400,
            error_type=f"echo_{API_KEY}",
            message=f"Your key {API_KEY} is not allowed here",
            headers={"x-echo": API_KEY},
        )
    )
    with pytest.raises(BadRequestError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert "is not allowed here" in info.value.message
    assert_secret_free(info.value)


def test_key_echoed_in_request_id_of_a_status_error_is_redacted(
    fake: FakeBatchesServer, connect: Connect, echoing_server: None
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="status", status=429, headers={"request-id": API_KEY}))
    with pytest.raises(RateLimitError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert_secret_free(info.value)


def test_key_echoed_in_request_id_of_an_invalid_response_is_redacted(
    fake: FakeBatchesServer, connect: Connect, echoing_server: None
) -> None:
    # An HTML 200 whose only request-id header echoes the key back.
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="html", headers={"request-id": API_KEY}))
    with pytest.raises(InvalidResponseError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert_secret_free(info.value)


def test_key_echoed_in_an_invalid_body_is_redacted(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    served = fake.create_batch(ends_after=None)
    fake.inject_fault(Fault(kind="body", body={API_KEY: 1, "id": API_KEY}))
    with pytest.raises(InvalidResponseError) as info:
        connect(max_retries=0).retrieve_batch(served["id"])
    assert_secret_free(info.value)


def test_hook_repr_and_settings_repr_hide_the_key(connect: Connect) -> None:
    hook = connect()
    assert API_KEY not in repr(hook)
    assert API_KEY not in repr(hook.settings)


# ---- test_connection ----------------------------------------------------------------------------


def test_test_connection_succeeds_with_the_right_key(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    ok, message = connect().test_connection()
    assert ok is True
    assert fake.base_url in message
    seen = fake.requests[-1]
    assert (seen.method, seen.path, seen.query) == ("GET", "/v1/messages/batches", {"limit": "1"})
    assert seen.authenticated is True
    assert API_KEY not in message


def test_test_connection_fails_clearly_with_a_wrong_key(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    ok, message = connect(api_key=WRONG_KEY, max_retries=3).test_connection()
    assert ok is False
    assert "HTTP 401" in message
    assert "authentication_error" in message
    assert WRONG_KEY not in message
    assert fake.request_count() == 1


def test_test_connection_fails_clearly_when_unreachable(connect: Connect) -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    ok, message = connect(base_url=url, max_retries=0).test_connection()
    assert ok is False
    assert "without a response" in message
    assert url in message
    assert API_KEY not in message


def test_test_connection_reports_a_missing_key(
    monkeypatch: pytest.MonkeyPatch, fake: FakeBatchesServer
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NO_KEY", connection_json(fake.base_url, api_key=""))
    ok, message = MessageBatchHook("no_key").test_connection()
    assert ok is False
    assert "Password" in message
    assert fake.request_count() == 0


def test_unreachable_server_is_a_connection_error(connect: Connect) -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    with pytest.raises(APIConnectionError) as info:
        connect(base_url=url, max_retries=0).retrieve_batch("msgbatch_1")
    assert type(info.value) is APIConnectionError
    assert_secret_free(info.value)


# ---- create and cancel --------------------------------------------------------------------------


def _requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"req-{i}",
            "params": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"hello {i}"}],
            },
        }
        for i in range(n)
    ]


def test_create_batch(fake: FakeBatchesServer, connect: Connect) -> None:
    batch = connect().create_batch(_requests(3))
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3
    assert batch.total_requests == 3
    assert batch.to_xcom() == fake.get_batch(batch.id)
    seen = fake.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/messages/batches")
    assert seen.headers["content-type"] == "application/json"
    assert seen.authenticated is True
    assert fake.request_count(method="POST") == 1


def test_create_batch_needs_requests(fake: FakeBatchesServer, connect: Connect) -> None:
    with pytest.raises(ValueError, match="at least one"):
        connect().create_batch([])
    assert fake.request_count() == 0


def test_create_batch_rejected_by_the_api(fake: FakeBatchesServer, connect: Connect) -> None:
    with pytest.raises(BadRequestError, match="custom_id") as info:
        connect(max_retries=2).create_batch([{"params": {}}])
    assert info.value.batch_id is None
    assert fake.request_count(method="POST") == 1


def test_create_batch_not_retried_after_a_dropped_connection(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    fake.inject_fault(Fault(kind="drop", method="POST", times=-1))
    with pytest.raises(BatchCreateOutcomeUnknownError, match="APIConnectionError") as info:
        connect(max_retries=3).create_batch(_requests(1))
    assert info.value.retryable is False
    assert info.value.attempts == 1
    assert fake.request_count(method="POST") == 1
    assert fake.stats()["batches"] == 0


def test_create_batch_not_retried_after_a_timeout(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    fake.inject_fault(Fault(kind="delay", delay=1.0, method="POST"))
    with pytest.raises(BatchCreateOutcomeUnknownError, match="APITimeoutError") as info:
        connect(max_retries=3, timeout=0.3).create_batch(_requests(1))
    assert info.value.retryable is False
    assert fake.request_count(method="POST") == 1


def test_create_batch_not_retried_after_an_unreadable_success(
    fake: FakeBatchesServer, connect: Connect
) -> None:
    fake.inject_fault(Fault(kind="truncated", method="POST", times=-1))
    with pytest.raises(BatchCreateOutcomeUnknownError, match="InvalidResponseError"):
        connect(max_retries=3).create_batch(_requests(1))
    assert fake.request_count(method="POST") == 1


def test_create_batch_retried_on_rate_limit(fake: FakeBatchesServer, connect: Connect) -> None:
    fake.inject_fault(
        Fault(kind="status", status=429, method="POST", headers={"retry-after-ms": "10"})
    )
    batch = connect(max_retries=2).create_batch(_requests(2))
    assert batch.request_counts.processing == 2
    assert fake.request_count(method="POST") == 2
    assert fake.stats()["batches"] == 1


def test_cancel_batch(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(num_requests=4, ends_after=None, cancel_delay=None)
    batch = connect().cancel_batch(served["id"])
    assert batch.id == served["id"]
    assert batch.processing_status == "canceling"
    assert batch.cancel_initiated_at is not None
    assert batch.cancel_initiated_at.utcoffset() == timedelta(0)
    assert not batch.is_ended
    assert fake.get_batch(served["id"])["processing_status"] == "canceling"
    seen = fake.requests[-1]
    assert (seen.method, seen.path) == ("POST", f"/v1/messages/batches/{served['id']}/cancel")


def test_cancel_an_ended_batch_is_a_bad_request(fake: FakeBatchesServer, connect: Connect) -> None:
    served = fake.create_batch(ends_after=0)
    with pytest.raises(BadRequestError) as info:
        connect(max_retries=2).cancel_batch(served["id"])
    assert info.value.batch_id == served["id"]
    assert info.value.method == "POST"
    assert fake.request_count(method="POST") == 1


def test_create_then_retrieve_until_ended(fake: FakeBatchesServer, connect: Connect) -> None:
    hook = connect()
    created = hook.create_batch(_requests(2))
    fake.end_batch(created.id)
    batch = hook.retrieve_batch(created.id)
    assert batch.is_ended
    assert batch.request_counts.succeeded == 2
    assert batch.created_at == created.created_at
