"""The provider's metrics as a real DAG run sends them to StatsD through Airflow's ``Stats``."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY
from telemetry_runs import received_datagrams, run_telemetry_dag, udp_listener, write_requests

from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.timeout(240)

PREFIX = "airflow.anthropic_batches."
#: The connection's price for the test's first model (USD per million tokens, standard).
PRICES_A = {
    "input": "3",
    "cache_write_5m": "3.75",
    "cache_write_1h": "6",
    "cache_read": "0.30",
    "output": "15",
}
#: ``name,tag=value,...:value|type`` (InfluxDB-style tags, Airflow's statsd_influxdb_enabled).
DATAGRAM = re.compile(
    r"^(?P<name>[^,:]+)(?P<tags>(?:,[^,:=]+=[^,:]*)*):(?P<value>[^|]+)\|(?P<type>\w+)"
)
Metrics = dict[str, list[tuple[dict[str, str], float, str]]]


def parse(lines: list[str]) -> Metrics:
    """Our datagrams by metric name (prefix removed): (tags, value, type) each."""
    metrics: Metrics = defaultdict(list)
    for line in lines:
        match = DATAGRAM.match(line)
        assert match, f"not a StatsD line: {line!r}"
        if not match["name"].startswith(PREFIX):
            continue
        tags = dict(pair.split("=", 1) for pair in match["tags"].split(",") if pair)
        metrics[match["name"][len(PREFIX) :]].append((tags, float(match["value"]), match["type"]))
    return metrics


def total(metrics: Metrics, name: str, **tags: str) -> float:
    return sum(
        value
        for got_tags, value, _ in metrics.get(name, [])
        if all(got_tags.get(key) == wanted for key, wanted in tags.items())
    )


def test_a_dag_run_sends_batch_request_token_and_watcher_metrics(
    airflow_db: Path, tmp_path: Path
) -> None:
    """A real ``dag.test()`` run with StatsD on sends, under the one prefix and tagged with the
    connection: the batch created, its requests per model, the batch ended by status, its
    requests by result type, its tokens by kind and its cost per priced model (once per results
    write; the unpriced model is left out, never counted as zero), the watcher's waits, list
    pages and retrieves, every API response by class and each 429. The API key is in no
    datagram."""
    models = ["claude-test-a", "claude-test-a", "claude-test-b"]
    write_requests(tmp_path / "requests.jsonl", models)
    listener = udp_listener()
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as fake, listener:
        # Two 429s on polls: each is retried after its retry-after, and each is counted.
        soon = {"retry-after-ms": "20"}
        fake.inject_fault(Fault(kind="status", status=429, headers=soon, times=2, method="GET"))
        state, output = run_telemetry_dag(
            "telemetry_batch",
            {"path": str(tmp_path / "requests.jsonl"), "results": str(tmp_path / "results")},
            fake.base_url,
            {
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
                "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
                "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
            },
            prices={"claude-test-a": PRICES_A},
        )
        assert "success" in state, output[-4000:]
        answered = len(fake.requests)
        lines = received_datagrams(listener)
    assert API_KEY not in "\n".join(lines)
    metrics = parse(lines)
    (manifest_path,) = (tmp_path / "results").glob("msgbatch_*/manifest.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    conn = {"conn_id": "anthropic_default"}

    assert metrics["batches.created"] == [(conn, 1.0, "c")]
    assert total(metrics, "requests.submitted", model="claude-test-a") == 2
    assert total(metrics, "requests.submitted", model="claude-test-b") == 1
    assert metrics["batches.ended"] == [({**conn, "status": "completed"}, 1.0, "c")]
    assert metrics["requests.succeeded"] == [(conn, 3.0, "c")]
    assert "requests.errored" not in metrics  # a zero count sends nothing
    usage = manifest["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    # Two writes of the same results (the operator's, then MessageBatchResultsOperator's).
    assert metrics["tokens.input"] == [(conn, float(usage["input_tokens"]), "c")] * 2
    assert metrics["tokens.output"] == [(conn, float(usage["output_tokens"]), "c")] * 2
    cache_write = float(usage["cache_creation_input_tokens"])
    cache_read = float(usage["cache_read_input_tokens"])
    assert cache_write > 0
    assert cache_read > 0
    assert metrics["tokens.cache_write"] == [(conn, cache_write, "c")] * 2
    assert metrics["tokens.cache_read"] == [(conn, cache_read, "c")] * 2
    # Model a at the connection's prices, halved for a batch; model b has no price: no datagram.
    tokens_a = manifest["cost"]["by_model"]["claude-test-a"]["tokens"]
    write_1h = tokens_a["cache_creation_1h_input_tokens"]
    usd_a = (
        (
            tokens_a["input_tokens"] * 3.0
            + (tokens_a["cache_creation_input_tokens"] - write_1h) * 3.75
            + write_1h * 6.0
            + tokens_a["cache_read_input_tokens"] * 0.30
            + tokens_a["output_tokens"] * 15.0
        )
        / 1e6
        * 0.5
    )
    assert tokens_a["cache_read_input_tokens"] > 0
    assert tokens_a["cache_creation_input_tokens"] > 0
    cost = metrics["cost_usd"]
    assert [(tags, kind) for tags, _, kind in cost] == [
        ({**conn, "model": "claude-test-a"}, "c")
    ] * 2
    assert [value for _, value, _ in cost] == [pytest.approx(usd_a, abs=1e-6)] * 2

    waits = metrics["watcher.waits"]
    assert all(kind == "g" and tags == conn for tags, _, kind in waits)
    assert 1.0 in [value for _, value, _ in waits]
    assert waits[-1][1] == 0.0  # the last wait answered
    assert total(metrics, "watcher.list_pages") + total(metrics, "watcher.retrieves") >= 1
    assert total(metrics, "api.rate_limited", **conn) == 2
    assert total(metrics, "api.responses", status="4xx") == 2
    # Every request the fake answered is one response counted (creates, polls, results).
    assert total(metrics, "api.responses") == answered
