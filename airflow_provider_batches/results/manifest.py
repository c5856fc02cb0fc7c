"""The manifest of a written batch: what the files hold, and proof that they are whole.

``manifest.json`` is written last, so its presence marks a complete prefix; it is also the
task's XCom. A manifest is trusted on a rerun only when its files still have the sizes and
SHA-256 digests it records.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from airflow_provider_batches.cost.batch_cost import ModelUsage
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results.lines import ReadCounts
from airflow_provider_batches.results.models import BatchResult, ErroredResult, SucceededResult

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
RESULTS_NAME = "results.jsonl"
TYPE_FILE_NAMES = {"succeeded": "succeeded.jsonl", "errored": "errored.jsonl"}
#: Written with an ``output_type`` (see :mod:`~airflow_provider_batches.results.structured`).
STRUCTURED_FILE_NAMES = {"parsed": "parsed.jsonl", "invalid": "invalid.jsonl"}
MAX_ERRORED_IDS = 100
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_READ_BLOCK = 1024 * 1024
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
COUNT_KEYS = ("succeeded", "errored", "canceled", "expired", "unknown")


class ManifestBuilder:
    """Sums what the manifest reports, one result at a time."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
        self.usage = dict.fromkeys(USAGE_FIELDS, 0)
        self.error_types: Counter[str] = Counter()
        self.errored_ids: list[str] = []
        #: Tokens per model, for the manifest's ``cost`` (see cost/batch_cost.py).
        self.model_usage = ModelUsage()

    def add(self, result: BatchResult) -> None:
        outcome = result.result
        self.counts[result.type] += 1
        if isinstance(outcome, SucceededResult):
            usage = outcome.message.usage
            for name in USAGE_FIELDS:
                self.usage[name] += getattr(usage, name) or 0
            self.model_usage.add(outcome.message.model, usage)
        elif isinstance(outcome, ErroredResult):
            self.error_types[outcome.error.error.type] += 1
            if len(self.errored_ids) < MAX_ERRORED_IDS:
                self.errored_ids.append(result.custom_id)

    def build(
        self,
        batch: MessageBatch,
        prefix: str,
        files: dict[str, dict[str, Any]],
        counts: ReadCounts,
    ) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "batch_id": batch.id,
            "batch": batch.to_xcom(),
            "prefix": prefix,
            "files": files,
            "results_sha256": files["results"]["sha256"],
            "line_counts": {**dict(self.counts), "total": sum(self.counts.values())},
            "usage": dict(self.usage),
            "error_types": dict(sorted(self.error_types.items())),
            "errored_custom_ids": list(self.errored_ids),
            "duplicate_lines_dropped": counts.duplicate_lines,
            "blank_lines_dropped": counts.blank_lines,
            "resumes": counts.resumes,
            "written_at": datetime.now(timezone.utc).isoformat(),
        }


def file_entry(path: Any, size: int, sha256: str, lines: int) -> dict[str, Any]:
    return {"path": str(path), "bytes": size, "sha256": sha256, "lines": lines}


def sha256_of(path: Any) -> tuple[int, str]:
    """Size and SHA-256 of a stored file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def verified_manifest(
    prefix: Any, batch_id: str, split_by_type: bool, schema_sha256: str | None = None
) -> dict[str, Any] | None:
    """The prefix's manifest if it describes ``batch_id`` and every file it lists is intact;
    with ``schema_sha256``, only one whose answers were validated against that output type."""
    manifest_path = prefix / MANIFEST_NAME
    if not manifest_path.exists():
        return None
    try:
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError("too large")
        manifest = json.loads(manifest_path.read_bytes())
        problem = _manifest_problem(prefix, manifest, batch_id, split_by_type)
        if problem is None and schema_sha256 is not None:
            problem = _structured_problem(manifest, schema_sha256)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        problem = f"unreadable ({type(exc).__name__})"
    if problem:
        log.warning("Not trusting %s (%s): downloading the results again.", manifest_path, problem)
        return None
    return manifest  # type: ignore[no-any-return]


def _manifest_problem(prefix: Any, manifest: Any, batch_id: str, split_by_type: bool) -> str | None:
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return "not a manifest of this format"
    if manifest.get("batch_id") != batch_id:
        return f"it describes batch {str(manifest.get('batch_id'))[:100]!r}"
    files = manifest["files"]
    wanted = ["results", *(TYPE_FILE_NAMES if split_by_type else ())]
    names = {"results": RESULTS_NAME, **TYPE_FILE_NAMES, **STRUCTURED_FILE_NAMES}
    for key in wanted:
        if key not in files:
            return f"it has no {names[key]}"
    for key, entry in files.items():
        if key not in names:
            return f"it lists an unknown file {key!r}"
        if (prefix / names[key]).stat().st_size != entry["bytes"]:
            return f"{names[key]} does not have the size it records"
        size, digest = sha256_of(prefix / names[key])
        if size != entry["bytes"] or digest != entry["sha256"]:
            return f"{names[key]} does not match its size or SHA-256"
    return None


def _structured_problem(manifest: dict[str, Any], schema_sha256: str) -> str | None:
    structured = manifest.get("structured")
    if not isinstance(structured, dict) or structured.get("schema_sha256") != schema_sha256:
        return "its answers were not validated against this output_type"
    if any(key not in manifest["files"] for key in STRUCTURED_FILE_NAMES):
        return "it has no parsed.jsonl or invalid.jsonl"
    return None
