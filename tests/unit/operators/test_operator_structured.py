"""MessageBatchOperator with results_output_type in real Airflow (``dag.test()``): a pydantic
class given as an argument in the DAG file survives parsing and serialization, is applied to the
stored results, the manifest is pushed before results_max_invalid_ratio fails the task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from operator_dag_runs import load_dag, requests_for, run_dag

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = pytest.mark.airflow_db


@pytest.mark.parametrize(
    ("dag_id", "state"),
    [("operator_results_structured", "failed"), ("operator_results_structured_skip", "skipped")],
)
def test_output_type_is_applied_and_the_ratio_fails_after_the_manifest_is_pushed(
    op_fake: FakeBatchesServer, tmp_path: Path, dag_id: str, state: str
) -> None:
    """Past results_max_invalid_ratio the task fails, or with
    results_on_too_many_invalid="skip" is skipped, after the manifest is pushed."""
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(r) + "\n" for r in requests_for(3)))
    store = tmp_path / "results"

    _run, states, xcoms = run_dag(
        dag_id, {"path": str(requests_file), "results_path": f"file://{store}"}
    )

    assert states["submit"] == state
    manifest = xcoms[("submit", "manifest")]
    structured = manifest["structured"]
    assert structured["output_type"].endswith(":Answer")
    assert (structured["parsed"], structured["invalid"]) == (0, 3)
    assert structured["invalid_by_reason"] == {"not_json": 3}
    prefix = store / manifest["batch_id"]
    assert (prefix / "parsed.jsonl").read_bytes() == b""
    rows = [json.loads(line) for line in (prefix / "invalid.jsonl").read_bytes().splitlines()]
    assert sorted(row["custom_id"] for row in rows) == ["req-0", "req-1", "req-2"]
    assert json.loads((prefix / "manifest.json").read_text()) == manifest


def test_a_dag_with_a_class_output_type_serializes() -> None:
    """The class is an operator attribute, not a template field: the serialized DAG (what the
    scheduler stores) builds without it, and the worker gets it by parsing the DAG file."""
    from airflow.serialization import serialized_objects

    # Airflow 3.2+ names it DagSerialization; earlier releases SerializedDAG.
    serializer = getattr(serialized_objects, "DagSerialization", None)
    serializer = serializer or serialized_objects.SerializedDAG
    dag = load_dag("operator_results_structured")
    assert "results_output_type" not in type(dag.get_task("submit")).template_fields
    stored = serializer.to_json(dag)
    assert "Answer" not in stored
    assert serializer.from_json(stored).get_task("submit").task_id == "submit"


def test_the_output_type_checks_at_parse_load_no_validator() -> None:
    """The operators check output_type at DAG parse without importing jsonschema or the results
    package (tens of milliseconds): the type is resolved when the task runs."""
    import subprocess
    import sys

    code = (
        "import sys, airflow.sdk\n"
        "from airflow.sdk import BaseOperator\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_batches.operators.batch\n"
        "import airflow_provider_batches.operators.results\n"
        "heavy = [m for m in ('jsonschema', 'airflow_provider_batches.results.writer',"
        " 'airflow_provider_batches.results') if m in set(sys.modules) - before]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
