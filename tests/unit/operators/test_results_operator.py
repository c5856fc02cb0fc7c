"""MessageBatchResultsOperator in real Airflow (``dag.test()``): the manifest is its XCom and a
downstream task reads it; a rerun does not download again; a permanent error fails at once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DAGS_DIR
from operator_dag_runs import read_run

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = pytest.mark.airflow_db


def _run(conf: dict[str, Any]) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(DAGS_DIR / "results_operator.py"))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["results_to_storage"].test(run_conf=conf)
    return read_run(run)


def test_operator_returns_the_manifest_and_downstream_reads_it(
    airflow_db: object, fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    outcomes = {"succeeded": 150, "errored": 120, "canceled": 20, "expired": 10}
    batch = fake.create_batch(num_requests=300, ends_after=0.0, outcomes=outcomes)
    conf = {"batch_id": batch["id"], "results_path": f"file://{tmp_path}"}
    states, xcoms = _run(conf)
    assert states == {"write_results": "success", "summarize": "success"}
    manifest = xcoms[("write_results", "return_value")]
    stored = (tmp_path / batch["id"] / "results.jsonl").read_bytes()
    assert manifest["results_sha256"] == hashlib.sha256(stored).hexdigest()
    assert manifest["line_counts"] == {**outcomes, "unknown": 0, "total": 300}
    assert set(manifest["files"]) == {"results", "succeeded", "errored"}
    assert xcoms[("summarize", "return_value")] == {
        "total": 300,
        "errored_ids": 100,
        "sha256": manifest["results_sha256"],
    }
    results_reads = fake.request_count(batch["id"], "GET")
    states, xcoms = _run(conf)
    assert states["write_results"] == "success"
    assert xcoms[("write_results", "return_value")] == manifest
    assert fake.request_count(batch["id"], "GET") == results_reads  # rerun: nothing fetched


def test_operator_fails_on_a_batch_not_ended(
    airflow_db: object, fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    batch = fake.create_batch(num_requests=3, ends_after=None)
    states, xcoms = _run({"batch_id": batch["id"], "results_path": f"file://{tmp_path}"})
    assert states["write_results"] == "failed"
    assert states["summarize"] == "upstream_failed"
    assert ("write_results", "return_value") not in xcoms
    assert not (tmp_path / batch["id"] / "manifest.json").exists()


def test_templated_fields() -> None:
    from airflow_provider_batches.operators.results import MessageBatchResultsOperator

    assert set(MessageBatchResultsOperator.template_fields) >= {"batch_id", "results_path"}


def test_example_dag_runs_sensor_results_and_report(
    airflow_db: object,
    fake: FakeBatchesServer,
    fake_conn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    monkeypatch.setenv("EXAMPLE_BATCH_POLL_SECONDS", "1")
    # dag.test() serializes the DAG from a configured bundle: add the examples as one.
    examples = Path(__file__).resolve().parents[3] / "example_dags" / "example_batch_results.py"
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {"path": str(DAGS_DIR)}},
        {"name": "examples", "classpath": local, "kwargs": {"path": str(examples.parent)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    bag = DagBag(dag_folder=str(examples))
    assert not bag.import_errors, bag.import_errors
    outcomes = {"succeeded": 40, "errored": 8}
    batch = fake.create_batch(num_requests=48, ends_after=1.0, outcomes=outcomes)
    conf = {"batch_id": batch["id"], "results_path": f"file://{tmp_path}"}
    run = bag.dags["example_batch_results"].test(run_conf=conf)
    states, xcoms = read_run(run)
    assert states == dict.fromkeys(("wait_for_batch", "store_results", "report"), "success")
    manifest = xcoms[("store_results", "return_value")]
    assert xcoms[("report", "return_value")] == {
        "succeeded": 40,
        "sha256": manifest["results_sha256"],
    }
    assert (tmp_path / batch["id"] / "errored.jsonl").read_bytes().count(b"\n") == 8


def test_provider_info_lists_the_operator_and_the_results_hosts_extra() -> None:
    import importlib

    from airflow_provider_batches.provider_info import provider_info

    info = provider_info()
    (operators,) = info["operators"]
    assert operators["python-modules"] == [
        "airflow_provider_batches.operators.batch",
        "airflow_provider_batches.operators.results",
    ]
    assert importlib.import_module("airflow_provider_batches.operators.batch").MessageBatchOperator
    results_module = importlib.import_module("airflow_provider_batches.operators.results")
    assert results_module.MessageBatchResultsOperator
    (conn,) = info["connection-types"]
    assert conn["conn-fields"]["results_hosts"]["schema"]["type"] == ["array", "null"]


def _run_structured(
    conf: dict[str, Any], dag_id: str = "results_structured"
) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(DAGS_DIR / "results_operator.py"))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[dag_id].test(run_conf=conf)
    return read_run(run)


@pytest.mark.parametrize(
    ("dag_id", "valid", "invalid", "state"),
    [
        ("results_structured", 3, 1, "success"),
        ("results_structured", 1, 3, "failed"),
        ("results_structured_skip", 3, 1, "success"),
        ("results_structured_skip", 1, 3, "skipped"),
    ],
)
def test_output_type_from_the_dag_file_validates_and_max_invalid_ratio_decides(
    airflow_db: object,
    fake: FakeBatchesServer,
    fake_conn: str,
    tmp_path: Path,
    dag_id: str,
    valid: int,
    invalid: int,
    state: str,
) -> None:
    """Past max_invalid_ratio the task fails, or with on_too_many_invalid="skip" is skipped
    (and its downstream with it); every file and the manifest are written either way."""
    good = [{"type": "text", "text": '{"label": "spam", "score": 0.9}'}]
    bad = [{"type": "text", "text": "I think it is spam."}]
    batch = fake.create_batch(
        num_requests=valid + invalid,
        ends_after=0.0,
        contents=[good] * valid + [bad] * invalid,
    )
    conf = {"batch_id": batch["id"], "results_path": f"file://{tmp_path}"}
    states, xcoms = _run_structured(conf, dag_id)
    assert states["write_results"] == state
    manifest = json.loads((tmp_path / batch["id"] / "manifest.json").read_bytes())
    assert (manifest["structured"]["parsed"], manifest["structured"]["invalid"]) == (
        valid,
        invalid,
    )
    if state == "success":
        assert xcoms[("write_results", "return_value")] == manifest
        assert xcoms[("first_label", "return_value")] == "spam"
    else:
        downstream = {"failed": "upstream_failed", "skipped": "skipped"}[state]
        assert states["first_label"] == downstream
