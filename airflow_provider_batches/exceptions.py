"""Every exception and warning the provider raises, in one tree.

::

    MessageBatchError
    ├── InvalidBatchIdError (also ValueError)
    ├── ConnectionConfigError (also ValueError)
    ├── InvalidRequestSetError        unusable requests (AirflowFail..., ValueError)
    ├── UnreadableRecordError         the task's submission record cannot be read (AirflowFail...)
    ├── IntentRegistryBusyError       the deployment's intent registry cannot be written (retried)
    ├── BatchSubmissionUnknownError   a create may have made a batch; listing cannot tell (retried)
    │   └── AmbiguousBatchError       several batches could be it: a person decides (AirflowFail...)
    ├── InvalidTaskOptionError        a task's option is unusable (AirflowFail..., ValueError)
    ├── PriceTableError (also ValueError)  a price override that cannot be read
    ├── SpendGuardError (AirflowFail...)   max_cost_usd stopped a batch before its create
    │   ├── SpendLimitExceededError        the batch's cost bound is over max_cost_usd
    │   └── UnpricedModelError             a model has no price, so no bound
    ├── OutputTypeError (also ValueError)  an output_type that cannot validate (AirflowFail...)
    ├── InvalidAnswersError           too many answers fail output_type (AirflowFail...)
    ├── APIError                      method, url, batch_id, status_code, error_type, request_id
    │   ├── APIConnectionError        network failure, no response
    │   │   └── APITimeoutError
    │   ├── InvalidResponseError      a 2xx whose body is not what the endpoint returns
    │   ├── BatchCreateOutcomeUnknownError  a create may or may not have made a batch (not resent)
    │   └── APIStatusError            the API answered with an error status
    │       ├── BadRequestError (400), AuthenticationError (401), BillingError (402),
    │       ├── PermissionDeniedError (403), NotFoundError (404), RequestTimeoutError (408),
    │       ├── ConflictError (409), RequestTooLargeError (413), RateLimitError (429),
    │       ├── InternalServerError (5xx) └── OverloadedError (529)
    ├── BatchWaitError                the wait did not succeed (an AirflowException)
    │   ├── BatchPermanentError       retrying cannot help: 401, 403, 404... (AirflowFail...)
    │   ├── BatchOutcomeError         ended, but an outcome policy rejects it (AirflowFail...)
    │   └── BatchWaitTimeoutError     deadline passed before the batch ended (AirflowSensorTimeout)
    └── ResultsError                  a batch's results could not be read or written
        ├── ResultsNotReadyError      the batch has not ended yet
        ├── ResultsUnavailableError   archived, or refused with a 4xx (AirflowFail...)
        ├── ResultsHostNotAllowedError  results_url on another host (AirflowFail..., ValueError)
        ├── InvalidResultLineError    a line that is not a results line (AirflowFail..., ValueError)
        ├── ResultLineTooLargeError   a line past the bound (AirflowFail..., ValueError)
        └── IncompleteResultsError    the results ended early
            └── OverlongResultsError  more lines or ids than a batch's results hold

    UserWarning
    ├── InsecureEndpointWarning       the API key would travel over plain HTTP
    └── ApiKeyWhitespaceWarning       the key has surrounding whitespace (stripped)

Elsewhere, by design: ``_compat.UnsupportedAirflowFeatureError`` (a ValueError: the installed
Airflow lacks a feature asked for; it lives beside the version checks that raise it) and the
fake API's ``testing.FakeApiError`` / ``testing.FakeAdminError`` (test tooling, not the
provider's).

A ``...(AirflowFail...)`` error fails the task at once: retrying cannot fix it. No exception
ever holds the API key: messages are built from the request's method and URL and the API's
error body, never from headers.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_batches._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
)


class MessageBatchError(Exception):
    """Base of every error this provider raises."""


class InvalidBatchIdError(MessageBatchError, ValueError):
    """A batch id that is empty or would change the request's URL path."""


class ConnectionConfigError(MessageBatchError, ValueError):
    """The Airflow connection's fields or extras cannot be used."""


