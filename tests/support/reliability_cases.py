"""The fault matrix: one row per fault, with the exact outcome MessageBatchTrigger must reach.

Each :class:`Case` arranges its fault on the embedded fake (faults are scoped to the case's own
batch id, so every case can also run concurrently with all the others in one event loop) and
states what must come out: the event's ``status``, the ``error`` fields, the substrings that
name the cause in ``message``, and how many requests the fake must have seen.

Request counts follow from the settings below: a poll is one request plus up to ``max_retries``
retries inside the hook; a failed poll (all attempts failed) counts once towards the trigger's
``max_consecutive_errors``. With ``max_retries=2`` and a fault that hits ``times=3`` requests,
the first poll fails after 3 requests and the second poll succeeds: 4 requests.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass, field
from typing import Any

from helpers import API_KEY
from reliability_fixtures import WRONG_API_KEY, closed_loopback_port

from airflow_provider_batches.exceptions import (
    BatchPermanentError,
    BatchWaitError,
    BatchWaitTimeoutError,
)
from airflow_provider_batches.testing import FakeBatchesServer, Fault

#: Connection extras every case starts from.
BASE_EXTRAS: dict[str, Any] = {"max_retries": 2, "timeout": 5.0}
#: Trigger kwargs every case starts from.
BASE_TRIGGER: dict[str, Any] = {
    "poll_interval": 0.05,
    "max_consecutive_errors": 3,
    "error_tolerance": 60.0,
}
#: ``error.request_id`` must be a request id the fake generated (``req_...``).
REQUEST_ID = "<req_...>"
#: The value must be present (not ``None``).
NOT_NONE = "<not None>"
#: The sensor returns the batch (no exception).
RETURNS = "returns the batch"


@dataclass
class Env:
    """What an ``arrange`` function may use: the fake, connections, and cleanup."""

    fake: FakeBatchesServer
    set_connection: Callable[..., None]
    stack: ExitStack
    ports: dict[str, int] = field(default_factory=dict)

    def refusing_port(self, case_id: str) -> int:
        """A loopback port held bound, never listening, until the case ends: every connection
        to it is refused, and no other server can start on it meanwhile."""
        if case_id not in self.ports:
            held = self.stack.enter_context(
                closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            )
            held.bind(("127.0.0.1", 0))
            self.ports[case_id] = int(held.getsockname()[1])
        return self.ports[case_id]

    def closed_port(self, case_id: str) -> int:
        """A loopback port nothing listens on, the same one each time for ``case_id``."""
        if case_id not in self.ports:
            self.ports[case_id] = closed_loopback_port()
        return self.ports[case_id]

    def conn(
        self, case_id: str, base_url: str | None = None, api_key: str = API_KEY, **extras: Any
    ) -> str:
        conn_id = "rel_" + case_id.replace("-", "_")
        self.set_connection(
            conn_id, base_url or self.fake.base_url, api_key, **{**BASE_EXTRAS, **extras}
        )
        return conn_id


@dataclass
class Scenario:
    """One arranged case: the wait to run and how to count the requests it caused."""

    batch_id: str
    conn_id: str
    trigger: dict[str, Any] = field(default_factory=dict)
    #: Runs alongside the trigger (e.g. brings a server up late).
    during: Callable[[Scenario], Awaitable[None]] | None = None
    #: Requests that reached the API for this wait; ``None`` when nothing could reach one.
    counter: Callable[[], int] | None = None

    def trigger_kwargs(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "conn_id": self.conn_id,
            **BASE_TRIGGER,
            **self.trigger,
        }


@dataclass(frozen=True)
class Case:
    id: str
    fault: str
    behaviour: str
    arrange: Callable[[Env, Case], Scenario]
    status: str
    #: Exact number of requests, or an inclusive (low, high) range when timing decides.
    requests: int | tuple[int, int] | None
    error: dict[str, Any] | None = None
    message: tuple[str, ...] = ()
    batch: dict[str, Any] | None = None
    reason: str | None = None
    sensor: type[BaseException] | str = RETURNS
    #: Substrings of the captured log output, with how many times each must appear.
    log: dict[str, int] = field(default_factory=dict)
    #: The least time the wait must take (the server's ``retry-after`` waits were waited).
    min_seconds: float = 0.0
    #: Hang guard only: far above any case's real duration, so it cannot flake.
    max_seconds: float = 30.0


# ---- arrange helpers -----------------------------------------------------------------------


def _ended_batch_with_fault(**fault: Any) -> Callable[[Env, Case], Scenario]:
    """A batch that has already ended, behind ``fault`` (scoped to the batch)."""

    def arrange(env: Env, case: Case) -> Scenario:
        batch_id = env.fake.create_batch(num_requests=3, ends_after=0)["id"]
        env.fake.inject_fault(Fault(batch_id=batch_id, **fault))
        return _scenario(env, case, batch_id)

    return arrange


def _scenario(env: Env, case: Case, batch_id: str, **extras: Any) -> Scenario:
    return Scenario(
        batch_id,
        env.conn(case.id, **extras),
        counter=lambda: env.fake.request_count(batch_id),
    )


def _with(
    arrange: Callable[[Env, Case], Scenario],
    *,
    extras: dict[str, Any] | None = None,
    **trigger: Any,
) -> Callable[[Env, Case], Scenario]:
    """``arrange``, then override connection extras and trigger kwargs."""

    def wrapped(env: Env, case: Case) -> Scenario:
        scenario = arrange(env, case)
        if extras:
            env.conn(case.id, **extras)
        scenario.trigger.update(trigger)
        return scenario

    return wrapped


def _transient(status: int, **headers: str) -> Callable[[Env, Case], Scenario]:
    return _ended_batch_with_fault(kind="status", status=status, headers=headers, times=3)


def _unknown_status(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=0)["id"]
    served = {**env.fake.get_batch(batch_id), "processing_status": "validating"}
    served.update(ended_at=None, results_url=None)
    env.fake.inject_fault(Fault(kind="body", body=served, times=3, batch_id=batch_id))
    scenario = _scenario(env, case, batch_id)
    # Unknown statuses are successful polls: they must not count as errors.
    scenario.trigger["max_consecutive_errors"] = 1
    return scenario


def _stays_canceling(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=None, cancel_delay=None)["id"]
    env.fake.cancel_batch(batch_id)
    scenario = _scenario(env, case, batch_id)
    scenario.trigger["deadline"] = time.time() + 0.8
    return scenario


def _canceled(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=None, cancel_delay=0.3)["id"]
    env.fake.cancel_batch(batch_id)
    return _scenario(env, case, batch_id)


def _expires(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=None, expires_after=0.5)["id"]
    return _scenario(env, case, batch_id)


def _stuck_past_expiry(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=None, expires_after=0.3)["id"]
    env.fake.set_status_override(batch_id, "in_progress")
    scenario = _scenario(env, case, batch_id)
    scenario.trigger["expiry_grace"] = 0.3
    return scenario


def _archived(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=0, archive_after=0)["id"]
    return _scenario(env, case, batch_id)


def _wrong_key(env: Env, case: Case) -> Scenario:
    batch_id = env.fake.create_batch(num_requests=3, ends_after=0)["id"]
    return Scenario(
        batch_id,
        env.conn(case.id, api_key=WRONG_API_KEY),
        counter=lambda: env.fake.request_count(batch_id),
    )


def _unknown_batch(env: Env, case: Case) -> Scenario:
    return _scenario(env, case, "msgbatch_reliabilityNoSuchBatch404")


def _refused_forever(env: Env, case: Case) -> Scenario:
    port = env.refusing_port(case.id)
    conn_id = env.conn(case.id, base_url=f"http://127.0.0.1:{port}", max_retries=1)
    return Scenario("msgbatch_reliabilityRefused", conn_id, {"max_consecutive_errors": 2})


def _refused_then_up(env: Env, case: Case) -> Scenario:
    """Nothing listens on the connection's port until a fake comes up there one second in."""
    port = env.closed_port(case.id)
    batch_id = "msgbatch_reliabilityLateServer" + str(port)
    conn_id = env.conn(case.id, base_url=f"http://127.0.0.1:{port}")
    late = FakeBatchesServer(api_key=API_KEY, port=port)
    env.stack.callback(late.close)

    async def bring_up(scenario: Scenario) -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(late.start)
        late.create_batch(num_requests=3, ends_after=0, batch_id=batch_id)

    return Scenario(
        batch_id,
        conn_id,
        during=bring_up,
        counter=lambda: late.request_count(batch_id) if late.base_url else 0,
    )


