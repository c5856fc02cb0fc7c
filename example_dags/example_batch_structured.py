"""Typed rows out of a batch: ask for a shape with a tool, validate every answer, load the rows.

Each request offers one tool whose ``input_schema`` is the pydantic model's JSON schema and
forces the model to call it (``tool_choice``), so each answer is that tool call's input.
``MessageBatchOperator`` submits, waits, stores the results under ``results_path`` and
validates each succeeded answer against ``results_output_type``: valid rows go to
``parsed.jsonl`` (``{"custom_id": ..., "output": {...}}``), invalid ones to ``invalid.jsonl``
with their validation error, and the manifest (XCom key ``manifest``) counts both. More than
5% invalid answers fails the task, after everything is written.

The model class can live in the DAG file (as here) or in a package: pass the class, or its
import path as a string (``"mypkg.models:TicketTriage"``). It is resolved when the task runs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from airflow.sdk import DAG, ObjectStoragePath, Param, XComArg, task
from pydantic import BaseModel, Field

from airflow_provider_batches.operators.batch import MessageBatchOperator


class TicketTriage(BaseModel):
    """The shape every answer must have."""

    category: Literal["billing", "bug", "feature_request", "other"]
    urgency: int = Field(ge=1, le=5, description="1 = can wait, 5 = customer blocked")
    summary: str = Field(max_length=200)


TOOL = {
    "name": "record_triage",
    "description": "Record the triage of one support ticket.",
    "input_schema": TicketTriage.model_json_schema(),
}

with DAG(
    dag_id="example_batch_structured",
    schedule=None,
    catchup=False,
    params={
        "model": Param("claude-haiku-4-5", type="string"),
        "results_path": Param("file:///tmp/airflow-batch-results", type="string"),
    },
    tags=["example", "anthropic"],
):

    @task
    def build_requests(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        tickets = {
            "ticket-1": "I was charged twice for my March invoice.",
            "ticket-2": "The export button crashes the app on Safari.",
            "ticket-3": "Could you add dark mode?",
        }
        return [
            {
                "custom_id": ticket_id,
                "params": {
                    "model": (params or {}).get("model", "claude-haiku-4-5"),
                    "max_tokens": 512,
                    "tools": [TOOL],
                    # One forced call per answer: the answer is that call's input.
                    "tool_choice": {
                        "type": "tool",
                        "name": TOOL["name"],
                        "disable_parallel_tool_use": True,
                    },
                    "messages": [{"role": "user", "content": f"Triage this ticket: {text}"}],
                },
            }
            for ticket_id, text in tickets.items()
        ]

    submit = MessageBatchOperator(
        task_id="submit_and_validate",
        requests=build_requests(),
        results_path="{{ params.results_path }}",
        results_output_type=TicketTriage,
        results_max_invalid_ratio=0.05,
        deferrable=True,
        poll_interval=float(os.environ.get("EXAMPLE_BATCH_POLL_SECONDS", "60")),
    )

    @task
    def load_rows(manifest: dict[str, Any]) -> dict[str, int]:
        structured = manifest["structured"]
        print(
            f"{structured['parsed']} valid and {structured['invalid']} invalid answers "
            f"{structured['invalid_by_reason']}"
        )
        by_category: dict[str, int] = {}
        with ObjectStoragePath(manifest["files"]["parsed"]["path"]).open("rb") as rows:
            # readline, not `for line in rows`: Airflow 3.0's file objects are not iterable.
            for line in iter(rows.readline, b""):
                triage = TicketTriage.model_validate(json.loads(line)["output"])
                by_category[triage.category] = by_category.get(triage.category, 0) + 1
        return by_category

    load_rows(XComArg(submit, key="manifest"))
