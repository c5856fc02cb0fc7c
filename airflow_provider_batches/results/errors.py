"""Errors of reading and writing a batch's results.

Permanent ones (retrying the task cannot help) are also ``AirflowFailException``, so a task
fails at once instead of burning its retries; the others are plain ``AirflowException``.
"""

from __future__ import annotations

from airflow_provider_batches._compat import AirflowException, AirflowFailException
from airflow_provider_batches.exceptions import MessageBatchError


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
