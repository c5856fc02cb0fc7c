"""What running an example DAG under ``dag.test()`` needs: the examples folder as a DAG bundle
(``dag.test()`` parses the DAG again from a configured bundle) and quick polls."""

from __future__ import annotations

import json

import pytest
from example_runs import EXAMPLES

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


@pytest.fixture
def examples_bundle(airflow_db: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata DB, example_dags/ as a DAG bundle, and the examples' polls every 0.5 s."""
    monkeypatch.setenv("EXAMPLE_BATCH_POLL_SECONDS", "0.5")
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "examples", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(EXAMPLES)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
