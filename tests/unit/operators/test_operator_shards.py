"""split_oversized=True: a set past the limits (lowered here) becomes several batches, each
created once per task instance, waited for together and finished as one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, SUPPORT_DIR
from operator_dag_runs import requests_for, run_dag

from airflow_provider_batches import request_set
from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = [pytest.mark.airflow_db]

RUNNER = SUPPORT_DIR / "operator_kill_runner.py"


@pytest.fixture
def two_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_set, "MAX_REQUESTS", 2)


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


def _same_airflow_env() -> dict[str, str]:
    import os

    from airflow.configuration import conf

    return {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key", fallback="")}


@pytest.mark.parametrize("dag_id", ["operator_split", "operator_split_in_worker"])
def test_a_split_set_waits_for_every_shard_and_writes_one_manifest(
    op_fake: FakeBatchesServer, two_per_batch: None, tmp_path: Path, dag_id: str
) -> None:
    conf = {"requests": requests_for(5), "results_path": f"file://{tmp_path}"}

    run, states, xcoms = run_dag(dag_id, conf)

    assert run.state == "success", states
    assert _creates(op_fake) == 3
    value = xcoms[("submit", "return_value")]
    assert [shard["request_counts"]["succeeded"] for shard in value["shards"]] == [2, 2, 1]
    assert value["request_counts"]["succeeded"] == value["total_requests"] == 5
    assert xcoms[("received", "return_value")]["succeeded"] == 5
    manifest = xcoms[("submit", "manifest")]
    assert [s["batch_id"] for s in manifest["shards"]] == value["batch_ids"]
    assert [s["line_counts"]["total"] for s in manifest["shards"]] == [2, 2, 1]
    assert manifest["line_counts"]["total"] == 5
    prefix = tmp_path / f"{value['batch_ids'][0]}-shards"
    lines = (prefix / "results.jsonl").read_bytes().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in lines) == [f"req-{i}" for i in range(5)]
    assert json.loads((prefix / "manifest.json").read_bytes())["shards"] == manifest["shards"]
    assert "cost" in manifest  # priced like a single batch's results (null: an unknown model)


def test_retry_after_sigkill_after_shard_two_of_three_creates_only_shard_three(
    op_fake: FakeBatchesServer, two_per_batch: None, variable_records: None
) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    conf = {"requests": requests_for(6)}
    first = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "operator_split",
            json.dumps(conf),
            when.isoformat(),
            "after_record:2",
            "2",
        ],
        env=_same_airflow_env(),
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert first.returncode == -signal.SIGKILL, first.stdout[-3000:] + first.stderr[-3000:]
    assert _creates(op_fake) == 2

    run, states, xcoms = run_dag("operator_split", conf, logical_date=when)

    assert run.state == "success", states
    assert _creates(op_fake) == 3, "the retry created a shard again"
    value = xcoms[("submit", "return_value")]
    assert len(set(value["batch_ids"])) == 3
    assert value["request_counts"]["succeeded"] == 6


def test_on_kill_in_the_worker_cancels_every_shard(op_fake: FakeBatchesServer) -> None:
    from airflow_provider_batches.operators.batch import MessageBatchOperator

    ids = [op_fake.create_batch(num_requests=1, ends_after=None)["id"] for _ in range(3)]
    operator = MessageBatchOperator(
        task_id="t", requests=requests_for(1), split_oversized=True, deferrable=False
    )
    operator._waiting_for_shards = ids

    operator.on_kill()

    assert [op_fake.request_count(batch_id, "POST") for batch_id in ids] == [1, 1, 1]
    assert all(op_fake.get_batch(batch_id)["cancel_initiated_at"] for batch_id in ids)


def test_a_wait_past_its_deadline_cancels_every_shard(
    airflow_db: object, set_connection: Any, two_per_batch: None
) -> None:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=3600) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)

        _, states, _ = run_dag("operator_split_timeout", {"requests": requests_for(4)})

        assert states["submit"] == "failed"
        created = [r.batch_id for r in fake.requests if r.batch_id]
        ids = sorted(set(created))
        assert len(ids) == 2
        assert all(fake.get_batch(batch_id)["cancel_initiated_at"] for batch_id in ids)


def test_a_split_set_over_the_spend_cap_sends_nothing(
    op_fake: FakeBatchesServer, two_per_batch: None
) -> None:
    """The spend guard bounds the whole split set (every shard), before the first create."""
    from airflow_provider_batches.exceptions import SpendLimitExceededError
    from airflow_provider_batches.operators.batch import MessageBatchOperator

    operator = MessageBatchOperator(
        task_id="t",
        requests=requests_for(5),
        split_oversized=True,
        max_cost_usd=0.0001,
        prices={
            "claude-test": {
                "input": 0,
                "cache_write_5m": 0,
                "cache_write_1h": 0,
                "cache_read": 0,
                "output": 10,
            }
        },
    )
    with pytest.raises(SpendLimitExceededError, match="5 requests"):
        operator.execute({"ti": None})  # type: ignore[arg-type]
    assert _creates(op_fake) == 0


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"wait_for_completion": False}, "wait_for_completion=True"),
        ({"results_output_type": {"type": "object"}}, "results_output_type"),
        ({"split_oversized": "yes"}, "True or False"),
    ],
)
def test_what_a_split_set_cannot_do_fails_at_dag_parse(
    options: dict[str, Any], problem: str
) -> None:
    from airflow_provider_batches.operators.batch import MessageBatchOperator

    with pytest.raises(ValueError, match=problem):
        MessageBatchOperator(
            task_id="t", requests=requests_for(1), **{"split_oversized": True, **options}
        )
    with pytest.raises(ValueError, match=problem):
        MessageBatchOperator.partial(task_id="m", **{"split_oversized": True, **options}).expand(
            requests=[requests_for(1)]
        )