def _echoing_error(env: Env, case: Case) -> Scenario:
    return _ended_batch_with_fault(
        kind="status",
        status=400,
        message=f"The key {API_KEY} is not allowed here",
        error_type=f"invalid_request_error {API_KEY}",
        times=-1,
    )(env, case)


# ---- the matrix ----------------------------------------------------------------------------

_RECOVERS = "retried in the hook, then polled again; succeeds once the API recovers"
_FAILS_FAST = "no retry: error event at once, task fails without retries"

CASES: tuple[Case, ...] = (
    Case(
        "429-retry-after",
        "HTTP 429 with `retry-after: 1` (3 times)",
        "waits the server's 1 s before each retry and before the next poll; then succeeds",
        _transient(429, **{"retry-after": "1"}),
        "success",
        4,
        log={"in 1.00s (retry 1 of 2)": 1, "in 1.00s (retry 2 of 2)": 1},
        min_seconds=3.0,
    ),
    Case(
        "429-retry-after-ms",
        "HTTP 429 with `retry-after-ms: 700` and `retry-after: 30` (3 times)",
        "`retry-after-ms` wins over `retry-after`: waits 0.7 s per retry; then succeeds",
        _transient(429, **{"retry-after-ms": "700", "retry-after": "30"}),
        "success",
        4,
        log={"in 0.70s (retry 1 of 2)": 1, "in 0.70s (retry 2 of 2)": 1},
        min_seconds=2.1,
    ),
    Case(
        "529-overloaded",
        "HTTP 529 overloaded_error (3 times)",
        _RECOVERS,
        _transient(529),
        "success",
        4,
    ),
    Case("500", "HTTP 500 api_error (3 times)", _RECOVERS, _transient(500), "success", 4),
    Case("502", "HTTP 502 (3 times)", _RECOVERS, _transient(502), "success", 4),
    Case("503", "HTTP 503 (3 times)", _RECOVERS, _transient(503), "success", 4),
    Case("504", "HTTP 504 timeout_error (3 times)", _RECOVERS, _transient(504), "success", 4),
    Case(
        "read-timeout",
        "response delayed 2 s past the 0.3 s read timeout (3 times)",
        _RECOVERS,
        _with(_ended_batch_with_fault(kind="delay", delay=2.0, times=3), extras={"timeout": 0.3}),
        "success",
        4,
    ),
    Case(
        "read-timeout-persistent",
        "every response delayed past the read timeout",
        "each poll times out; error event `APITimeoutError` after `max_consecutive_errors` polls",
        _with(
            _ended_batch_with_fault(kind="delay", delay=1.0, times=-1),
            extras={"timeout": 0.3, "max_retries": 0},
            max_consecutive_errors=2,
        ),
        "error",
        2,
        error={
            "error_class": "APITimeoutError",
            "status_code": None,
            "retryable": True,
            "attempts": 1,
            "request_id": None,
            "error_type": None,
            "retry_after": None,
        },
        message=("timed out", "ReadTimeout", "gave up after 2 consecutive failed polls"),
        sensor=BatchWaitError,
    ),
    Case(
        "connect-refused-then-up",
        "connection refused (nothing listens) until the server starts 1 s in",
        "connection errors are retried like 5xx; succeeds with the first request that lands",
        _refused_then_up,
        "success",
        1,
        min_seconds=1.0,
    ),
    Case(
        "connect-refused",
        "connection refused (a loopback port held bound, never listening), for good",
        "error event `APIConnectionError` after `max_consecutive_errors` polls; no hang",
        _refused_forever,
        "error",
        None,
        error={
            "error_class": "APIConnectionError",
            "status_code": None,
            "retryable": True,
            "attempts": 2,
            "request_id": None,
            "error_type": None,
            "retry_after": None,
        },
        message=("ConnectError", "gave up after 2 consecutive failed polls"),
        sensor=BatchWaitError,
        # No request can arrive anywhere; the connection attempts are counted instead: one
        # retry line per call of 2 attempts: the trigger's 2 polls, then test_fault's direct
        # hook call (test_fault checks the log after both).
        log={"(retry 1 of 1)": 3},
    ),
    Case(
        "reset-mid-response",
        "connection closed halfway through a 200 body (3 times)",
        _RECOVERS,
        _ended_batch_with_fault(kind="reset", times=3),
        "success",
        4,
    ),
    Case(
        "dropped-connection",
        "connection closed without any response (3 times)",
        _RECOVERS,
        _ended_batch_with_fault(kind="drop", times=3),
        "success",
        4,
    ),
    Case(
        "truncated-json",
        "200 whose JSON body is cut in half (3 times)",
        "`InvalidResponseError`, retried (GET is idempotent); then succeeds",
        _ended_batch_with_fault(kind="truncated", times=3),
        "success",
        4,
    ),
    Case(
        "html-200",
        "200 with an HTML error page (3 times)",
        "`InvalidResponseError` (not JSON), retried; then succeeds",
        _ended_batch_with_fault(kind="html", times=3),
        "success",
        4,
    ),
    Case(
        "html-200-persistent",
        "200 with an HTML error page, for good",
        "error event `InvalidResponseError` naming the content type after "
        "`max_consecutive_errors` polls",
        _with(
            _ended_batch_with_fault(kind="html", times=-1),
            extras={"max_retries": 1},
            max_consecutive_errors=2,
        ),
        "error",
        4,
        error={
            "error_class": "InvalidResponseError",
            "status_code": 200,
            "retryable": True,
            "attempts": 2,
            "error_type": None,
            "retry_after": None,
            "request_id": None,
        },
        message=("expected JSON", "text/html", "gave up after 2 consecutive failed polls"),
        sensor=BatchWaitError,
    ),
    Case(
        "missing-fields-200",
        "200 JSON body missing required fields (3 times)",
        "`InvalidResponseError` listing the missing fields, retried; then succeeds",
        _ended_batch_with_fault(
            kind="body", body={"type": "message_batch", "processing_status": "ended"}, times=3
        ),
        "success",
        4,
    ),
    Case(
        "missing-fields-200-persistent",
        "200 JSON body missing required fields, for good",
        "error event `InvalidResponseError` naming the missing fields",
        _with(
            _ended_batch_with_fault(
                kind="body",
                body={"type": "message_batch", "processing_status": "ended"},
                times=-1,
            ),
            extras={"max_retries": 0},
            max_consecutive_errors=2,
        ),
        "error",
        2,
        error={
            "error_class": "InvalidResponseError",
            "status_code": 200,
            "retryable": True,
            "error_type": None,
            "attempts": 1,
            "retry_after": None,
            "request_id": REQUEST_ID,
        },
        message=("not a message batch", "id: Field required", "request_counts: Field required"),
        sensor=BatchWaitError,
    ),
    Case(
        "unknown-processing-status",
        "`processing_status: validating` (3 polls), then `ended`",
        "a successful poll (not an error, logged once); keeps waiting until `ended`",
        _unknown_status,
        "success",
        4,
        log={"reports processing_status 'validating', which this provider does not know": 1},
    ),
    Case(
        "stays-canceling",
        "batch canceled, stays `canceling` for good",
        "`canceling` is not terminal: polls until the wait's deadline, then a timeout event "
        "carrying the last batch seen",
        _stays_canceling,
        "timeout",
        (6, 21),
        reason="deadline",
        batch={"processing_status": "canceling", "cancel_initiated_at": NOT_NONE},
        message=("had not ended when the wait's deadline passed", "canceling"),
        sensor=BatchWaitTimeoutError,
    ),
    Case(
        "canceled",
        "batch canceled, ends 0.3 s later with every request canceled",
        "success event with the canceled counts (outcome policies decide in the sensor)",
        _canceled,
        "success",
        (2, 10),
        batch={
            "processing_status": "ended",
            "cancel_initiated_at": NOT_NONE,
            "request_counts": {"processing": 0, "succeeded": 0, "canceled": 3},
        },
    ),
    Case(
        "expires",
        "batch reaches `expires_at` (0.5 s) and ends with every request expired",
        "success event with the expired counts (outcome policies decide in the sensor)",
        _expires,
        "success",
        (2, 14),
        batch={
            "processing_status": "ended",
            "request_counts": {"processing": 0, "succeeded": 0, "expired": 3},
        },
    ),
    Case(
        "stuck-past-expiry",
        "API still reports `in_progress` after `expires_at` + `expiry_grace`",
        "timeout event (`reason: expired`) instead of waiting forever",
        _stuck_past_expiry,
        "timeout",
        (2, 17),
        reason="expired",
        batch={"processing_status": "in_progress"},
        message=("passed its expires_at and the grace period",),
        sensor=BatchWaitTimeoutError,
    ),
    Case(
        "archived",
        "batch ended and archived (`archived_at` set, results gone)",
        "success event; the batch in XCom carries `archived_at`",
        _archived,
        "success",
        1,
        batch={"processing_status": "ended", "archived_at": NOT_NONE, "results_url": NOT_NONE},
    ),
    Case(
        "401",
        "HTTP 401 authentication_error (wrong API key)",
        _FAILS_FAST,
        _wrong_key,
        "error",
        1,
        error={
            "error_class": "AuthenticationError",
            "status_code": 401,
            "error_type": "authentication_error",
            "retryable": False,
            "attempts": 1,
            "request_id": REQUEST_ID,
            "retry_after": None,
        },
        message=("HTTP 401", "authentication_error", "invalid x-api-key"),
        sensor=BatchPermanentError,
    ),
    Case(
        "403",
        "HTTP 403 permission_error",
        _FAILS_FAST,
        _ended_batch_with_fault(kind="status", status=403, times=-1),
        "error",
        1,
        error={
            "error_class": "PermissionDeniedError",
            "status_code": 403,
            "error_type": "permission_error",
            "retryable": False,
            "attempts": 1,
            "request_id": REQUEST_ID,
            "retry_after": None,
        },
        message=("HTTP 403", "permission_error"),
        sensor=BatchPermanentError,
    ),
    Case(
        "404",
        "HTTP 404 not_found_error (no such batch)",
        _FAILS_FAST,
        _unknown_batch,
        "error",
        1,
        error={
            "error_class": "NotFoundError",
            "status_code": 404,
            "error_type": "not_found_error",
            "retryable": False,
            "attempts": 1,
            "request_id": REQUEST_ID,
            "retry_after": None,
        },
        message=("HTTP 404", "not_found_error", "No message batch found"),
        sensor=BatchPermanentError,
    ),
    Case(
        "413",
        "HTTP 413 request_too_large",
        _FAILS_FAST,
        _ended_batch_with_fault(kind="status", status=413, times=-1),
        "error",
        1,
        error={
            "error_class": "RequestTooLargeError",
            "status_code": 413,
            "error_type": "request_too_large",
            "retryable": False,
            "attempts": 1,
            "request_id": REQUEST_ID,
            "retry_after": None,
        },
        message=("HTTP 413", "request_too_large"),
        sensor=BatchPermanentError,
    ),
    Case(
        "500-should-retry-false",
        "HTTP 500 with `x-should-retry: false`",
        "the header overrides the status: no retry, error event at once",
        _ended_batch_with_fault(
            kind="status", status=500, headers={"x-should-retry": "false"}, times=-1
        ),
        "error",
        1,
        error={
            "error_class": "InternalServerError",
            "status_code": 500,
            "retryable": False,
            "attempts": 1,
            "error_type": "api_error",
            "retry_after": None,
            "request_id": REQUEST_ID,
        },
        message=("HTTP 500",),
        sensor=BatchPermanentError,
    ),
    Case(
        "echoing-error-body",
        "HTTP 400 whose error message and type echo the API key",
        "error event with the key replaced by `[redacted]`",
        _echoing_error,
        "error",
        1,
        error={
            "error_class": "BadRequestError",
            "status_code": 400,
            "retryable": False,
            "error_type": "invalid_request_error [redacted]",
            "attempts": 1,
            "retry_after": None,
            "request_id": REQUEST_ID,
        },
        message=("[redacted]",),
        sensor=BatchPermanentError,
    ),
    Case(
        "transient-outlasts-count",
        "HTTP 503 on every request, for good",
        "error event after `max_consecutive_errors` (3) failed polls of 2 attempts each; "
        "retryable, so Airflow task retries apply",
        _with(
            _ended_batch_with_fault(kind="status", status=503, times=-1),
            extras={"max_retries": 1},
        ),
        "error",
        6,
        error={
            "error_class": "InternalServerError",
            "status_code": 503,
            "retryable": True,
            "attempts": 2,
            "request_id": REQUEST_ID,
            "error_type": "api_error",
            "retry_after": None,
        },
        message=("HTTP 503", "gave up after 3 consecutive failed polls"),
        sensor=BatchWaitError,
    ),
    Case(
        "transient-outlasts-duration",
        "HTTP 529 with `retry-after-ms: 100` on every request, for good",
        "error event once the failure streak lasts `error_tolerance` (0.5 s), whatever the count",
        _with(
            _ended_batch_with_fault(
                kind="status", status=529, headers={"retry-after-ms": "100"}, times=-1
            ),
            extras={"max_retries": 0},
            max_consecutive_errors=1000,
            error_tolerance=0.5,
        ),
        "error",
        (4, 8),
        error={
            "error_class": "OverloadedError",
            "status_code": 529,
            "error_type": "overloaded_error",
            "retryable": True,
            "attempts": 1,
            "retry_after": 0.1,
            "request_id": REQUEST_ID,
        },
        message=("HTTP 529", "consecutive failed polls"),
        sensor=BatchWaitError,
        min_seconds=0.5,
    ),
)

