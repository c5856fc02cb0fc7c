#!/usr/bin/env python
"""Trigger scale harness: N batch-wait triggers in one asyncio event loop, as a triggerer runs them.

One run = one provider at one N. The script:

1. starts the embedded fake Batches API in a *separate process*
   (``python -m airflow_provider_batches.testing serve``, with this repository's venv), so the
   server's CPU and memory never count against the harness;
2. points an Airflow connection at it through an ``AIRFLOW_CONN_...`` environment variable
   (resolved by the Task SDK's environment-variables secrets backend, no supervisor needed);
3. creates N batches on the fake with end times spread evenly over ``[ends_min, ends_max]``
   seconds from now;
4. creates N triggers one by one (``await asyncio.sleep(0)`` between two, as the triggerer's
   ``create_triggers`` does), each consumed by a task doing ``async for event in trigger.run()``;
5. meanwhile a sampler task sleeps 10 ms at a time and records how late it wakes up (the event
   loop's stalls);
6. once every trigger has yielded (or ``--max-seconds`` passed) it reports detection lag
   (batch ``ends_at`` -> event received), CPU, peak RSS, the fake's request and connection
   counters, and poll timings read from the fake's request log.

Run it with the Python of the venv whose provider is measured::

    .venv/bin/python benchmarks/trigger_scale.py --provider ours -n 1000 --poll-interval 10
    benchmarks/.venvs/official/bin/python benchmarks/trigger_scale.py --provider official ...

``benchmarks/run_all.py`` drives both and writes ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from _common import (
    OUR_VENV_PYTHON,
    REPO_ROOT,
    cpu_seconds,
    load_average,
    median,
    peak_rss_kb,
    percentile,
    raise_open_files_limit,
    rss_now_kb,
)

CONN_ID = "bench_fake"
API_KEY = "sk-ant-bench-0123456789"
STALL_SAMPLE_INTERVAL = 0.010


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=("ours", "official"), required=True)
    parser.add_argument("-n", "--count", type=int, default=1000, help="concurrent triggers")
    parser.add_argument("--poll-interval", type=float, default=60.0, help="seconds")
    parser.add_argument("--latency", type=float, default=0.05, help="fake response latency (s)")
    parser.add_argument(
        "--ends-min",
        type=float,
        default=None,
        help="first batch ends this many seconds after creation (default: poll interval / 2)",
    )
    parser.add_argument(
        "--ends-max",
        type=float,
        default=None,
        help="last batch ends this many seconds after creation (default: ends-min + poll interval)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop waiting this long after the triggers start (default: ends-max + 3 polls + 120)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="ours only: connection extra max_connections (default: the provider's default)",
    )
    parser.add_argument(
        "--rate-limit-rpm",
        type=float,
        default=None,
        help="the fake enforces this many requests per minute (429 + retry-after beyond)",
    )
    parser.add_argument(
        "--max-requests-per-minute",
        type=float,
        default=None,
        help="ours only: connection extra max_requests_per_minute (default: the provider's)",
    )
    parser.add_argument(
        "--objects-after",
        type=float,
        default=3.0,
        help="count GC-tracked objects this many seconds after the last trigger starts",
    )
    parser.add_argument(
        "--fake-python",
        default=str(OUR_VENV_PYTHON if OUR_VENV_PYTHON.exists() else sys.executable),
        help="Python that runs the fake API (needs this repository's package)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after start-up, so full collections skip Airflow's import-time objects "
        "(a triggerer does not do this; off by default)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    parser.add_argument(
        "--fake-log", type=Path, default=None, help="the fake server's stderr goes here"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.ends_min is None:
        args.ends_min = args.poll_interval / 2
    if args.ends_max is None:
        args.ends_max = args.ends_min + args.poll_interval
    if args.max_seconds is None:
        args.max_seconds = args.ends_max + 3 * args.poll_interval + 120
    return args


# ---- the fake API in its own process ----------------------------------------------------------


class FakeProcess:
    """The fake API served by ``python -m airflow_provider_batches.testing serve``."""

    def __init__(
        self,
        python: str,
        latency: float,
        log_path: Path | None,
        rate_limit_rpm: float | None = None,
        processing_seconds: float | None = None,
    ) -> None:
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        options = [] if rate_limit_rpm is None else ["--rate-limit-rpm", repr(rate_limit_rpm)]
        if processing_seconds is not None:  # how long a batch created through the API runs
            options += ["--processing-seconds", repr(processing_seconds)]
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "airflow_provider_batches.testing",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--api-key",
                API_KEY,
                "--latency",
                repr(latency),
                "--max-recorded-requests",
                "5000000",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(REPO_ROOT),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("FAKE_API_READY "):
            self.proc.kill()
            raise RuntimeError(f"fake API did not start (first line: {line!r})")
        self.url = line.split()[1]

    def usage(self) -> dict[str, Any]:
        """CPU seconds and peak RSS of the fake so far (read from /proc)."""
        pid = self.proc.pid
        result: dict[str, Any] = {}
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            result["cpu_s"] = round((int(fields[11]) + int(fields[12])) / ticks, 2)
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        result["peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


def admin_client(url: str, timeout: float) -> Any:
    """The fake's ``FakeAdminClient`` (stdlib + h11 only, so it also loads in the official venv).

    The official venv does not have this repository's package installed; only its ``testing``
    subpackage is imported from the source tree, which pulls in no provider module.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    from airflow_provider_batches.testing import FakeAdminClient

    return FakeAdminClient(url, timeout=timeout)


