"""What one API call is (:class:`ApiRequest`) and what its answer must offer to be parsed
(:class:`ResponseLike`): shared by the send loop and the mapping of answers to errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from airflow_provider_batches._http.request_body import RequestContent


@dataclass(frozen=True)
class ApiRequest:
    """One logical API call; ``batch_id`` only labels errors and logs.

    ``idempotent=False`` (creating a batch) is resent only after an answer proving the server did
    not act on it (429, 529, or a connection that was never made); any other failure raises
    :class:`BatchCreateOutcomeUnknownError`.
    """

    method: str
    url: str
    batch_id: str | None = None
    json_body: Any = None
    idempotent: bool = True
    #: The ``accept`` header, when not the JSON every other endpoint answers.
    accept: str | None = None
    #: A body streamed with a known length instead of ``json_body`` (each attempt reads it
    #: again from its start: a resend sends the same bytes).
    content: RequestContent | None = None


class ResponseLike(Protocol):
    """What the parse functions read: a :class:`Reply`, or an ``httpx.Response`` already read."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> httpx.Headers: ...
    @property
    def content(self) -> bytes: ...
    @property
    def reason_phrase(self) -> str: ...
