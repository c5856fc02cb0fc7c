"""Shared fixtures: a throwaway Airflow home, the embedded fake API, and a connection to it.

Airflow reads ``AIRFLOW_HOME`` when first imported, so it is set here, before any test module
imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))
from helpers import API_KEY, DAGS_DIR, connection_json

# Every test ends within its time bound, whatever Airflow does with SIGALRM
# (see support/time_bound.py).
from time_bound import (  # noqa: F401  (pytest finds hooks by name in this module)
    pytest_addoption,
    pytest_runtest_makereport,
    pytest_timeout_cancel_timer,
    pytest_timeout_set_timer,
)

if "airflow" in sys.modules:  # it would have read the user's AIRFLOW_HOME already
    raise RuntimeError("Airflow was imported before tests/conftest.py set AIRFLOW_HOME")
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="apb-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from airflow_provider_batches._http.clients import close_shared_sync_clients

    close_shared_sync_clients()
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A migrated SQLite metadata DB in the session's Airflow home (about 6 s, once)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return airflow_home


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def fake() -> Iterator[object]:
    """The embedded fake Batches API on a free loopback port, stopped after the test."""
    from airflow_provider_batches.testing import FakeBatchesServer

    with FakeBatchesServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``set_connection(conn_id, base_url, api_key=..., **extras)`` through ``AIRFLOW_CONN_*``."""

    def _set(conn_id: str, base_url: str, api_key: str = API_KEY, **extra: object) -> None:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(base_url, api_key, **extra)
        )

    return _set


@pytest.fixture
def fake_conn(fake: object, set_connection: Callable[..., None]) -> str:
    """Connection ``anthropic_default`` pointing at the fake with fast retries."""
    set_connection("anthropic_default", fake.base_url, max_retries=2)  # type: ignore[attr-defined]
    return "anthropic_default"
