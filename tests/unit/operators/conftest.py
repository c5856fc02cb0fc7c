"""Fixtures of the operator suites."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import API_KEY
from operator_dag_runs import use_variable_records

from airflow_provider_batches.testing import FakeBatchesServer


@pytest.fixture
def op_fake(airflow_db: object, set_connection: Any) -> Iterator[FakeBatchesServer]:
    """The fake API, batches ending 1 s after their create, as the default connection, with a
    migrated metadata database for dag.test()."""
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=1.0) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


@pytest.fixture
def variable_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Task records in Variables for this test (they survive dag.test()'s re-created runs)."""
    use_variable_records(monkeypatch)
