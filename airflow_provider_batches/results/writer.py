"""Write a batch's results under ``<results_path>/<batch id>/`` through ``ObjectStoragePath``.

``results.jsonl`` holds the first line served for each ``custom_id``, byte for byte, in the
order read (blank and repeated lines are dropped and counted in the manifest); ``succeeded.jsonl``
and ``errored.jsonl`` are optional, as are ``parsed.jsonl`` and ``invalid.jsonl`` (answers
checked against an ``output_type``, see :mod:`~airflow_provider_batches.results.structured`);
``manifest.json`` is written last as the commit marker.
Object stores have no atomic rename, so a prefix without a trustworthy manifest is cleared
(manifest first) and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches.batch_ids import validate_batch_id
from airflow_provider_batches.cost.batch_cost import cost_section, summary_line
from airflow_provider_batches.cost.prices import parse_price_rows, price_table
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results.lines import ReadCounts, line_bound
from airflow_provider_batches.results.manifest import (
    MANIFEST_NAME,
    RESULTS_NAME,
    STRUCTURED_FILE_NAMES,
    TYPE_FILE_NAMES,
    ManifestBuilder,
    file_entry,
    verified_manifest,
)
from airflow_provider_batches.results.reader import iter_result_lines, results_url_for
from airflow_provider_batches.results.structured import (
    AnswerSorter,
    check_invalid_answers,
    resolve_output_type,
)
from airflow_provider_batches.telemetry import metrics
from airflow_provider_batches.utils.structured_options import OutputType, check_structured_options

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

#: Bytes gathered before one write; object stores upload in parts of ``_BLOCK_SIZE``.
_FLUSH_BYTES = 1024 * 1024
_BLOCK_SIZE = 8 * 1024 * 1024


class BatchSource(Protocol):
    """What :func:`write_results` needs of its hook (``MessageBatchHook`` is one)."""

    @property
    def settings(self) -> ClientSettings: ...

    def retrieve_batch(self, batch_id: str) -> MessageBatch: ...


class _HashingFile:
    """Appends lines to a stored file in large writes, counting bytes and hashing them."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path
        self._stream: BinaryIO = path.open(  # type: ignore[no-untyped-call]
            "wb", block_size=_BLOCK_SIZE
        )
        self._digest = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.size = 0
        self.lines = 0

    def add(self, raw: bytes) -> None:
        self._pending.append(raw)
        self._pending_size += len(raw) + 1
        self.lines += 1
        if self._pending_size >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._pending.append(b"")
        block = b"\n".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._digest.update(block)
        self._stream.write(block)
        self.size += len(block)

    def close(self) -> dict[str, Any]:
        self._flush()
        self._stream.close()
        return file_entry(self.path, self.size, self._digest.hexdigest(), self.lines)

    def abort(self) -> None:
        """Drop the file: object stores abort the upload (fsspec ``discard``), so no partial
        object is committed; a local partial file stays until the next run replaces it."""
        self._pending.clear()
        try:
            discard = getattr(self._stream, "discard", None)
            if discard is not None:
                discard()
            self._stream.close()
        except Exception:  # the write already failed; the next run replaces the prefix
            log.debug("Closing %s after a failure also failed", self.path, exc_info=True)


def _as_path(results_path: str | ObjectStoragePath) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if isinstance(results_path, ObjectStoragePath):
        return results_path
    if not isinstance(results_path, str) or not results_path.strip():
        raise ValueError(
            f"results_path must be a URL such as 's3://bucket/results' or 'file:///data/results', "
            f"or an ObjectStoragePath; got {results_path!r}."
        )
    return ObjectStoragePath(results_path)


