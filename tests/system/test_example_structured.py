"""The structured example DAG under ``dag.test()`` against the fake.

The fake answers a batch created through the API with text (``Fake response for <custom_id>.``)
and has no way to script those answers: ``contents`` (tool calls, JSON text) applies only to
batches the test adds with ``fake.create_batch``. So the whole DAG runs as it would against a
model that ignores the forced tool: its requests are sent, every answer is stored and judged
invalid, the manifest is pushed, then ``results_max_invalid_ratio`` fails the task and
``load_rows`` does not run. The valid path of ``load_rows`` runs on its own below, on the files
the results writer makes from a batch of tool calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from example_runs import EXAMPLES, canonical_body, run_example
from helpers import API_KEY

from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = pytest.mark.matrix

TICKETS = {
    "ticket-1": "I was charged twice for my March invoice.",
    "ticket-2": "The export button crashes the app on Safari.",
    "ticket-3": "Could you add dark mode?",
}


@pytest.fixture(scope="module")
def example() -> SimpleNamespace:
    """The example's DAG as Airflow parses it, with its tool and its model."""
    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(EXAMPLES / "example_batch_structured.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["example_batch_structured"]
    return SimpleNamespace(
        TOOL=dag.get_task("build_requests").python_callable.__globals__["TOOL"],
        TicketTriage=dag.get_task("submit_and_validate").results_output_type,
        load_rows=dag.get_task("load_rows").python_callable,
    )


@pytest.fixture
def structured_fake(examples_bundle: None, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=1.0) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


@pytest.mark.airflow_db
def test_the_example_sends_forced_tool_requests_and_sorts_every_answer(
    structured_fake: FakeBatchesServer, example: SimpleNamespace, tmp_path: Path
) -> None:
    results = tmp_path / "results"

    run, states, xcoms = run_example(
        "example_batch_structured",
        {"model": "claude-structured-test", "results_path": f"file://{results}"},
    )

    # Three text answers of three are invalid: more than 5%, after everything is written.
    assert states == {
        "build_requests": "success",
        "submit_and_validate": "failed",
        "load_rows": "upstream_failed",
    }, states
    assert run.state == "failed"

    # One create: each ticket with the tool, the forced call and the model of the Param.
    creates = [r for r in structured_fake.requests if r.method == "POST" and r.batch_id is None]
    assert len(creates) == 1
    tool = example.TOOL
    assert tool["input_schema"] == example.TicketTriage.model_json_schema()
    expected = [
        {
            "custom_id": ticket_id,
            "params": {
                "model": "claude-structured-test",
                "max_tokens": 512,
                "tools": [tool],
                "tool_choice": {
                    "type": "tool",
                    "name": "record_triage",
                    "disable_parallel_tool_use": True,
                },
                "messages": [{"role": "user", "content": f"Triage this ticket: {text}"}],
            },
        }
        for ticket_id, text in TICKETS.items()
    ]
    body = canonical_body(expected)
    assert (creates[0].body_sha256, creates[0].body_bytes) == (
        hashlib.sha256(body).hexdigest(),
        len(body),
    ), f"the create body differs from {body.decode()}"

    # The manifest was pushed before the task failed, and matches what is stored.
    manifest = xcoms[("submit_and_validate", "manifest")]
    structured = manifest["structured"]
    assert structured["output_type"].endswith(":TicketTriage")
    assert (structured["parsed"], structured["invalid"]) == (0, 3)
    assert structured["invalid_by_reason"] == {"not_json": 3}
    assert manifest["files"]["parsed"]["lines"] == 0
    assert manifest["files"]["invalid"]["lines"] == 3
    prefix = results / manifest["batch_id"]
    assert json.loads((prefix / "manifest.json").read_text()) == manifest
    assert (prefix / "parsed.jsonl").read_bytes() == b""
    rows = [json.loads(line) for line in (prefix / "invalid.jsonl").read_bytes().splitlines()]
    assert sorted(row["custom_id"] for row in rows) == sorted(TICKETS)
    assert {row["reason"] for row in rows} == {"not_json"}
    lines = [json.loads(line) for line in (prefix / "results.jsonl").read_bytes().splitlines()]
    assert {line["result"]["message"]["model"] for line in lines} == {"claude-structured-test"}


def _triage_call(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": "toolu_1", "name": "record_triage", "input": arguments}]


def test_load_rows_reads_the_valid_rows_of_a_batch_of_tool_calls(
    fake: FakeBatchesServer, fake_conn: str, example: SimpleNamespace, tmp_path: Path
) -> None:
    """What the DAG run above cannot reach: answers that are tool calls, sorted by the results
    writer the operator uses, with the example's model, then the example's ``load_rows``."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_batches.hooks.batch import MessageBatchHook
    from airflow_provider_batches.results.writer import write_results

    answers = [
        _triage_call({"category": "billing", "urgency": 4, "summary": "Charged twice."}),
        _triage_call({"category": "bug", "urgency": 5, "summary": "Export crashes on Safari."}),
        _triage_call({"category": "bug", "urgency": 3, "summary": "Typo on the login page."}),
        _triage_call({"category": "feature_request", "urgency": 1, "summary": "Dark mode."}),
        _triage_call({"category": "refund", "urgency": 9, "summary": "Not a category."}),
    ]
    batch = fake.create_batch(num_requests=len(answers), ends_after=0.0, contents=answers)
    manifest = write_results(
        MessageBatchHook(fake_conn),
        batch["id"],
        ObjectStoragePath(f"file://{tmp_path}"),
        output_type=example.TicketTriage,
    )

    structured = manifest["structured"]
    assert (structured["parsed"], structured["invalid"]) == (4, 1)
    assert structured["invalid_by_reason"] == {"validation": 1}
    assert (manifest["files"]["parsed"]["lines"], manifest["files"]["invalid"]["lines"]) == (4, 1)

    assert example.load_rows(manifest) == {"billing": 1, "bug": 2, "feature_request": 1}
