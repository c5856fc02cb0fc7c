"""The fault matrix, run on the real MessageBatchTrigger against the embedded fake API.

``test_fault`` runs each case of :data:`reliability_cases.CASES` alone and checks the exact
outcome: the one event (status, error fields, message naming the cause), the number of requests
the fake saw, the time taken, what the sensor makes of the event, and that no artefact of the
run (event, serialized trigger, exceptions and their pickles, log output) holds the API key.

``test_matrix_concurrently_beside_healthy_triggers`` runs every case at once in one event loop
next to healthy waits, as a triggerer would: the healthy waits must succeed, every case must
reach the same outcome as alone, and the loop must never stall.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from reliability_cases import CASE_IDS, CASES, RETURNS, Case, Env, Scenario, check_outcome
from reliability_cases import run_scenario as run_case
from reliability_fixtures import LoopLagMonitor, SecretsAudit

from airflow_provider_batches._http.clients import (
    aclose_shared_clients,
    shared_async_pool,
    ssl_context,
)
from airflow_provider_batches.exceptions import APIError, BatchWaitError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.sensors.batch import MessageBatchSensor
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.triggers.batch import MessageBatchTrigger


@pytest.fixture
def env(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> Iterator[Env]:
    with ExitStack() as stack:
        yield Env(fake, set_connection, stack)


def sensor_outcome(scenario: Scenario, event: dict[str, Any]) -> tuple[Any, BaseException | None]:
    """What ``MessageBatchSensor.execute_complete`` does with ``event``: (value, exception)."""
    sensor = MessageBatchSensor(
        task_id="reliability_wait",
        batch_id=scenario.batch_id,
        conn_id=scenario.conn_id,
        deferrable=True,
    )
    try:
        return sensor.execute_complete(context={}, event=event), None  # type: ignore[arg-type]
    except BaseException as exc:
        return None, exc


def check_sensor(case: Case, scenario: Scenario, event: dict[str, Any]) -> BaseException | None:
    value, exc = sensor_outcome(scenario, event)
    if case.sensor == RETURNS:
        assert exc is None, f"sensor raised {exc!r} for a success event"
        assert value == event["batch"]
        return None
    assert exc is not None, f"sensor returned {value!r}, expected {case.sensor}"
    # Exact class: a transient error must not become a permanent one or the other way round.
    assert type(exc) is case.sensor, f"sensor raised {type(exc).__name__}: {exc}"
    assert isinstance(exc, BatchWaitError)
    assert exc.batch_id == scenario.batch_id
    assert str(exc) == event["message"]
    restored = pickle.loads(pickle.dumps(exc))
    assert type(restored) is type(exc)
    assert (restored.batch_id, restored.batch, restored.error) == (
        exc.batch_id,
        exc.batch,
        exc.error,
    )
    return exc


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fault(
    case: Case, env: Env, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    scenario = case.arrange(env, case)
    trigger = MessageBatchTrigger(**scenario.trigger_kwargs())
    serialized = trigger.serialize()
    try:
        events, elapsed = await run_case(trigger, scenario, timeout=case.max_seconds + 10)
    finally:
        await aclose_shared_clients()

    problems = check_outcome(case, scenario, events, elapsed)
    assert not problems, "\n".join(problems)
    sensor_error = check_sensor(case, scenario, events[0])

    # The same fault straight from the hook: a typed APIError that survives pickling.
    hook_error: APIError | None = None
    if case.status == "error" and case.error:
        with pytest.raises(APIError) as raised:
            await MessageBatchHook(scenario.conn_id).aretrieve_batch(scenario.batch_id)
        await aclose_shared_clients()
        hook_error = raised.value
        assert type(hook_error).__name__ == case.error["error_class"]
        assert pickle.loads(pickle.dumps(hook_error)).to_dict() == hook_error.to_dict()

    out, err = capfd.readouterr()
    # Provider lines reach caplog (stdlib logging), Airflow's structlog output or both.
    logged = [record.getMessage() for record in caplog.records]
    for text, times in case.log.items():
        seen = max(sum(line.count(text) for line in logged), out.count(text) + err.count(text))
        assert seen == times, f"log line {text!r} seen {seen}x, expected {times}x"

    audit = SecretsAudit()
    audit.obj(events, f"{case.id} events")
    audit.obj(serialized, f"{case.id} serialize()")
    audit.obj(MessageBatchTrigger(**serialized[1]).serialize(), f"{case.id} re-serialize()")
    if sensor_error is not None:
        audit.obj(sensor_error, f"{case.id} sensor exception")
    if hook_error is not None:
        audit.obj(hook_error, f"{case.id} hook exception")
    audit.log_records(caplog.records, case.id)
    audit.text(out, f"{case.id} stdout")
    audit.text(err, f"{case.id} stderr")
    assert audit.searched > 0
    assert audit.hits == []


class BlockingCallsOnTheLoop:
    """Records the blocking calls a wait could make on the event loop's thread: a sync sleep
    (a ``retry-after`` slept with ``time.sleep``) or a sync HTTP request (``httpx.Client``).
    Counted, not timed: one such call is a failure however fast the machine is."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop_thread = threading.get_ident()
        self.calls: list[str] = []
        real_sleep = time.sleep
        real_send = httpx.Client.send

        def sleep(seconds: float) -> None:
            self._note(f"time.sleep({seconds})")
            real_sleep(seconds)

        def send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
            self._note(f"httpx.Client.send({request.method} {request.url})")
            return real_send(client, request, **kwargs)

        monkeypatch.setattr(time, "sleep", sleep)
        monkeypatch.setattr(httpx.Client, "send", send)

    def _note(self, call: str) -> None:
        if threading.get_ident() == self.loop_thread:
            self.calls.append(call)