def write_results(
    hook: BatchSource,
    batch: str | MessageBatch,
    results_path: str | ObjectStoragePath,
    *,
    overwrite: bool = False,
    split_by_type: bool = False,
    allowed_results_hosts: Collection[str] = (),
    max_line_bytes: int | None = None,
    prices: Mapping[str, Any] | None = None,
    output_type: OutputType | None = None,
    max_invalid_ratio: float | None = None,
) -> dict[str, Any]:
    """Store the results of an ended batch under ``results_path/<batch id>/``; returns the
    manifest (JSON-safe, fit for XCom).

    The manifest's ``cost`` prices the tokens per model at batch prices: the shipped table,
    overridden or extended by the connection extra ``prices``, then by ``prices`` (same shape;
    see docs/cost.md). The last log line sums up results, tokens and cost.

    A complete manifest already there for the batch, whose files match it, is returned without
    downloading anything unless ``overwrite``; anything else under the prefix is replaced.
    With ``output_type``, each succeeded answer is validated into ``parsed.jsonl`` or
    ``invalid.jsonl`` (counted in the manifest's ``structured``); past ``max_invalid_ratio``
    invalid answers, :class:`InvalidAnswersError` once everything is written.
    """
    batch_id = validate_batch_id(batch.id if isinstance(batch, MessageBatch) else batch)
    bound = line_bound(max_line_bytes)
    price_overrides = parse_price_rows(prices, "prices")
    check_structured_options(output_type, max_invalid_ratio)
    validator = None if output_type is None else resolve_output_type(output_type)
    prefix = _as_path(results_path) / batch_id
    if not overwrite:
        schema_sha256 = None if validator is None else validator.schema_sha256
        existing = verified_manifest(prefix, batch_id, split_by_type, schema_sha256)
        if existing is not None:
            log.info("Results of batch %s are complete in %s; not downloading.", batch_id, prefix)
            log.info("%s", summary_line(existing))
            check_invalid_answers(existing, max_invalid_ratio)
            return existing
    ended = batch if isinstance(batch, MessageBatch) else hook.retrieve_batch(batch)
    settings = hook.settings
    results_url_for(settings, ended, allowed_results_hosts)
    _clear(prefix)
    prefix.mkdir(parents=True, exist_ok=True)
    files = {"results": _HashingFile(prefix / RESULTS_NAME)}
    if split_by_type:
        files.update({kind: _HashingFile(prefix / name) for kind, name in TYPE_FILE_NAMES.items()})
    sorter = None if validator is None else AnswerSorter(validator)
    if sorter is not None:
        files.update({key: _HashingFile(prefix / n) for key, n in STRUCTURED_FILE_NAMES.items()})
    builder = ManifestBuilder()
    counts = ReadCounts()
    try:
        for line in iter_result_lines(
            settings,
            ended,
            allowed_results_hosts=allowed_results_hosts,
            max_line_bytes=bound,
            counts=counts,
        ):
            files["results"].add(line.raw)
            kind_file = files.get(line.result.type) if split_by_type else None
            if kind_file is not None:
                kind_file.add(line.raw)
            sorted_answer = None if sorter is None else sorter.sort(line.result)
            if sorted_answer is not None:
                files[sorted_answer[0]].add(sorted_answer[1])
            builder.add(line.result)
    except BaseException:
        for stored in files.values():
            stored.abort()
        raise
    entries = {key: stored.close() for key, stored in files.items()}
    manifest = builder.build(ended, str(prefix), entries, counts)
    manifest["cost"] = _cost(builder, settings, price_overrides)
    if sorter is not None:
        manifest["structured"] = sorter.summary()
    (prefix / MANIFEST_NAME).write_bytes(json.dumps(manifest, indent=1).encode())
    counts = manifest["line_counts"]
    log.info(
        "Wrote %d results of batch %s to %s (%d bytes, sha256 %s).",
        counts["total"],
        batch_id,
        prefix,
        entries["results"]["bytes"],
        entries["results"]["sha256"],
    )
    _report_written(settings, manifest)
    if sorter is not None:
        log.info(
            "Answers of batch %s against %s: %d parsed, %d invalid %s.",
            batch_id,
            sorter.validator.name,
            sorter.parsed,
            sorter.invalid,
            dict(sorted(sorter.reasons.items())),
        )
        check_invalid_answers(manifest, max_invalid_ratio)
    return manifest


