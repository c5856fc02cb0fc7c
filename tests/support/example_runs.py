"""Run an example DAG of example_dags/ under ``dag.test()`` and read back what it left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import REPO_ROOT
from operator_dag_runs import read_run

EXAMPLES = REPO_ROOT / "example_dags"


def run_example(
    dag_id: str, conf: dict[str, Any]
) -> tuple[Any, dict[str, str], dict[tuple[str, str], Any]]:
    """Parse ``example_dags/<dag_id>.py`` and run its DAG once with ``conf``; return the run, the
    task states and the XCom values by (task_id, key). The examples folder must be a DAG bundle
    (the ``examples_bundle`` fixture of tests/system/conftest.py)."""

    from airflow_provider_batches._compat import dag_bag_class

    path: Path = EXAMPLES / f"{dag_id}.py"
    bag = dag_bag_class()(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[dag_id].test(run_conf=conf)
    return (run, *read_run(run))


def canonical_body(requests: list[dict[str, Any]]) -> bytes:
    """The create body the operator sends for ``requests``: compact JSON with sorted keys, as
    the request set's fingerprint is taken (docs/operator.md), UTF-8 as is."""
    encoded = [
        json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in requests
    ]
    return ('{"requests":[' + ",".join(encoded) + "]}").encode()