# ---- the providers under test -----------------------------------------------------------------


def warm_up(make: Any) -> None:
    """Load what a running triggerer has loaded long before a trigger arrives.

    The first connection lookup imports the Task SDK's secrets-backend machinery and the first
    log line sets up structlog; in a triggerer both happened at start-up. Doing them once here
    keeps those one-off imports out of the measured loop, for both providers alike.
    """
    from airflow.sdk import BaseHook

    BaseHook.get_connection(CONN_ID)
    asyncio.run(BaseHook.aget_connection(CONN_ID))
    make("msgbatch_warmup").log.info("benchmark warm-up: connection %s resolves", CONN_ID)


def trigger_factory(args: argparse.Namespace, url: str) -> tuple[Any, dict[str, Any]]:
    """Set the connection env var, import the provider, return (make_trigger, details)."""
    env_name = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    if args.provider == "ours":
        extra: dict[str, Any] = {}
        if args.max_connections is not None:
            extra["max_connections"] = args.max_connections
        if args.max_requests_per_minute is not None:
            extra["max_requests_per_minute"] = args.max_requests_per_minute
        conn: dict[str, Any] = {"conn_type": "anthropic_batches", "password": API_KEY, "host": url}
        if extra:
            conn["extra"] = extra
        os.environ[env_name] = json.dumps(conn)
        from airflow_provider_batches._connection.extras import DEFAULT_MAX_CONNECTIONS
        from airflow_provider_batches.triggers.batch import MessageBatchTrigger

        def make(batch_id: str) -> Any:
            return MessageBatchTrigger(batch_id, conn_id=CONN_ID, poll_interval=args.poll_interval)

        details = {
            "trigger": "airflow_provider_batches.triggers.batch.MessageBatchTrigger",
            "max_connections": args.max_connections or DEFAULT_MAX_CONNECTIONS,
        }
        return make, details

    os.environ[env_name] = json.dumps({"conn_type": "anthropic", "password": API_KEY, "host": url})
    from airflow.providers.anthropic.triggers.batch import AnthropicBatchTrigger

    far_future = time.time() + 7 * 86400

    def make_official(batch_id: str) -> Any:
        return AnthropicBatchTrigger(
            conn_id=CONN_ID,
            batch_id=batch_id,
            poll_interval=args.poll_interval,
            end_time=far_future,
        )

    details = {
        "trigger": "airflow.providers.anthropic.triggers.batch.AnthropicBatchTrigger",
        # asyncio.to_thread uses the loop's default ThreadPoolExecutor of this size.
        "to_thread_pool_size": min(32, (os.cpu_count() or 1) + 4),
    }
    return make_official, details


# ---- the run ----------------------------------------------------------------------------------


