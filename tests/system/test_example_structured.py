"""The structured example DAG under ``dag.test()`` against the fake, both ways a model can
answer: with the forced tool call (the fake's answer hook plays the model: each ticket's triage
as the call's input), so every answer is valid and ``load_rows`` loads the rows; or with text,
so every answer is invalid and ``results_max_invalid_ratio`` fails the task after the manifest
is pushed. Either way the create body is the one the example means to send.
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


#: What the fake, playing a model that calls the forced tool, answers for each ticket.
TRIAGE = {
    "ticket-1": {"category": "billing", "urgency": 4, "summary": "Charged twice."},
    "ticket-2": {"category": "bug", "urgency": 5, "summary": "Export crashes on Safari."},
    "ticket-3": {"category": "feature_request", "urgency": 1, "summary": "Dark mode."},
}


def _expected_body(tool: dict[str, Any]) -> bytes:
    """Each ticket with the tool, the forced call and the model of the Param."""
    return canonical_body(
        [
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
    )


def _run(fake: FakeBatchesServer, example: SimpleNamespace, results: Path) -> Any:
    run, states, xcoms = run_example(
        "example_batch_structured",
        {"model": "claude-structured-test", "results_path": f"file://{results}"},
    )
    creates = [r for r in fake.requests if r.method == "POST" and r.batch_id is None]
    assert len(creates) == 1
    assert example.TOOL["input_schema"] == example.TicketTriage.model_json_schema()
    body = _expected_body(example.TOOL)
    assert (creates[0].body_sha256, creates[0].body_bytes) == (
        hashlib.sha256(body).hexdigest(),
        len(body),
    ), f"the create body differs from {body.decode()}"
    manifest = xcoms[("submit_and_validate", "manifest")]
    prefix = results / manifest["batch_id"]
    assert json.loads((prefix / "manifest.json").read_text()) == manifest
    lines = [json.loads(line) for line in (prefix / "results.jsonl").read_bytes().splitlines()]
    assert {line["result"]["message"]["model"] for line in lines} == {"claude-structured-test"}
    return run, states, xcoms, manifest, prefix


@pytest.mark.airflow_db
def test_answers_that_call_the_tool_are_loaded_as_rows(
    structured_fake: FakeBatchesServer, example: SimpleNamespace, tmp_path: Path
) -> None:
    asked: list[tuple[str, str]] = []

    def call_the_forced_tool(custom_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        asked.append((custom_id, params["tool_choice"]["name"]))
        arguments = TRIAGE[custom_id]
        return [{"type": "tool_use", "id": "toolu_1", "name": "record_triage", "input": arguments}]

    structured_fake.set_answer_hook(call_the_forced_tool)
    run, states, xcoms, manifest, prefix = _run(structured_fake, example, tmp_path / "results")

    assert states == dict.fromkeys(
        ("build_requests", "submit_and_validate", "load_rows"), "success"
    )
    assert run.state == "success"
    assert sorted(asked) == [(ticket, "record_triage") for ticket in sorted(TICKETS)]
    structured = manifest["structured"]
    assert (structured["parsed"], structured["invalid"]) == (3, 0)
    assert structured["parsed_by_source"] == {"tool_use": 3}
    rows = [json.loads(line) for line in (prefix / "parsed.jsonl").read_bytes().splitlines()]
    assert {row["custom_id"]: row["output"] for row in rows} == TRIAGE
    assert xcoms[("load_rows", "return_value")] == {"billing": 1, "bug": 1, "feature_request": 1}


@pytest.mark.airflow_db
def test_answers_in_text_fail_the_task_after_everything_is_written(
    structured_fake: FakeBatchesServer, example: SimpleNamespace, tmp_path: Path
) -> None:
    """The fake's own answers are text: a model that ignores the tool."""
    run, states, _xcoms, manifest, prefix = _run(structured_fake, example, tmp_path / "results")

    # Three text answers of three are invalid: more than 5%, after everything is written.
    assert states == {
        "build_requests": "success",
        "submit_and_validate": "failed",
        "load_rows": "upstream_failed",
    }, states
    assert run.state == "failed"
    structured = manifest["structured"]
    assert structured["output_type"].endswith(":TicketTriage")
    assert (structured["parsed"], structured["invalid"]) == (0, 3)
    assert structured["invalid_by_reason"] == {"not_json": 3}
    assert manifest["files"]["parsed"]["lines"] == 0
    assert (prefix / "parsed.jsonl").read_bytes() == b""
    rows = [json.loads(line) for line in (prefix / "invalid.jsonl").read_bytes().splitlines()]
    assert sorted(row["custom_id"] for row in rows) == sorted(TICKETS)
    assert {row["reason"] for row in rows} == {"not_json"}