async def test_matrix_concurrently_beside_healthy_triggers(
    env: Env,
    fake: FakeBatchesServer,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every fault at once, in one loop, next to 8 healthy waits: nobody is disturbed."""
    # Each connection's httpx client is built once per loop, which loads the CA bundle
    # (blocking, once per connection: a documented limit). A dry arrangement sets every
    # connection so those clients are built first; then the fake starts afresh.
    for case in CASES:
        case.arrange(env, case)
    healthy_conn = env.conn("healthy")
    for conn_id in {"rel_" + case.id.replace("-", "_") for case in CASES} | {healthy_conn}:
        shared_async_pool(await MessageBatchHook(conn_id).asettings())
    fake.reset()

    arranged = [(case, case.arrange(env, case)) for case in CASES]
    healthy_ids = [
        fake.create_batch(num_requests=2, ends_after=0.2 + 0.1 * i)["id"] for i in range(8)
    ]
    timeout = max(case.max_seconds for case in CASES) + 10

    async def healthy(batch_id: str) -> list[dict[str, Any]]:
        trigger = MessageBatchTrigger(batch_id, conn_id=healthy_conn, poll_interval=0.05)
        events, _ = await run_case(trigger, Scenario(batch_id, healthy_conn), timeout)
        return events

    blocking = BlockingCallsOnTheLoop(monkeypatch)
    try:
        with LoopLagMonitor() as lag:
            results = await asyncio.gather(
                *(
                    run_case(MessageBatchTrigger(**sc.trigger_kwargs()), sc, timeout)
                    for _, sc in arranged
                ),
                *(healthy(batch_id) for batch_id in healthy_ids),
                return_exceptions=True,
            )
    finally:
        await aclose_shared_clients()

    crashed = [r for r in results if isinstance(r, BaseException)]
    assert crashed == [], f"triggers raised instead of yielding an event: {crashed!r}"
    problems: list[str] = []
    for (case, scenario), (events, elapsed) in zip(arranged, results[: len(arranged)], strict=True):
        problems += check_outcome(case, scenario, events, elapsed, loaded=True)
    assert not problems, "\n".join(problems)
    for batch_id, events in zip(healthy_ids, results[len(arranged) :], strict=True):
        assert [e["status"] for e in events] == ["success"]
        assert events[0]["batch_id"] == events[0]["batch"]["id"] == batch_id
    # No wait blocked the shared loop: no sync sleep, no sync request on its thread. (How long
    # the loop lags on a busy machine is measured in benchmarks/loop_stall.py, not here.)
    assert blocking.calls == []
    assert lag.ticks > 10  # the loop kept running other tasks throughout
    print(f"\nloop lag beside the matrix: max {lag.max_lag:.3f}s over {lag.ticks} ticks")
    audit = SecretsAudit()
    audit.obj(results, "concurrent events")
    out, err = capfd.readouterr()
    audit.text(out + err, "concurrent run output")
    assert audit.hits == []


async def test_later_waits_of_a_connection_reuse_its_client(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    """Documented limit: the first wait of a connection in a triggerer builds its httpx client
    on the loop (a one-off stall, TLS context once per process). Later waits build nothing: the
    same client and TLS context serve them all. The stalls are printed, not asserted: timings
    on a shared machine belong in benchmarks/, not in tests."""
    set_connection("rel_first_client", fake.base_url)
    ids = [fake.create_batch(num_requests=1, ends_after=0)["id"] for _ in range(20)]
    settings = await MessageBatchHook("rel_first_client").asettings()
    try:
        with LoopLagMonitor() as first:
            await run_case(
                MessageBatchTrigger(ids[0], conn_id="rel_first_client", poll_interval=0.05),
                Scenario(ids[0], "rel_first_client"),
                10,
            )
        pool = shared_async_pool(settings)
        context = ssl_context(settings)
        with LoopLagMonitor() as later:
            await asyncio.gather(
                *(
                    run_case(
                        MessageBatchTrigger(bid, conn_id="rel_first_client", poll_interval=0.05),
                        Scenario(bid, "rel_first_client"),
                        10,
                    )
                    for bid in ids[1:]
                )
            )
        assert shared_async_pool(settings) is pool
        assert ssl_context(settings) is context
    finally:
        await aclose_shared_clients()
    print(f"\nloop stall: first client {first.max_lag:.3f}s, 19 more waits {later.max_lag:.3f}s")
