"""Parsing a DAG that uses the operator loads no trigger, submission or fake-API machinery."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.matrix


def test_importing_the_operator_leaves_the_rest_unloaded() -> None:
    code = (
        "import sys, airflow.sdk\n"
        # Airflow 3.1's own BaseOperator loads airflow.triggers.base: count only our cost.
        "from airflow.sdk import BaseOperator\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_batches.operators.batch\n"
        "heavy = [m for m in ('airflow.triggers.base', 'airflow_provider_batches.triggers.batch',"
        " 'airflow_provider_batches.operators._submission', 'airflow_provider_batches.testing',"
        " 'anthropic') if m in set(sys.modules) - before]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
