"""Your own records in, one request per record, the answers back next to them.

The records are a JSONL file, one JSON object per line, with whatever fields your data has::

    {"id": 7, "review": "Great blender, crushes ice in seconds."}
    {"id": 8, "review": "Stopped working after two days."}

``MessageBatchOperator`` reads them as **records** (no transform task): each record's prompt is
``prompt_template`` filled with its fields (``{review}``), its ``custom_id`` is its ``id`` field
(``7`` becomes ``"7"``), and every request gets the task's ``max_tokens`` and ``system``. The
batch's results and manifest go under ``<results_path>/<batch id>/``; the manifest also goes to
XCom key ``manifest``, which ``report`` reads to find the results file.

The model is set once, on the connection: its ``default_model`` extra. In the connection's
Extra field (or ``--conn-extra`` of ``airflow connections add``)::

    {"default_model": "claude-haiku-4-5"}

or as an environment variable::

    export AIRFLOW_CONN_ANTHROPIC_DEFAULT='{"conn_type": "anthropic_batches",
      "password": "sk-ant-...", "extra": {"default_model": "claude-haiku-4-5"}}'

A ``model=...`` on the task would win over it. Without either, the task fails before sending
anything, naming the fix.

Trigger with the file to read and where to store the results: a local path or any
``ObjectStoragePath`` URL for both, e.g.
``{"records_path": "s3://aws_default@bucket/reviews.jsonl",
"results_path": "s3://aws_default@bucket/batches"}``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import DAG, ObjectStoragePath, Param, XComArg, task

from airflow_provider_batches.operators.batch import MessageBatchOperator

with DAG(
    dag_id="example_batch_records",
    schedule=None,
    catchup=False,
    params={
        "records_path": Param("file:///tmp/airflow-batch-records/reviews.jsonl", type="string"),
        "results_path": Param("file:///tmp/airflow-batch-results", type="string"),
    },
    tags=["example", "anthropic"],
):
    classify = MessageBatchOperator(
        task_id="classify",
        requests="{{ params.records_path }}",
        prompt_template="Classify the sentiment of this review: {review}",
        custom_id_field="id",
        # No model here: it comes from the connection's default_model extra.
        max_tokens=16,
        system="Answer with one word: positive, negative or neutral.",
        results_path="{{ params.results_path }}",
        deferrable=True,
        poll_interval=float(os.environ.get("EXAMPLE_BATCH_POLL_SECONDS", "60")),
    )

    @task
    def report(manifest: dict[str, Any]) -> dict[str, Any]:
        counts = manifest["line_counts"]
        print(
            f"Batch {manifest['batch_id']}: {counts['succeeded']} of {counts['total']} "
            f"records answered; results in {manifest['prefix']}"
        )
        # results.jsonl holds one line per record, keyed by its custom_id (the record's id).
        sentiments: dict[str, int] = {}
        with ObjectStoragePath(manifest["files"]["results"]["path"]).open("rb") as lines:
            # readline, not `for line in lines`: Airflow 3.0's file objects are not iterable.
            for line in iter(lines.readline, b""):
                result = json.loads(line)["result"]
                if result["type"] != "succeeded":
                    continue
                text = "".join(
                    block["text"]
                    for block in result["message"]["content"]
                    if block["type"] == "text"
                )
                label = text.strip().lower()
                sentiments[label] = sentiments.get(label, 0) + 1
        print(f"Sentiments: {sentiments}")
        return {
            "batch_id": manifest["batch_id"],
            "succeeded": counts["succeeded"],
            "errored": counts["errored"],
            "sentiments": sentiments,
        }

    report(XComArg(classify, key="manifest"))