CASE_IDS = [case.id for case in CASES]


# ---- checking an outcome -------------------------------------------------------------------


#: The ``error`` fields of an error event that every error case states exactly.
ERROR_FIELDS = (
    "error_class",
    "status_code",
    "error_type",
    "retryable",
    "attempts",
    "retry_after",
    "request_id",
)


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            _matches(value, actual.get(key)) for key, value in expected.items()
        )
    if expected == REQUEST_ID:
        return isinstance(actual, str) and actual.startswith("req_")
    if expected == NOT_NONE:
        return actual is not None
    return bool(expected == actual)


def check_outcome(
    case: Case,
    scenario: Scenario,
    events: list[dict[str, Any]],
    elapsed: float,
    *,
    loaded: bool = False,
) -> list[str]:
    """Every way ``events`` differ from what ``case`` expects (empty when all is right).

    ``loaded``: the case ran beside dozens of others on a busy loop, so where timing decides
    the request count (a range) any count from 1 up is accepted, and it may take 2 s longer.
    Exact counts stay exact: they follow from retries and fault counts, not from timing.
    """
    problems: list[str] = []
    if len(events) != 1:
        return [f"{case.id}: expected exactly one event, got {len(events)}: {events}"]
    event = events[0]
    if event.get("status") != case.status:
        problems.append(f"status {event.get('status')!r} != {case.status!r}: {event}")
    if event.get("batch_id") != scenario.batch_id:
        problems.append(f"event batch_id {event.get('batch_id')!r} != {scenario.batch_id!r}")
    message = event.get("message", "")
    for part in (scenario.batch_id, *case.message):
        if part not in message:
            problems.append(f"message lacks {part!r}: {message!r}")
    batch = event.get("batch")
    if case.status == "success":
        if not isinstance(batch, dict) or batch.get("id") != scenario.batch_id:
            problems.append(f"success event carries the wrong batch: {batch!r}")
        elif batch.get("processing_status") != "ended":
            problems.append(f"success event for a batch that has not ended: {batch!r}")
    if case.batch is not None and not _matches(case.batch, batch):
        problems.append(f"batch {batch!r} does not match {case.batch!r}")
    if case.reason is not None and event.get("reason") != case.reason:
        problems.append(f"reason {event.get('reason')!r} != {case.reason!r}")
    if case.status == "error":
        error = event.get("error") or {}
        expected = case.error or {}
        unstated = [name for name in ERROR_FIELDS if name not in expected]
        if unstated:
            actual = {name: error.get(name) for name in unstated}
            problems.append(f"the case does not state the error fields {actual}")
        for name in ERROR_FIELDS:
            if name in expected and not _matches(expected[name], error.get(name)):
                problems.append(f"error {name} {error.get(name)!r} != {expected[name]!r}")
        if (error.get("method"), error.get("batch_id")) != ("GET", scenario.batch_id):
            problems.append(f"error names {error.get('method')} {error.get('batch_id')!r}")
        if not str(error.get("url", "")).endswith(f"/v1/messages/batches/{scenario.batch_id}"):
            problems.append(f"error url {error.get('url')!r} is not the batch's URL")
    elif "error" in event:
        problems.append(f"non-error event carries an error: {event['error']!r}")
    if scenario.counter is not None and case.requests is not None:
        seen = scenario.counter()
        low, high = (
            (case.requests, case.requests) if isinstance(case.requests, int) else case.requests
        )
        timed_out = case.error is not None and case.error.get("error_class") == "APITimeoutError"
        if loaded and (low != high or timed_out):
            # Beside other triggers, timing decides; and a request the client gives up on
            # may never have reached the fake's busy loop to be counted.
            low = 1
        if not low <= seen <= high:
            problems.append(f"the API saw {seen} requests, expected {case.requests}")
    max_seconds = case.max_seconds + (2.0 if loaded else 0.0)
    if not case.min_seconds <= elapsed <= max_seconds:
        problems.append(
            f"took {elapsed:.2f}s, expected between {case.min_seconds} and {max_seconds}s"
        )
    return [f"{case.id}: {problem}" for problem in problems]


async def run_scenario(
    trigger: Any, scenario: Scenario, timeout: float
) -> tuple[list[dict[str, Any]], float]:
    """Run ``trigger`` (and the scenario's ``during`` task); its events and the time taken."""
    from reliability_fixtures import run_trigger

    during = (
        asyncio.get_running_loop().create_task(scenario.during(scenario))
        if scenario.during
        else None
    )
    started = time.monotonic()
    try:
        events = await run_trigger(trigger, timeout)
    finally:
        elapsed = time.monotonic() - started
        if during is not None:
            if not during.done():
                during.cancel()
            with suppress(asyncio.CancelledError):
                await during
    return events, elapsed
