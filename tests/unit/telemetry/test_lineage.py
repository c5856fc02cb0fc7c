"""OpenLineage: what the operators report to the listener of
``apache-airflow-providers-openlineage``, and that without it nothing of OpenLineage loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_runs import run_telemetry_dag, write_requests

from airflow_provider_batches.telemetry.lineage import (
    FACET_NAME,
    dataset_name,
    facet_fields,
    models_of,
)
from airflow_provider_batches.testing import FakeBatchesServer


@pytest.mark.timeout(240)
def test_a_dag_run_emits_the_requests_file_results_prefix_and_batch_facet(
    airflow_db: Path, tmp_path: Path
) -> None:
    """With the OpenLineage listener and a file transport, a real run's COMPLETE events name
    the requests file as input and each results prefix as output, and carry the batch's
    ``anthropicBatch`` facet (id, status, request counts, token usage as in the manifest).
    The API key appears nowhere in what was emitted."""
    requests_file = tmp_path / "requests.jsonl"
    write_requests(requests_file, ["claude-test-a", "claude-test-b"])
    events_file = tmp_path / "lineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as fake:
        state, output = run_telemetry_dag(
            "telemetry_batch",
            {"path": str(requests_file), "results": str(tmp_path / "results")},
            fake.base_url,
            {
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "telemetry-test",
            },
        )
    assert "success" in state, output[-4000:]
    emitted = events_file.read_text()
    assert API_KEY not in emitted
    events = [json.loads(line) for line in emitted.splitlines()]
    complete = {
        event["job"]["name"]: event
        for event in events
        if event["eventType"] == "COMPLETE" and "." in event["job"]["name"]
    }
    submit, store = complete["telemetry_batch.submit"], complete["telemetry_batch.store"]
    (manifest_path,) = (tmp_path / "results").glob("msgbatch_*/manifest.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    batch_id = manifest["batch_id"]

    def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(dataset["namespace"], dataset["name"]) for dataset in datasets]

    assert names(submit["inputs"]) == [("file", str(requests_file))]
    assert names(submit["outputs"]) == [("file", str(tmp_path / "results" / batch_id))]
    assert names(store["inputs"]) == []
    assert names(store["outputs"]) == [("file", str(tmp_path / "results" / "again" / batch_id))]
    for event in (submit, store):
        facet = event["run"]["facets"][FACET_NAME]
        assert facet["batchId"] == batch_id
        assert facet["processingStatus"] == "ended"
        assert facet["requestCounts"]["succeeded"] == 2
        assert facet["usage"] == manifest["usage"]
        assert facet["_schemaURL"].endswith("docs/lineage.md#the-anthropicbatch-run-facet")
    # The START events come before the batch is known: no facet, no datasets.
    starts = [event for event in events if event["eventType"] == "START"]
    assert starts
    assert all(FACET_NAME not in event["run"]["facets"] for event in starts)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/data/in/requests.jsonl", ("file", "/data/in/requests.jsonl")),
        ("file:///data/in/requests.jsonl", ("file", "/data/in/requests.jsonl")),
        ("s3://aws_default@bucket/in/requests.jsonl", ("s3://bucket", "in/requests.jsonl")),
        ("s3://user:secret@bucket/results/msgbatch_1/", ("s3://bucket", "results/msgbatch_1")),
        ("gs://bucket/prefix", ("gs://bucket", "prefix")),
        ("s3://bucket", ("s3://bucket", "/")),
        ('[{"custom_id": "a"}]', None),
        ([{"custom_id": "a"}], None),
        (None, None),
        ("  ", None),
    ],
)
def test_dataset_names_follow_openlineage_naming(location: Any, expected: Any) -> None:
    """A local path is namespace ``file`` with its absolute path; an object store URL is
    ``<scheme>://<bucket>`` with its key, without the user part (a connection id or
    credentials); requests that are no path (a list, a JSON array string) are no dataset."""
    assert dataset_name(location) == expected


def test_an_object_storage_path_is_named_by_its_url() -> None:
    """An ``ObjectStoragePath`` (how users pass ``s3://conn@bucket/...``) names the same
    dataset as its URL."""
    from airflow.sdk import ObjectStoragePath

    assert dataset_name(ObjectStoragePath("file:///data/results")) == ("file", "/data/results")


def test_models_come_from_the_operator_requests_in_memory_and_the_manifest_cost() -> None:
    """Models are gathered from the operator's ``model``, requests held in memory and the
    manifest's per-model cost entries (not the pooled "(other models)"), sorted, once each."""
    requests = [
        {"custom_id": "a", "params": {"model": "m-b"}},
        {"custom_id": "b", "params": {"model": "m-a"}},
        {"custom_id": "c", "params": {}},
    ]
    manifest = {"cost": {"by_model": {"m-c": {}, "(other models)": {}, "m-a": {}}}}
    assert models_of(manifest, requests, "m-d") == ["m-a", "m-b", "m-c", "m-d"]
    assert models_of(None, "/path/requests.jsonl", None) == []


def test_the_facet_takes_the_batch_from_the_manifest_and_cost_when_known() -> None:
    """Without a recorded batch the manifest's batch is used; ``costUsd`` is the manifest's
    ``cost.total_usd`` (absent while a model is unpriced); no batch at all, no facet."""
    batch = {"id": "msgbatch_1", "processing_status": "ended", "request_counts": {"succeeded": 1}}
    manifest = {"batch": batch, "usage": {"input_tokens": 5}, "cost": {"total_usd": 0.25}}
    fields = facet_fields(None, manifest, ["m"])
    assert fields == {
        "batchId": "msgbatch_1",
        "processingStatus": "ended",
        "requestCounts": {"succeeded": 1},
        "models": ["m"],
        "usage": {"input_tokens": 5},
        "costUsd": 0.25,
    }
    unpriced = facet_fields(batch, {**manifest, "cost": {"total_usd": None}}, [])
    assert unpriced is not None
    assert unpriced["costUsd"] is None
    assert facet_fields(None, None, []) is None


BUILD_OPERATORS = """
import importlib.abc, sys

# Airflow's own provider discovery reads the OpenLineage provider's package and metadata;
# everything else of it, and the OpenLineage client, fails to import when blocked.
DISCOVERY = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")


class NoOpenLineage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in DISCOVERY:
            return None
        if name.split(".")[0] == "openlineage" or name.startswith("airflow.providers.openlineage"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


def loaded():
    return {m for m in sys.modules if "openlineage" in m}


if BLOCK:
    sys.meta_path.insert(0, NoOpenLineage())
from airflow.sdk import BaseOperator

BaseOperator(task_id="plain")
before = loaded()
from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.operators.results import MessageBatchResultsOperator

MessageBatchOperator(task_id="submit", prompts=["hi"], model="m", max_tokens=8)
MessageBatchResultsOperator(task_id="store", batch_id="msgbatch_1", results_path="/tmp/r")
print(sorted(loaded() - before))
"""


@pytest.mark.parametrize("block", [False, True], ids=["installed", "not-importable"])
def test_the_operators_load_no_openlineage_module(block: bool) -> None:
    """Importing the operators and building them loads no OpenLineage module beyond what
    Airflow itself loaded, whether OpenLineage can be imported or not (blocked: every import
    of the client or the provider's modules fails, as when they are not installed)."""
    done = subprocess.run(
        [sys.executable, "-c", f"BLOCK = {block}\n{BUILD_OPERATORS}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["s3", "gs", "abfs", "S3"]),
    user=st.text(alphabet="ABCDEFGHIJ_-", min_size=1, max_size=20),
    password=st.text(alphabet="KLMNOPQRSTUVWXYZ%!*~", min_size=1, max_size=30),
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]", fullmatch=True),
    key=st.lists(st.from_regex(r"[a-z0-9_.=-]{1,12}", fullmatch=True), max_size=4),
)
def test_no_credential_of_a_url_reaches_a_dataset_name(
    scheme: str, user: str, password: str, bucket: str, key: list[str]
) -> None:
    """Whatever user part a storage URL carries (a connection id, a user and a password),
    the dataset is ``<scheme>://<bucket>`` and the key, and neither holds any of it."""
    path = "/".join(key)
    namespace, name = dataset_name(f"{scheme}://{user}:{password}@{bucket}/{path}") or ("", "")
    assert (namespace, name) == (f"{scheme.lower()}://{bucket}", path or "/")
    assert password not in namespace + name
    assert f"{user}:" not in namespace + name
