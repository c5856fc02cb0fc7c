"""The records example DAG runs end to end under ``dag.test()`` against the fake: a JSONL file
of the user's records becomes one batch of template-filled prompts (custom_ids from the id
field, the model from the connection's ``default_model``, the task's ``max_tokens``), whose
results and manifest land under the results path and reach the downstream task."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from example_runs import canonical_body, run_example
from helpers import API_KEY

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = [pytest.mark.matrix, pytest.mark.airflow_db]

#: The connection's default_model extra: the example's requests name no model themselves.
CONNECTION_MODEL = "claude-from-the-connection"
RECORDS = [
    {"id": 7, "review": "Great blender, crushes ice in seconds.", "stars": 5},
    {"id": 8, "review": "Stopped working after two days.", "stars": 1},
    {"id": 42, "review": "It blends. Loud, though.", "stars": 3},
]


@pytest.fixture
def records_fake(examples_bundle: None, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=1.0) as server:
        set_connection(
            "anthropic_default", server.base_url, max_retries=1, default_model=CONNECTION_MODEL
        )
        yield server


@pytest.mark.parametrize("form", ["file:// URL", "local path"])
def test_the_example_classifies_a_records_file_with_the_connection_s_model(
    records_fake: FakeBatchesServer, tmp_path: Path, form: str
) -> None:
    records = tmp_path / "reviews.jsonl"
    records.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    results = tmp_path / "results"
    scheme = "file://" if form == "file:// URL" else ""

    run, states, xcoms = run_example(
        "example_batch_records",
        {"records_path": f"{scheme}{records}", "results_path": f"{scheme}{results}"},
    )

    assert run.state == "success", states
    assert states == {"classify": "success", "report": "success"}

    # The ended batch is the task's return value; the manifest went to XCom key "manifest".
    batch = xcoms[("classify", "return_value")]
    manifest = xcoms[("classify", "manifest")]
    assert manifest["batch_id"] == batch["id"]
    assert manifest["line_counts"]["succeeded"] == manifest["line_counts"]["total"] == 3

    # Results and manifest under <results_path>/<batch id>/.
    prefix = results / batch["id"]
    assert json.loads((prefix / "manifest.json").read_text()) == manifest
    lines = [json.loads(line) for line in (prefix / "results.jsonl").read_bytes().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["42", "7", "8"]
    assert {line["result"]["message"]["model"] for line in lines} == {CONNECTION_MODEL}
    assert manifest["files"]["results"]["sha256"] == manifest["results_sha256"]
    assert (
        manifest["results_sha256"]
        == hashlib.sha256((prefix / "results.jsonl").read_bytes()).hexdigest()
    )

    # One create, whose body is exactly the records' requests: each record's prompt from the
    # template, its id as custom_id, the connection's model, the task's max_tokens and system.
    creates = [r for r in records_fake.requests if r.method == "POST" and r.batch_id is None]
    assert len(creates) == 1
    expected = [
        {
            "custom_id": str(record["id"]),
            "params": {
                "model": CONNECTION_MODEL,
                "max_tokens": 16,
                "system": "Answer with one word: positive, negative or neutral.",
                "messages": [
                    {
                        "role": "user",
                        "content": f"Classify the sentiment of this review: {record['review']}",
                    }
                ],
            },
        }
        for record in RECORDS
    ]
    body = canonical_body(expected)
    assert (creates[0].body_sha256, creates[0].body_bytes) == (
        hashlib.sha256(body).hexdigest(),
        len(body),
    ), f"the create body differs from {body.decode()}"

    # The downstream task got the manifest and read the answers from the results file (the
    # fake answers "Fake response for <custom_id>.").
    assert xcoms[("report", "return_value")] == {
        "batch_id": batch["id"],
        "succeeded": 3,
        "errored": 0,
        "sentiments": {f"fake response for {record['id']}.": 1 for record in RECORDS},
    }
