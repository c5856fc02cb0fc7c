"""The embedded fake API served by ``python -m airflow_provider_batches.testing serve`` in a
process of its own, for tests whose timing or memory must not share an interpreter with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from helpers import API_KEY

from airflow_provider_batches.testing.__main__ import READY_PREFIX


@contextmanager
def fake_api_process(*serve_args: str, api_key: str = API_KEY) -> Iterator[str]:
    """Serve the fake on a free loopback port with ``serve_args``; yields its base URL."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_batches.testing",
            "serve",
            "--port",
            "0",
            "--api-key",
            api_key,
            *serve_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        assert ready[:1] == [READY_PREFIX], f"the fake did not start: {ready}"
        yield ready[1]
    finally:
        server.terminate()
        server.wait(30)
