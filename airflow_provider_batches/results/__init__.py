"""A batch's results: typed lines, streaming readers, and the writer to object storage."""

from __future__ import annotations

from airflow_provider_batches.exceptions import (
    IncompleteResultsError,
    InvalidResultLineError,
    OverlongResultsError,
    ResultLineTooLargeError,
    ResultsError,
    ResultsHostNotAllowedError,
    ResultsNotReadyError,
    ResultsUnavailableError,
)
from airflow_provider_batches.results.lines import (
    DEFAULT_MAX_LINE_BYTES,
    MAX_SKIPPED_LINES,
    ReadCounts,
    ResultLine,
)
from airflow_provider_batches.results.models import (
    BatchResult,
    CanceledResult,
    ErroredResult,
    ErrorEnvelope,
    ExpiredResult,
    Message,
    SucceededResult,
    UnknownResult,
    Usage,
    parse_result_line,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_SKIPPED_LINES",
    "BatchResult",
    "CanceledResult",
    "ErrorEnvelope",
    "ErroredResult",
    "ExpiredResult",
    "IncompleteResultsError",
    "InvalidResultLineError",
    "Message",
    "OverlongResultsError",
    "ReadCounts",
    "ResultLine",
    "ResultLineTooLargeError",
    "ResultsError",
    "ResultsHostNotAllowedError",
    "ResultsNotReadyError",
    "ResultsUnavailableError",
    "SucceededResult",
    "UnknownResult",
    "Usage",
    "parse_result_line",
]
