"""Submit a request set at most once per task instance, across retries, crashes and clears.

Before the create, an *intent* (fingerprint, request count, start time) goes into the task
instance's record; as soon as the create answers, the batch id joins it. A later try then:

* finds the batch id and the same fingerprint: re-attaches, no create (unless that batch was
  canceled, which a user kill or a give-up did: then it submits anew);
* finds only the intent (the last try died while creating, or lost the answer): looks for the
  batch that create may have made (see :func:`find_candidates`) and adopts it, creates only
  if the list proves there is none, and fails naming the candidates if there are several;
* finds another fingerprint, or runs with ``resubmit=True``: submits a new batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_provider_batches._compat import AirflowException, AirflowFailException
from airflow_provider_batches.exceptions import (
    BatchCreateOutcomeUnknownError,
    MessageBatchError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.request_set import RequestSet
from airflow_provider_batches.task_record import (
    RecordStore,
    TaskIdentity,
    read_claim,
    write_claim,
)

log = logging.getLogger(__name__)

#: Allowance for the difference between this machine's clock and the API's.
CLOCK_SKEW = 120.0
LIST_PAGE_SIZE = 100
#: Pages searched for candidates before giving up (newest first, so normally one is enough).
MAX_LIST_PAGES = 20


def is_ambiguous_create_failure(error: BaseException) -> bool:
    """Whether a failed create may still have created the batch.

    The transport raises :class:`BatchCreateOutcomeUnknownError` for exactly those failures (a
    5xx other than 529, a timeout or dropped connection after sending, an unreadable 2xx); a
    refusal (429, 529) or a connection never made proves nothing was created.
    """
    return isinstance(error, BatchCreateOutcomeUnknownError)


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


@dataclass(frozen=True)
class Submission:
    batch: MessageBatch
    how: Literal["created", "reattached", "adopted"]


@dataclass
class Submitter:
    """Submits one request set for one task instance through ``hook`` and ``store``."""

    hook: MessageBatchHook
    store: RecordStore
    identity: TaskIdentity
    clock: Callable[[], float] = time.time

    def submit(self, request_set: RequestSet, *, resubmit: bool = False) -> Submission:
        record = self.store.get()
        if record is not None and not resubmit:
            if record.get("fingerprint") == request_set.fingerprint:
                found = self._resume(record, request_set)
                if found is not None:
                    return found
            else:
                log.info(
                    "The requests differ from those of batch %s recorded for %s: submitting a "
                    "new batch.",
                    record.get("batch_id"),
                    self.identity,
                )
        elif record is not None:
            log.warning(
                "resubmit=True: submitting a new batch; batch %s, recorded earlier, is left as is.",
                record.get("batch_id"),
            )
        return self._create(request_set)

    def _resume(self, record: dict[str, Any], request_set: RequestSet) -> Submission | None:
        batch_id = record.get("batch_id")
        if isinstance(batch_id, str):
            batch = self.hook.retrieve_batch(batch_id)
            if batch.cancel_initiated_at is not None:
                log.info(
                    "Batch %s recorded for %s was canceled: submitting anew.",
                    batch_id,
                    self.identity,
                )
                return None
            log.info("Re-attaching to batch %s, recorded for %s.", batch_id, self.identity)
            self._claim(batch_id)
            return Submission(batch, "reattached")
        started = float(record.get("started_at", 0.0))
        settings = self.hook.settings
        window_end = started + settings.timeout * (settings.max_retries + 1) + 60.0
        adopted = self._adopt(request_set, started, window_end, ambiguous_now=False)
        return None if adopted is None else Submission(adopted, "adopted")

    def _create(self, request_set: RequestSet) -> Submission:
        started = self.clock()
        intent = {"fingerprint": request_set.fingerprint, "request_count": request_set.count}
        self.store.set({**intent, "started_at": started, "batch_id": None})
        try:
            batch = self.hook.create_batch(request_set.requests)
        except MessageBatchError as error:
            if not is_ambiguous_create_failure(error):
                raise
            log.warning("The create may have made a batch (%s): looking for it.", error)
            adopted = self._adopt(request_set, started, self.clock(), ambiguous_now=True)
            assert adopted is not None  # _adopt raises when ambiguous_now finds nothing
            return Submission(adopted, "adopted")
        self.record_created(intent, started, batch)
        return Submission(batch, "created")

    def record_created(self, intent: dict[str, Any], started: float, batch: MessageBatch) -> None:
        """Write the batch id next to the intent the moment the create has answered."""
        self.store.set({**intent, "started_at": started, "batch_id": batch.id})
        self._claim(batch.id)
        log.info("Submitted batch %s for %s (%s).", batch.id, self.identity, self.store.description)

    def _claim(self, batch_id: str) -> None:
        if read_claim(batch_id) != self.identity:
            write_claim(batch_id, self.identity)

    def _adopt(
        self, request_set: RequestSet, since: float, until: float, *, ambiguous_now: bool
    ) -> MessageBatch | None:
        candidates = find_candidates(self.hook, request_set.count, since, until, self.identity)
        if len(candidates) == 1:
            batch = candidates[0]
            intent = {"fingerprint": request_set.fingerprint, "request_count": request_set.count}
            self.record_created(intent, since, batch)
            log.warning("Adopted batch %s: the one unclaimed match of the lost create.", batch.id)
            return batch
        window = f"{_iso(since - CLOCK_SKEW)} to {_iso(until + CLOCK_SKEW)}"
        if candidates:
            names = ", ".join(batch.id for batch in candidates)
            raise AmbiguousBatchError(
                f"A create for {self.identity} got no answer, and {len(candidates)} unclaimed "
                f"batches of {request_set.count} requests were created from {window}: {names}. "
                "One may be this task's. Check them in the Console; wait for the right one with "
                "MessageBatchSensor, or cancel them and rerun with resubmit=True.",
                candidates=[batch.id for batch in candidates],
            )
        if ambiguous_now:
            raise BatchSubmissionUnknownError(
                f"A create for {self.identity} got no answer and no batch of "
                f"{request_set.count} requests created from {window} shows up yet. The next "
                "try looks again, and submits only if there still is none.",
                candidates=[],
            )
        log.info("No batch was made by the last try's create: submitting.")
        return None


def find_candidates(
    hook: MessageBatchHook, count: int, since: float, until: float, identity: TaskIdentity
) -> list[MessageBatch]:
    """Batches created in ``[since, until]`` (with clock skew) of ``count`` requests, that no
    other task instance has claimed."""
    low, high = since - CLOCK_SKEW, until + CLOCK_SKEW
    found: list[MessageBatch] = []
    after: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = hook.list_batches(limit=LIST_PAGE_SIZE, after_id=after)
        for batch in page.data:
            created = batch.created_at.timestamp()
            if low <= created <= high and batch.total_requests == count:
                owner = read_claim(batch.id)
                if owner is None or owner == identity:
                    found.append(batch)
        oldest = page.data[-1].created_at.timestamp() if page.data else low - 1
        if not page.has_more or oldest < low:
            return found
        after = page.last_id
    raise AmbiguousBatchError(
        f"More than {MAX_LIST_PAGES * LIST_PAGE_SIZE} batches were created after "
        f"{_iso(low)}: cannot tell whether the lost create for {identity} made one. Rerun "
        "with resubmit=True once you have checked.",
        candidates=[batch.id for batch in found],
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
