"""Helpers for tests/unit/telemetry/: run a telemetry DAG in a fresh Python process against the
fake.

A fresh process because Airflow reads its metrics and OpenLineage settings when it first
initializes them; the environment given here is in place before that. It runs on a copy of the
session's migrated SQLite database, in an Airflow home of its own: the OpenLineage listener
forks to emit, and a fork that holds a connection to the shared database file must never touch
the file every later test uses.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from helpers import API_KEY, connection_json

RUNNER = Path(__file__).parent / "telemetry_run_dag.py"
#: Bound of one DAG run in the subprocess (it takes a few seconds).
RUN_TIMEOUT = 120.0


def write_requests(path: Path, models: list[str]) -> list[dict[str, Any]]:
    """A JSONL requests file, one request per model given (in order)."""
    requests = [
        {
            "custom_id": f"req-{index}",
            "params": {
                "model": model,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"question {index}"}],
            },
        }
        for index, model in enumerate(models)
    ]
    path.write_text("".join(json.dumps(request) + "\n" for request in requests))
    return requests


def run_telemetry_dag(
    dag_id: str,
    conf: dict[str, Any],
    base_url: str,
    extra_env: dict[str, str],
    **conn_extra: object,
) -> tuple[str, str]:
    """Run the DAG with ``dag.test()`` in a subprocess, the connection carrying ``conn_extra``;
    returns (run state line, output)."""
    with tempfile.TemporaryDirectory(prefix="apb-telemetry-home-") as home:
        shutil.copy(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", Path(home) / "airflow.db")
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW_CONN_ANTHROPIC_DEFAULT": connection_json(
                base_url, API_KEY, max_retries=4, **conn_extra
            ),
            **extra_env,
        }
        done = subprocess.run(
            [sys.executable, str(RUNNER), dag_id, json.dumps(conf)],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    output = done.stdout + done.stderr
    state = next((line for line in done.stdout.splitlines() if line.startswith("RUN-STATE")), "")
    assert done.returncode == 0, output[-6000:]
    assert state, output[-6000:]
    return state, output


def udp_listener() -> socket.socket:
    """A UDP socket on a free loopback port, for the datagrams a StatsD client sends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    return listener


def received_datagrams(listener: socket.socket) -> list[str]:
    """Every datagram waiting on the socket (StatsD may pack several lines in one)."""
    lines: list[str] = []
    while True:
        try:
            data = listener.recv(65536)
        except BlockingIOError:
            return lines
        lines.extend(data.decode().splitlines())
