"""Checks shared by the file:// and s3:// writer tests: the manifest is recomputed from the
files the writer left, never taken on trust."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import httpx
from helpers import API_KEY

from airflow_provider_batches.results import parse_result_line
from airflow_provider_batches.testing import FakeBatchesServer


def served_lines(batch: dict[str, Any]) -> list[bytes]:
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    return httpx.get(batch["results_url"], headers=headers).content.splitlines()


def recompute(data: bytes) -> dict[str, Any]:
    """What a manifest must say about a results file, computed from its bytes."""
    counts: Counter[str] = Counter()
    usage: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    errored_ids: list[str] = []
    for line in data.splitlines():
        parsed = json.loads(line)
        kind = parsed["result"]["type"]
        counts[kind] += 1
        if kind == "succeeded":
            for name, value in parsed["result"]["message"]["usage"].items():
                if name.endswith("_tokens"):
                    usage[name] += value or 0
        if kind == "errored":
            errors[parsed["result"]["error"]["error"]["type"]] += 1
            errored_ids.append(parsed["custom_id"])
    return {
        "counts": {**counts, "total": sum(counts.values())},
        "usage": dict(usage),
        "errors": dict(errors),
        "errored_ids": errored_ids,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def assert_manifest_matches_files(
    manifest: dict[str, Any], prefix: Any, batch: dict[str, Any], split_by_type: bool
) -> None:
    data = (prefix / "results.jsonl").read_bytes()
    facts = recompute(data)
    assert json.loads((prefix / "manifest.json").read_bytes()) == manifest
    assert manifest["batch_id"] == batch["id"]
    assert manifest["batch"]["id"] == batch["id"]
    assert manifest["batch"]["processing_status"] == "ended"
    assert manifest["results_sha256"] == facts["sha256"]
    entry = manifest["files"]["results"]
    assert (entry["bytes"], entry["sha256"]) == (facts["bytes"], facts["sha256"])
    assert entry["path"] == str(prefix / "results.jsonl")
    assert (prefix / "results.jsonl").stat().st_size == facts["bytes"]
    counts = {k: v for k, v in manifest["line_counts"].items() if v or k == "total"}
    assert counts == facts["counts"]
    assert manifest["usage"] == {
        name: facts["usage"].get(name, 0)
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    assert manifest["usage"]["cache_read_input_tokens"] > 0
    assert manifest["error_types"] == facts["errors"]
    assert manifest["errored_custom_ids"] == facts["errored_ids"][:100]
    # The lines are the ones served, byte for byte (order is the server's).
    assert data.splitlines() == served_lines(batch)
    assert data.endswith(b"\n")
    if split_by_type:
        for kind in ("succeeded", "errored"):
            part = (prefix / f"{kind}.jsonl").read_bytes()
            expected = [line for line in data.splitlines() if parse_result_line(line).type == kind]
            assert part.splitlines() == expected
            stored = manifest["files"][kind]
            assert stored["sha256"] == hashlib.sha256(part).hexdigest()
            assert stored["bytes"] == len(part)
            assert stored["lines"] == len(expected)
    else:
        assert set(manifest["files"]) == {"results"}


def results_requests(fake: FakeBatchesServer, batch_id: str) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(f"/{batch_id}/results"))