class InvalidRequestSetError(MessageBatchError, AirflowFailException, ValueError):
    """The requests cannot be submitted as they are; retrying the task cannot help.

    ``index`` (0-based) and ``custom_id`` name the first bad request, when one is at fault.
    """

    def __init__(self, message: str, *, index: int | None = None, custom_id: Any = None) -> None:
        super().__init__(message)
        self.index = index
        self.custom_id = custom_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_request_set_error, (str(self), self.index, self.custom_id))


def _rebuild_request_set_error(
    message: str, index: int | None, custom_id: Any
) -> InvalidRequestSetError:
    return InvalidRequestSetError(message, index=index, custom_id=custom_id)


class InvalidTaskOptionError(MessageBatchError, AirflowFailException, ValueError):
    """An operator's or sensor's option cannot be used; the message names the task and the fix.

    Raised at DAG parse where the value is known then, else when the task starts (a mapped
    task's expanded values): retrying the task cannot help.
    """


class PriceTableError(MessageBatchError, ValueError):
    """Prices given to override or extend the shipped price table cannot be used."""


class SpendGuardError(MessageBatchError, AirflowFailException):
    """``max_cost_usd`` stopped a batch before any request was sent; retrying cannot help."""


class SpendLimitExceededError(SpendGuardError):
    """The upper bound of what the batch can cost is over ``max_cost_usd``."""


class UnpricedModelError(SpendGuardError):
    """``max_cost_usd`` is set, but a model of the requests has no price: no bound exists."""


class OutputTypeError(MessageBatchError, AirflowFailException, ValueError):
    """An ``output_type`` that cannot validate answers: an import path that does not import, an
    object that is neither a class pydantic can validate nor a JSON schema, an invalid schema."""


class InvalidAnswersError(MessageBatchError, AirflowFailException):
    """More succeeded answers failed their ``output_type`` than ``max_invalid_ratio`` allows.

    Raised after every file and the manifest are written; ``manifest`` is that manifest.
    """

    def __init__(self, message: str, *, manifest: dict[str, Any]) -> None:
        super().__init__(message)
        self.manifest = manifest

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_invalid_answers, (str(self), self.manifest))


def _rebuild_invalid_answers(message: str, manifest: dict[str, Any]) -> InvalidAnswersError:
    return InvalidAnswersError(message, manifest=manifest)


class APIError(MessageBatchError):
    """A request to the Message Batches API failed."""

    #: Whether the same request may succeed if sent again.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        batch_id: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.batch_id = batch_id
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        #: Seconds the server asked to wait (``retry-after``), capped; ``None`` if it did not say.
        self.retry_after: float | None = None
        #: How many times the request was sent before this error was raised.
        self.attempts = 1

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.error_type:
            parts.append(f"type={self.error_type}")
        if self.batch_id:
            parts.append(f"batch={self.batch_id}")
        if self.request_id:
            parts.append(f"request-id={self.request_id}")
        parts.append(f"{self.method} {self.url}")
        return " | ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only state when Airflow pickles the exception across processes.
        return (_rebuild, (type(self), self.message, self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields, as carried in a trigger's ``error`` event."""
        return {
            "error_class": type(self).__name__,
            "message": self.message,
            "method": self.method,
            "url": self.url,
            "batch_id": self.batch_id,
            "status_code": self.status_code,
            "error_type": self.error_type,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
        }


def _rebuild(cls: type[APIError], message: str, fields: dict[str, Any]) -> APIError:
    keys = ("method", "url", "batch_id", "status_code", "error_type", "request_id")
    kwargs: dict[str, Any] = {key: fields[key] for key in keys}
    if "sent_at" in fields:
        kwargs["sent_at"] = fields["sent_at"]
    error = cls(message, **kwargs)
    error.retryable = fields["retryable"]
    error.retry_after = fields["retry_after"]
    error.attempts = fields["attempts"]
    return error


class APIConnectionError(APIError):
    """No HTTP response arrived: DNS, refused or reset connection, protocol error."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """The request timed out before a response arrived."""


class InvalidResponseError(APIError):
    """A success status whose body is not a valid response for the endpoint (HTML, junk JSON)."""

    retryable = True


class BatchCreateOutcomeUnknownError(APIError):
    """Creating a batch failed in a way that leaves unknown whether the batch was created.

    Raised instead of resending ``POST /v1/messages/batches`` after a 5xx other than 529, a
    timeout, a dropped connection or an unreadable 2xx: a resend could create (and bill) a
    second batch. ``status_code`` is the answer's status if there was one; ``sent_at`` (epoch
    seconds) is when the request was first sent, so a caller can look for a batch created since
    (list the batches, newest first) before deciding to create again. Never retryable.
    """

    retryable = False

    def __init__(self, message: str, *, sent_at: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.sent_at = sent_at

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "sent_at": self.sent_at}


class APIStatusError(APIError):
    """The API answered with an error status."""


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class BillingError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RequestTimeoutError(APIStatusError):
    retryable = True


class ConflictError(APIStatusError):
    retryable = True


class RequestTooLargeError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    retryable = True


class InternalServerError(APIStatusError):
    retryable = True


class OverloadedError(InternalServerError):
    pass


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: RequestTooLargeError,
    429: RateLimitError,
    529: OverloadedError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status_code in _STATUS_ERRORS:
        return _STATUS_ERRORS[status_code]
    if status_code >= 500:
        return InternalServerError
    return APIStatusError


class BatchWaitError(MessageBatchError, AirflowException):
    """Waiting for a batch did not end in success; Airflow's task retries apply.

    ``batch`` is the batch last seen (JSON-safe dict) or ``None``; ``error`` is the API error's
    fields (see :meth:`APIError.to_dict`) when one caused the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        batch_id: str,
        batch: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.batch_id = batch_id
        self.batch = batch
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_wait_error, (type(self), str(self), self.batch_id, self.batch, self.error))


