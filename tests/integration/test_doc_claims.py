"""Claims the docs make about errors agree with the code: the sensor's permanent statuses, in
its prose and its table, agree, include every 4xx the client maps to a permanent error, and
none that is retried; operator.md
does not claim that every failure before the create is an ``InvalidRequestSetError``."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_provider_batches.exceptions import status_error_class

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _statuses(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\b([1-5]\d\d)\b", text)}


def test_sensor_doc_lists_every_permanent_status_in_prose_and_table() -> None:
    mapped = {s for s in range(400, 500) if status_error_class(s).__name__ != "APIStatusError"}
    permanent = {s for s in mapped if not status_error_class(s).retryable}
    assert 402 in permanent
    doc = (DOCS / "sensor.md").read_text(encoding="utf-8")
    prose = re.search(r"a permanent one \(([^)]*)\)", doc)
    assert prose is not None
    row = next(line for line in doc.splitlines() if line.startswith("| `BatchPermanentError`"))
    assert _statuses(prose.group(1)) == permanent
    assert _statuses(row.split("|")[2]) == permanent


def test_operator_doc_does_not_claim_every_failure_is_invalid_request_set_error() -> None:
    doc = " ".join((DOCS / "operator.md").read_text(encoding="utf-8").split())
    assert "each failure is an `InvalidRequestSetError`" not in doc
    assert "an error *reading* a file that exists" in doc
