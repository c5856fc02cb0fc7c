"""Event-loop stall beside the fault matrix: the measurement the tests no longer time.

Runs every case of ``tests/support/reliability_cases.py`` at once in one event loop, next
to healthy waits, as one triggerer would, and reports how late a 10 ms tick ran (the loop's
stall), also as a ratio of the waits' poll interval. The tests check the same run by counting
blocking calls on the loop (``test_matrix_concurrently_beside_healthy_triggers``); this script
measures how long the loop actually lagged on this machine.

Usage: ``.venv/bin/python benchmarks/loop_stall.py [--healthy 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="apb-bench-home-"))

from _common import load_average  # noqa: E402


def set_connection(conn_id: str, base_url: str, api_key: str, **extra: Any) -> None:
    from helpers import connection_json

    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection_json(base_url, api_key, **extra)


async def one_round(healthy_count: int) -> dict[str, float]:
    from helpers import API_KEY
    from reliability_cases import BASE_TRIGGER, CASES, Env, Scenario, run_scenario
    from reliability_fixtures import LoopLagMonitor

    from airflow_provider_batches._http.clients import aclose_shared_clients, shared_async_pool
    from airflow_provider_batches.hooks.batch import MessageBatchHook
    from airflow_provider_batches.testing import FakeBatchesServer
    from airflow_provider_batches.triggers.batch import MessageBatchTrigger

    with FakeBatchesServer(api_key=API_KEY) as fake, ExitStack() as stack:
        env = Env(fake, set_connection, stack)
        for case in CASES:  # build every connection's client first, as the test does
            case.arrange(env, case)
        healthy_conn = env.conn("healthy")
        for conn_id in {"rel_" + c.id.replace("-", "_") for c in CASES} | {healthy_conn}:
            shared_async_pool(await MessageBatchHook(conn_id).asettings())
        fake.reset()
        arranged = [case.arrange(env, case) for case in CASES]
        healthy = [
            fake.create_batch(num_requests=2, ends_after=0.2 + 0.1 * i)["id"]
            for i in range(healthy_count)
        ]
        waits = [MessageBatchTrigger(**scenario.trigger_kwargs()) for scenario in arranged]
        waits += [MessageBatchTrigger(b, healthy_conn, poll_interval=0.05) for b in healthy]
        scenarios = arranged + [Scenario(b, healthy_conn) for b in healthy]
        try:
            with LoopLagMonitor() as lag:
                await asyncio.gather(
                    *(run_scenario(w, sc, 60) for w, sc in zip(waits, scenarios, strict=True)),
                    return_exceptions=True,
                )
        finally:
            await aclose_shared_clients()
    poll = float(BASE_TRIGGER["poll_interval"])
    return {
        "waits": float(len(waits)),
        "ticks": float(lag.ticks),
        "max_lag_s": lag.max_lag,
        "max_lag_per_poll_interval": lag.max_lag / poll,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = [asyncio.run(one_round(args.healthy)) for _ in range(args.rounds)]
    print(json.dumps({"load_average": load_average(), "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