def write_shard_results(
    hook: BatchSource,
    batches: list[MessageBatch],
    results_path: str | ObjectStoragePath,
    *,
    overwrite: bool = False,
    split_by_type: bool = False,
    prices: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Store the results of every shard of a split request set (ended batches, in shard
    order) under one prefix, ``results_path/<first shard's batch id>-shards/``: one
    ``results.jsonl`` (shard after shard) and one manifest, whose ``shards`` holds each
    shard's batch id and line counts; ``line_counts`` and ``usage`` cover them all."""
    price_overrides = parse_price_rows(prices, "prices")
    set_id = f"{validate_batch_id(batches[0].id)}-shards"
    prefix = _as_path(results_path) / set_id
    if not overwrite:
        existing = verified_manifest(prefix, set_id, split_by_type)
        if existing is not None and [s["batch_id"] for s in existing.get("shards", ())] == [
            batch.id for batch in batches
        ]:
            log.info("Results of %s are complete in %s; not downloading.", set_id, prefix)
            return existing
    settings = hook.settings
    for batch in batches:
        results_url_for(settings, batch, ())
    _clear(prefix)
    prefix.mkdir(parents=True, exist_ok=True)
    files = {"results": _HashingFile(prefix / RESULTS_NAME)}
    if split_by_type:
        files.update({kind: _HashingFile(prefix / name) for kind, name in TYPE_FILE_NAMES.items()})
    builder = ManifestBuilder()
    counts = ReadCounts()
    shards = []
    try:
        for batch in batches:
            shard_builder = ManifestBuilder()
            for line in iter_result_lines(
                settings, batch, max_line_bytes=line_bound(None), counts=counts
            ):
                files["results"].add(line.raw)
                kind_file = files.get(line.result.type) if split_by_type else None
                if kind_file is not None:
                    kind_file.add(line.raw)
                builder.add(line.result)
                shard_builder.add(line.result)
            shard_counts = dict(shard_builder.counts)
            shards.append(
                {
                    "batch_id": batch.id,
                    "line_counts": {**shard_counts, "total": sum(shard_counts.values())},
                }
            )
    except BaseException:
        for stored in files.values():
            stored.abort()
        raise
    entries = {key: stored.close() for key, stored in files.items()}
    manifest = builder.build(batches[0], str(prefix), entries, counts)
    del manifest["batch"]
    manifest.update({"batch_id": set_id, "shards": shards})
    manifest["cost"] = _cost(builder, settings, price_overrides)
    (prefix / MANIFEST_NAME).write_bytes(json.dumps(manifest, indent=1).encode())
    log.info(
        "Wrote %d results of %d shards to %s.",
        manifest["line_counts"]["total"],
        len(batches),
        prefix,
    )
    _report_written(settings, manifest)
    return manifest


def _cost(
    builder: ManifestBuilder, settings: ClientSettings, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The manifest's cost section: the shipped prices, then the connection's, then the task's."""
    return cost_section(builder.model_usage, price_table(settings.prices, overrides))


def _report_written(settings: ClientSettings, manifest: dict[str, Any]) -> None:
    """The task log's summary line and the metrics of freshly written results."""
    log.info("%s", summary_line(manifest))
    metrics.results_written(settings.conn_id, manifest)


def _clear(prefix: ObjectStoragePath) -> None:
    """Remove what an earlier run left, the manifest first so it never vouches for new files."""
    for name in (
        MANIFEST_NAME,
        RESULTS_NAME,
        *TYPE_FILE_NAMES.values(),
        *STRUCTURED_FILE_NAMES.values(),
    ):
        path = prefix / name
        if path.exists():
            log.info("Replacing %s left by an earlier run.", path)
            path.unlink()