class _RunQueueClock:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat).

    On a busy machine the loop can wake late only because the OS gave the CPU to another
    process; subtracting this wait from a late wake-up leaves the stall the process caused.
    """

    def __init__(self) -> None:
        try:
            path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def __call__(self) -> float:
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _GcClock:
    """Time spent in the cyclic garbage collector, by generation (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = [0, 0, 0]
        self.worst = [0.0, 0.0, 0.0]
        self.pauses: list[tuple[float, float]] = []  # (start, end) of every pause over 0.5 ms
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        spent = now - self._started
        generation = int(info.get("generation", 2))
        self.total += spent
        self.count[generation] += 1
        self.worst[generation] = max(self.worst[generation], spent)
        if spent > 0.0005:
            self.pauses.append((self._started, now))

    def overlap(self, start: float, end: float) -> float:
        """Seconds of GC pauses inside [start, end] (any allocation may start one, including
        the sampler's own, so pauses are matched by time rather than by counter)."""
        spent = 0.0
        for pause_start, pause_end in reversed(self.pauses):
            if pause_end <= start:
                break
            spent += max(0.0, min(end, pause_end) - max(start, pause_start))
        return spent

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Observations:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.statuses: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        # (seconds since start, late wake-up, of which waiting for a CPU, of which in the GC)
        self.stalls: list[tuple[float, float, float, float]] = []
        self.gc = _GcClock()
        self.loop_runqueue_wait_s = 0.0
        self.max_threads = threading.active_count()
        self.started_wall = 0.0
        self.started_mono = 0.0
        self.created_mono = 0.0
        self.finished_mono = 0.0
        self.timed_out = 0
        self.objects_before = 0
        self.objects_waiting = 0
        self.objects_waits = 0
        self.types_before: Counter[str] = Counter()
        self.types_waiting: Counter[str] = Counter()


async def _sample_stalls(obs: Observations, stop: asyncio.Event) -> None:
    """Sleep 10 ms at a time; how late each wake-up comes is how long the loop was stalled."""
    perf = time.perf_counter
    runqueue = _RunQueueClock()
    first_wait = runqueue()
    gc_clock = obs.gc
    try:
        while not stop.is_set():
            waited_before = runqueue()
            before = perf()
            await asyncio.sleep(STALL_SAMPLE_INTERVAL)
            after = perf()
            waited_after = runqueue()
            late = after - before - STALL_SAMPLE_INTERVAL
            in_gc = gc_clock.overlap(before, after)
            obs.stalls.append((after - obs.started_mono, late, waited_after - waited_before, in_gc))
            threads = threading.active_count()
            if threads > obs.max_threads:
                obs.max_threads = threads
        obs.loop_runqueue_wait_s = runqueue() - first_wait
    finally:
        runqueue.close()


async def _consume(trigger: Any, batch_id: str, obs: Observations, finished: _Countdown) -> None:
    events = trigger.run()
    try:
        async for event in events:
            obs.arrivals[batch_id] = time.time()
            payload = event.payload if isinstance(event.payload, dict) else {}
            obs.statuses[batch_id] = str(payload.get("status"))
            break
    except Exception as exc:  # a trigger that raises is a result, not a harness crash
        obs.failures[batch_id] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        await events.aclose()
        finished.count_down()


class _Countdown:
    """Set once every wait has finished.

    The triggerer keeps its trigger tasks in a dict and checks ``done()`` on them; it adds no
    callback to each. ``asyncio.wait`` over the tasks would add one (and a context copy) per
    wait, which is the harness's cost, not the trigger's, so the waits count down instead.
    """

    def __init__(self, count: int) -> None:
        self.left = count
        self.all_done = asyncio.Event()
        if count == 0:
            self.all_done.set()

    def count_down(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all_done.set()


async def _count_objects(obs: Observations, tasks: list[asyncio.Task[None]], after: float) -> None:
    """GC-tracked objects per wait, once the waits are settled (each holds its last batch).

    Walking the heap takes a while; the walk is booked as a GC pause so that the stall
    figures "excluding GC" leave it out, as they leave out the collector's own walks.
    """
    await asyncio.sleep(after)
    started = time.perf_counter()
    waiting = sum(1 for task in tasks if not task.done())
    gc.collect()  # live objects only
    live = gc.get_objects()
    obs.objects_waiting = len(live)
    obs.types_waiting = _type_counts(live)
    del live
    obs.objects_waits = waiting
    obs.gc.pauses.append((started, time.perf_counter()))


def _type_counts(objects: list[Any]) -> Counter[str]:
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)


def objects_by_type(obs: Observations, top: int = 30) -> dict[str, float]:
    """The types that grew most per wait between before the triggers and the count."""
    if not obs.objects_waits:
        return {}
    grown = obs.types_waiting.copy()
    grown.subtract(obs.types_before)
    return {
        name: round(count / obs.objects_waits, 2)
        for name, count in grown.most_common(top)
        if count > 0
    }


async def run_triggers(
    make: Any, batch_ids: list[str], max_seconds: float, obs: Observations, objects_after: float
) -> None:
    gc.collect()
    live = gc.get_objects()
    obs.objects_before = len(live)
    obs.types_before = _type_counts(live)
    del live
    stop = asyncio.Event()
    obs.started_mono = time.perf_counter()
    obs.started_wall = time.time()
    sampler = asyncio.create_task(_sample_stalls(obs, stop))
    finished = _Countdown(len(batch_ids))
    tasks: list[asyncio.Task[None]] = []
    for batch_id in batch_ids:
        tasks.append(asyncio.create_task(_consume(make(batch_id), batch_id, obs, finished)))
        await asyncio.sleep(0)
    obs.created_mono = time.perf_counter()
    counter = asyncio.create_task(_count_objects(obs, tasks, objects_after))
    remaining = max_seconds - (time.perf_counter() - obs.started_mono)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(finished.all_done.wait(), timeout=max(remaining, 0.0))
    counter.cancel()
    pending = [task for task in tasks if not task.done()]
    obs.finished_mono = time.perf_counter()
    obs.timed_out = len(pending)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=30)
    stop.set()
    await sampler


