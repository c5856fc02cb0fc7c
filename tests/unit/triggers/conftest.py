"""Fixtures for the watcher suites: a connection to the fake and helpers to run triggers."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_batches.testing import FakeBatchesServer


@pytest.fixture
def conn(fake: FakeBatchesServer, set_connection: Any) -> str:
    set_connection("watched", fake.base_url, max_retries=2, timeout=5)
    return "watched"