def _rebuild_wait_error(
    cls: type[BatchWaitError],
    message: str,
    batch_id: str,
    batch: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> BatchWaitError:
    return cls(message, batch_id=batch_id, batch=batch, error=error)


class BatchPermanentError(BatchWaitError, AirflowFailException):
    """A failure that retrying the task cannot fix (bad key, unknown batch): no task retries."""


class BatchOutcomeError(BatchWaitError, AirflowFailException):
    """The batch ended, but an outcome policy of the sensor rejects the result."""


class BatchWaitTimeoutError(BatchWaitError, AirflowSensorTimeout):
    """The wait's deadline passed before the batch ended."""


class InsecureEndpointWarning(UserWarning):
    """The API key would travel over plain HTTP to a host other than loopback."""


class ApiKeyWhitespaceWarning(UserWarning):
    """The API key had whitespace around it (a pasted newline, a leading space); it was removed."""


class UnreadableRecordError(MessageBatchError, AirflowFailException):
    """A record or claim exists but cannot be read: never guessed to be absent."""


class IntentRegistryBusyError(MessageBatchError, AirflowException):
    """The registry kept changing under concurrent writes: nothing was sent; a retry may pass."""


class BatchSubmissionUnknownError(MessageBatchError, AirflowException):
    """A create may or may not have made a batch, and listing could not tell which.

    ``candidates`` are the batches that could be it (possibly none yet).
    """

    def __init__(self, message: str, *, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),), {"candidates": self.candidates})


class AmbiguousBatchError(BatchSubmissionUnknownError, AirflowFailException):
    """Several batches could be the one a lost create made: a person must decide."""


class ResultsError(MessageBatchError, AirflowException):
    """The results of a batch could not be read or written."""


class ResultsNotReadyError(ResultsError):
    """The batch has not ended yet, so it has no results; wait for it first (sensor, trigger)."""


class ResultsUnavailableError(ResultsError, AirflowFailException):
    """The results cannot be downloaded: archived, or the API refused them with a 4xx."""


class ResultsHostNotAllowedError(ResultsError, AirflowFailException, ValueError):
    """The batch's ``results_url`` is on another host than the connection's: the API key
    would be sent there."""


class InvalidResultLineError(ResultsError, AirflowFailException, ValueError):
    """A line of the results is not a results line (not JSON, no ``custom_id``...)."""


class ResultLineTooLargeError(ResultsError, AirflowFailException, ValueError):
    """A results line is longer than the configured bound."""


class IncompleteResultsError(ResultsError):
    """The results ended before every request of the batch had a line (or, as
    :class:`OverlongResultsError`, had more lines)."""


class OverlongResultsError(IncompleteResultsError):
    """The results stream sent more than a batch's results: more distinct ``custom_id``s than
    the batch has requests, or more blank or repeated lines than a read allows."""
