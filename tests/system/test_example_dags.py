"""Every example DAG imports cleanly and wires the sensor the way its docstring says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.matrix

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="module")
def bag() -> object:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    return DagBag(dag_folder=str(EXAMPLES))


def test_examples_import_without_errors(bag: object) -> None:
    assert bag.import_errors == {}  # type: ignore[attr-defined]
    assert set(bag.dag_ids) == {  # type: ignore[attr-defined]
        "example_batch_deferrable",
        "example_batch_reschedule",
        "example_batch_mapped",
        "example_batch_from_upstream",
        "example_batch_events",
        "example_batch_records",
        "example_batch_results",
        "example_batch_structured",
        "example_batch_submit_only",
    }


@pytest.mark.parametrize(
    ("dag_id", "deferrable", "mode"),
    [
        ("example_batch_deferrable", True, "poke"),
        ("example_batch_reschedule", False, "reschedule"),
    ],
)
def test_sensor_settings(bag: object, dag_id: str, deferrable: bool, mode: str) -> None:
    sensor = bag.dags[dag_id].get_task("wait_for_batch")  # type: ignore[attr-defined]
    assert type(sensor).__name__ == "MessageBatchSensor"
    assert sensor.deferrable is deferrable
    assert sensor.mode == mode


def test_mapped_example_expands_over_batch_ids(bag: object) -> None:
    mapped = bag.dags["example_batch_mapped"].get_task("wait_for_batch")  # type: ignore[attr-defined]
    assert "batch_id" in mapped.expand_input.value


def test_upstream_example_submits_with_the_operator(bag: object) -> None:
    dag = bag.dags["example_batch_from_upstream"]  # type: ignore[attr-defined]
    submit = dag.get_task("submit_and_wait")
    assert type(submit).__name__ == "MessageBatchOperator"
    assert submit.deferrable is True
    assert submit.upstream_task_ids == {"build_requests"}


def test_results_example_stores_after_the_sensor_and_reads_the_manifest(bag: object) -> None:
    dag = bag.dags["example_batch_results"]  # type: ignore[attr-defined]
    store = dag.get_task("store_results")
    assert type(store).__name__ == "MessageBatchResultsOperator"
    assert store.upstream_task_ids == {"wait_for_batch"}
    assert dag.get_task("report").upstream_task_ids == {"store_results"}


def test_importing_the_sensor_leaves_trigger_machinery_unloaded() -> None:
    """DAG parsing pays only for the sensor: the trigger and its base load in the triggerer."""
    code = (
        "import sys, airflow.sdk\n"
        # Airflow 3.1's own BaseSensorOperator loads airflow.triggers.base: count only our cost.
        "from airflow.sdk import BaseSensorOperator\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_batches.sensors.batch\n"
        "heavy = [m for m in ('airflow.triggers.base', 'airflow_provider_batches.triggers.batch',"
        " 'anthropic', 'airflow_provider_batches.testing') if m in set(sys.modules) - before]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_structured_example_validates_against_its_model(bag: object) -> None:
    dag = bag.dags["example_batch_structured"]  # type: ignore[attr-defined]
    submit = dag.get_task("submit_and_validate")
    assert submit.results_output_type.__name__ == "TicketTriage"
    assert submit.results_max_invalid_ratio == 0.05
    assert dag.get_task("load_rows").upstream_task_ids == {"submit_and_validate"}


def test_records_example_maps_records_with_the_model_from_the_connection(bag: object) -> None:
    dag = bag.dags["example_batch_records"]  # type: ignore[attr-defined]
    classify = dag.get_task("classify")
    assert type(classify).__name__ == "MessageBatchOperator"
    assert classify.requests == "{{ params.records_path }}"
    assert classify.prompt_template == "Classify the sentiment of this review: {review}"
    assert classify.custom_id_field == "id"
    assert (classify.model, classify.max_tokens) == (None, 16)
    assert classify.results_path == "{{ params.results_path }}"
    assert dag.get_task("report").upstream_task_ids == {"classify"}
