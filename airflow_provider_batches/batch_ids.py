"""Check batch ids and quote each as exactly one URL path segment."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from airflow_provider_batches.exceptions import InvalidBatchIdError

__all__ = ["MAX_BATCH_ID_LENGTH", "quote_batch_id", "validate_batch_id"]

MAX_BATCH_ID_LENGTH = 1024


def validate_batch_id(batch_id: object) -> str:
    """Return ``batch_id`` if it names exactly one URL path segment, else raise.

    Only what keeps the path intact is checked: the API may change the id format.
    """
    if not isinstance(batch_id, str):
        raise InvalidBatchIdError(
            f"batch_id must be a string such as 'msgbatch_013Zva2CMHLNnXjNJJKqJ2EF', "
            f"got {type(batch_id).__name__}."
        )
    problem = _batch_id_problem(batch_id)
    if problem:
        shown = batch_id if len(batch_id) <= 80 else batch_id[:80] + "..."
        raise InvalidBatchIdError(
            f"Invalid batch_id {shown!r}: {problem}. Pass the 'id' of the batch as the API "
            "returned it, for example 'msgbatch_013Zva2CMHLNnXjNJJKqJ2EF'."
        )
    return batch_id


def _batch_id_problem(batch_id: str) -> str | None:
    if not batch_id.strip():
        return "it is empty"
    if len(batch_id) > MAX_BATCH_ID_LENGTH:
        return f"it is {len(batch_id)} characters long, more than {MAX_BATCH_ID_LENGTH}"
    if batch_id in (".", ".."):
        return "it is a relative path segment"
    for char in batch_id:
        if char in "/\\?#":
            return f"it contains {char!r}, which would change the request's URL path"
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return f"it contains the whitespace or control character U+{ord(char):04X}"
    return None


def quote_batch_id(batch_id: str) -> str:
    return quote(validate_batch_id(batch_id), safe="")