def poll_timings(records: list[Any], batch_ids: set[str], started_wall: float) -> dict[str, Any]:
    """First-cycle time and the gaps between two polls of one batch, from the fake's log."""
    by_batch: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.method == "GET" and record.batch_id in batch_ids:
            by_batch[record.batch_id].append(record.received_at)
    firsts = [min(times) - started_wall for times in by_batch.values()]
    gaps: list[float] = []
    polls_per_batch: list[int] = []
    for times in by_batch.values():
        times.sort()
        polls_per_batch.append(len(times))
        gaps.extend(b - a for a, b in itertools.pairwise(times))
    return {
        "batches_polled": len(by_batch),
        "first_cycle_s": _round(max(firsts) if firsts else None),
        "first_poll_p50_s": _round(median(firsts)),
        "poll_gap_p50_s": _round(median(gaps)),
        "poll_gap_p99_s": _round(percentile(gaps, 99)),
        "poll_gap_max_s": _round(max(gaps) if gaps else None),
        "polls_per_batch_mean": _round(sum(polls_per_batch) / len(polls_per_batch))
        if polls_per_batch
        else None,
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = raise_open_files_limit()
    cpu_at_start = cpu_seconds()
    t_import = time.perf_counter()
    fake = FakeProcess(args.fake_python, args.latency, args.fake_log, args.rate_limit_rpm)
    try:
        admin = admin_client(fake.url, timeout=600)
        make, details = trigger_factory(args, fake.url)
        warm_up(make)
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        import_s = time.perf_counter() - t_import
        rss_before_kb = rss_now_kb()
        cpu_before = cpu_seconds()

        created = admin.create_batches_bulk(args.count, args.ends_min, args.ends_max)
        batch_ids: list[str] = created["ids"]
        ends_at: dict[str, float] = created["ends_at"]
        stats_before = admin.stats()

        obs = Observations()
        loop_cpu_before = cpu_seconds()
        with obs.gc:
            asyncio.run(run_triggers(make, batch_ids, args.max_seconds, obs, args.objects_after))
        loop_cpu = cpu_seconds() - loop_cpu_before
        peak_kb = peak_rss_kb()
        rss_after_kb = rss_now_kb()
        run_s = obs.finished_mono - obs.started_mono
        end_wall = obs.started_wall + run_s

        stats_after = admin.stats()
        fake_usage = fake.usage()
        records = admin.requests()
    finally:
        fake.stop()

    lags: list[float] = []
    censored = 0
    for batch_id in batch_ids:
        if batch_id in obs.arrivals:
            lags.append(obs.arrivals[batch_id] - ends_at[batch_id])
        else:  # never detected: the lag is at least until the harness gave up
            censored += 1
            lags.append(end_wall - ends_at[batch_id])
    non_success = sum(1 for status in obs.statuses.values() if status != "success")
    stalls = [late for _, late, _, _ in obs.stalls]
    own = [max(0.0, late - waited) for _, late, waited, _ in obs.stalls]
    not_gc = [max(0.0, late - waited - in_gc) for _, late, waited, in_gc in obs.stalls]
    worst_at, worst, worst_wait, worst_gc = (
        max(obs.stalls, key=lambda item: item[1]) if obs.stalls else (None, None, None, None)
    )
    timings = poll_timings(records, set(batch_ids), obs.started_wall)

    result: dict[str, Any] = {
        "provider": args.provider,
        **details,
        "n": args.count,
        "poll_interval_s": args.poll_interval,
        "latency_s": args.latency,
        "ends_spread_s": [args.ends_min, args.ends_max],
        "max_seconds": args.max_seconds,
        "python": sys.version.split()[0],
        "open_files_limit": fd_limit,
        "load_average_after": load_average(),
        "startup_import_s": round(import_s, 2),
        "events": len(obs.arrivals),
        "non_success_events": non_success,
        "trigger_exceptions": len(obs.failures),
        "trigger_exception_sample": sorted(set(obs.failures.values()))[:3],
        "not_detected_before_timeout": censored,
        "run_wall_s": round(run_s, 2),
        "create_triggers_s": round(obs.created_mono - obs.started_mono, 3),
        "lag_p50_s": _round(median(lags)),
        "lag_p99_s": _round(percentile(lags, 99)),
        "lag_max_s": _round(max(lags)),
        "lag_is_lower_bound": censored > 0,
        **timings,
        "http_requests": stats_after["requests"] - stats_before["requests"],
        "http_429s": stats_after.get("rate_limited", 0) - stats_before.get("rate_limited", 0),
        "rate_limit_rpm": args.rate_limit_rpm,
        "max_requests_per_minute": args.max_requests_per_minute,
        "requests_per_minute": round(
            (stats_after["requests"] - stats_before["requests"]) / max(run_s, 1e-9) * 60, 1
        ),
        "gc_objects_per_wait": _round(
            (obs.objects_waiting - obs.objects_before) / obs.objects_waits
            if obs.objects_waits
            else None,
            1,
        ),
        "waits_when_objects_counted": obs.objects_waits,
        "gc_objects_per_wait_by_type": objects_by_type(obs),
        # Each admin call opens one connection; the stats call that reads the counter is one.
        "tcp_connections_opened": stats_after["connections_opened"]
        - stats_before["connections_opened"]
        - 1,
        "cpu_s_trigger_phase": round(loop_cpu, 2),
        "cpu_s_process_total": round(cpu_seconds() - cpu_at_start, 2),
        "cpu_s_before_triggers": round(cpu_before - cpu_at_start, 2),
        "rss_mb_before_triggers": round(rss_before_kb / 1024, 1),
        "rss_mb_after_run": round(rss_after_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "stall_max_ms": _round(worst * 1000 if worst is not None else None, 1),
        "stall_max_at_s": _round(worst_at, 1),
        "stall_p99_ms": _round((percentile(stalls, 99) or 0) * 1000, 1),
        "stalls_over_100ms": sum(1 for s in stalls if s > 0.1),
        "stall_max_cpu_wait_ms": _round(worst_wait * 1000 if worst_wait is not None else None, 1),
        "stall_max_excl_cpu_wait_ms": _round(max(own) * 1000 if own else None, 1),
        "stall_p99_excl_cpu_wait_ms": _round((percentile(own, 99) or 0) * 1000, 1),
        "own_stalls_over_100ms": sum(1 for s in own if s > 0.1),
        "loop_thread_cpu_wait_s": round(obs.loop_runqueue_wait_s, 2),
        "stall_max_gc_ms": _round(worst_gc * 1000 if worst_gc is not None else None, 1),
        "stall_max_excl_gc_and_cpu_wait_ms": _round(max(not_gc) * 1000 if not_gc else None, 1),
        "gc_freeze": args.gc_freeze,
        "gc_collections": obs.gc.count,
        "gc_worst_pause_ms": [round(x * 1000, 1) for x in obs.gc.worst],
        "gc_total_s": round(obs.gc.total, 2),
        # [seconds since start, late ms, of which CPU wait ms, of which GC ms]
        "worst_stall_samples": [
            [round(at, 2), round(late * 1000, 1), round(wait * 1000, 1), round(in_gc * 1000, 1)]
            for at, late, wait, in_gc in sorted(obs.stalls, key=lambda x: -x[1])[:5]
        ],
        # [seconds since start, ms]
        "worst_gc_pauses": [
            [round(start - obs.started_mono, 2), round((end - start) * 1000, 1)]
            for start, end in sorted(obs.gc.pauses, key=lambda x: x[0] - x[1])[:5]
        ],
        "stall_samples": len(stalls),
        "max_threads": obs.max_threads,
        "fake_server": fake_usage,
    }
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
