"""MessageBatchResultsOperator: store an ended batch's results and return their manifest."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.telemetry.lineage import BatchLineage
from airflow_provider_batches.utils.structured_options import check_structured_options

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_batches.utils.structured_options import (
        OutputType,
        TooManyInvalidAction,
    )


class MessageBatchResultsOperator(BatchLineage, BaseOperator):
    """Streams the results of an ended Message Batch to object storage.

    Writes ``<results_path>/<batch_id>/results.jsonl`` (the lines as the API served them),
    optionally ``succeeded.jsonl`` and ``errored.jsonl``, then ``manifest.json``, and returns
    the manifest as XCom: counts by result type, token usage sums, error types, the first
    errored ``custom_id``s, file sizes and SHA-256. Use it after ``MessageBatchSensor``.

    :param batch_id: The ended batch (templated, e.g. from the sensor's XCom).
    :param results_path: Where to write: ``s3://bucket/prefix``, ``file:///data/results``,
        any ``ObjectStoragePath`` (templated). Each batch gets its own sub-prefix.
    :param conn_id: Airflow connection with the API key.
    :param overwrite: Download again even if a complete manifest for the batch is there.
    :param split_by_type: Also write ``succeeded.jsonl`` and ``errored.jsonl``.
    :param allowed_results_hosts: Hosts other than the connection's that the batch's
        ``results_url`` may point at (the API key is sent there).
    :param max_line_bytes: Longest results line accepted (default 16 MiB).
    :param prices: Prices overriding or extending the shipped table for the manifest's cost
        (see docs/cost.md).
    :param output_type: Validate each succeeded answer (its one tool call's input, or its text
        as JSON) against a pydantic model class, a JSON schema (dict), or an import path to
        either (``"mypkg.models:Review"``), resolved when the task runs: valid rows go to
        ``parsed.jsonl``, invalid ones to ``invalid.jsonl``, counted in the manifest. Not
        templated. See docs/results.md.
    :param max_invalid_ratio: Fail the task (after writing everything) when more than this
        share of the succeeded answers is invalid; ``None`` (default) only reports them.
    :param on_too_many_invalid: ``"fail"`` (default, ``InvalidAnswersError``) or ``"skip"``
        (the task and what depends on it are skipped) past ``max_invalid_ratio``.
    """

    template_fields: Sequence[str] = ("batch_id", "results_path", "conn_id")
    ui_color = "#e8d5c4"

    def __init__(
        self,
        *,
        batch_id: str,
        results_path: str | ObjectStoragePath,
        conn_id: str = MessageBatchHook.default_conn_name,
        overwrite: bool = False,
        split_by_type: bool = False,
        allowed_results_hosts: Collection[str] = (),
        max_line_bytes: int | None = None,
        prices: Mapping[str, Any] | None = None,
        output_type: OutputType | None = None,
        max_invalid_ratio: float | None = None,
        on_too_many_invalid: TooManyInvalidAction = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_structured_options(
            output_type,
            max_invalid_ratio,
            task=self.task_id,
            on_too_many_invalid=on_too_many_invalid,
        )
        self.batch_id = batch_id
        self.results_path = results_path
        self.conn_id = conn_id
        self.overwrite = overwrite
        self.split_by_type = split_by_type
        self.allowed_results_hosts = tuple(allowed_results_hosts)
        self.max_line_bytes = max_line_bytes
        self.prices = prices
        self.output_type = output_type
        self.max_invalid_ratio = max_invalid_ratio
        self.on_too_many_invalid = on_too_many_invalid

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_batches.results.structured import check_invalid_answers
        from airflow_provider_batches.results.writer import write_results

        manifest = write_results(
            MessageBatchHook(self.conn_id),
            self.batch_id,
            self.results_path,
            overwrite=self.overwrite,
            split_by_type=self.split_by_type,
            allowed_results_hosts=self.allowed_results_hosts,
            max_line_bytes=self.max_line_bytes,
            prices=self.prices,
            output_type=self.output_type,
        )
        self.record_lineage(manifest=manifest)
        check_invalid_answers(manifest, self.max_invalid_ratio, self.on_too_many_invalid)
        return manifest
