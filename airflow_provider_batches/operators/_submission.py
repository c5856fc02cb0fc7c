"""Submit a request set at most once per task instance, across retries, crashes and clears.

Before the create, an *intent* (fingerprint, request count, start time) goes into the task
instance's record and into the deployment's intent registry (:mod:`.intent_registry`); as soon
as the create answers, the batch id joins the record, the batch is claimed and the registry
entry removed. A create that certainly made nothing (a refusal, a 4xx) is noted as such.

A later try then:

* finds the batch id and the same fingerprint: re-attaches, no create (unless that batch was
  canceled, which a user kill or a give-up did: then it submits anew);
* finds only the intent (the last try died while creating, lost the answer, or is still
  creating): looks for the batch that create may have made (see :func:`find_candidates`) and
  adopts it if it can only be this task instance's; while that create may still be under way
  (:func:`create_span`) or was answered only moments ago, never creates; after that, creates
  only if the list proves there is no batch; fails naming the batches when it cannot tell;
* finds another fingerprint, or runs with ``resubmit=True``: submits a new batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.retry import DEFAULT_BACKOFF
from airflow_provider_batches.exceptions import (
    AmbiguousBatchError,
    BatchCreateOutcomeUnknownError,
    BatchSubmissionUnknownError,
    IntentRegistryBusyError,
    MessageBatchError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.operators._intent_registry import (
    Intent,
    IntentRegistry,
    registry_scope,
)
from airflow_provider_batches.operators._task_record import (
    RecordStore,
    TaskIdentity,
    read_claim,
    write_claim,
)
from airflow_provider_batches.request_set import RequestSet

log = logging.getLogger(__name__)

#: Allowance for clocks that differ (workers among themselves, and the API's ``Date`` header
#: against its ``created_at``) once this worker's offset from the API's clock is applied.
CLOCK_SKEW = 120.0
#: A ``Date`` header further off than this is taken for a broken proxy's and not used.
MAX_BELIEVED_OFFSET = 24 * 3600.0
#: Added to the attempts of a create for the rate-limit budget's waits.
CREATE_MARGIN = 60.0
#: How long after a create's failed answer the server may still make its batch.
SETTLE_MARGIN = 60.0
LIST_PAGE_SIZE = 100
#: Pages searched for candidates before giving up (newest first, so normally one is enough).
MAX_LIST_PAGES = 20


def create_span(settings: ClientSettings) -> float:
    """The longest one create call can take: every attempt's timeout, the longest wait between
    attempts a server may ask for, and a margin."""
    attempts = settings.max_retries + 1
    return attempts * (settings.timeout + DEFAULT_BACKOFF.max_retry_after) + CREATE_MARGIN


def is_ambiguous_create_failure(error: BaseException) -> bool:
    """Whether a failed create may still have created the batch.

    The transport raises :class:`BatchCreateOutcomeUnknownError` for exactly those failures (a
    5xx other than 529, a timeout or dropped connection after sending, an unreadable 2xx); a
    refusal (429, 529) or a connection never made proves nothing was created.
    """
    return isinstance(error, BatchCreateOutcomeUnknownError)


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
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

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

    def registry(self, request_count: int) -> IntentRegistry:
        """The deployment's open intents for batches of ``request_count`` requests."""
        return IntentRegistry(
            registry_scope(self.hook.settings.base_url),
            request_count,
            clock=self.clock,
            sleep=self.sleep,
        )

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
            # An earlier try may have died between the claim and removing its intent.
            self.registry(request_set.count).close(self.identity)
            return Submission(batch, "reattached")
        if record.get("created_nothing") is True:
            log.info("The last try's create certainly made no batch: submitting.")
            return None
        started = float(record.get("started_at", 0.0))
        settled = record.get("settled_at")
        if isinstance(settled, int | float):
            until = float(settled) + SETTLE_MARGIN
        else:
            until = started + create_span(self.hook.settings)
        adopted = self._adopt(request_set, started, until)
        return None if adopted is None else Submission(adopted, "adopted")

    def _create(self, request_set: RequestSet) -> Submission:
        started = self.clock()
        intent = {"fingerprint": request_set.fingerprint, "request_count": request_set.count}
        registry = self.registry(request_set.count)
        # Published before the record: a record without a published intent would hold back
        # the next try until create_span passed, for a create that was never sent.
        registry.open(
            Intent.new(
                self.identity,
                request_set.fingerprint,
                started,
                started + create_span(self.hook.settings),
            )
        )
        self.store.set({**intent, "started_at": started, "batch_id": None})
        try:
            batch = self.hook.create_batch(request_set)
        except MessageBatchError as error:
            if not is_ambiguous_create_failure(error):
                self.store.set(
                    {**intent, "started_at": started, "batch_id": None, "created_nothing": True}
                )
                registry.close(self.identity)
                raise
            settled = self.clock()
            self.store.set(
                {**intent, "started_at": started, "batch_id": None, "settled_at": settled}
            )
            log.warning("The create may have made a batch (%s): looking for it.", error)
            self._narrow_intent(registry, request_set, started, settled + SETTLE_MARGIN)
            adopted = self._adopt(request_set, started, settled + SETTLE_MARGIN)
            assert adopted is not None  # _adopt raises while the create is in doubt
            return Submission(adopted, "adopted")
        self.record_created(intent, started, batch)
        return Submission(batch, "created")

    def record_created(self, intent: dict[str, Any], started: float, batch: MessageBatch) -> None:
        """Write the batch id next to the intent the moment the create has answered, claim the
        batch, then withdraw the intent from the registry."""
        self.store.set({**intent, "started_at": started, "batch_id": batch.id})
        self._claim(batch.id)
        self.registry(int(intent["request_count"])).close(self.identity)
        log.info("Submitted batch %s for %s (%s).", batch.id, self.identity, self.store.description)

    def _claim(self, batch_id: str) -> None:
        if read_claim(batch_id) != self.identity:
            write_claim(batch_id, self.identity)

    def _narrow_intent(
        self, registry: IntentRegistry, request_set: RequestSet, started: float, ends_by: float
    ) -> None:
        """The create has answered: its intent now ends earlier (fewer batches of others look
        like they may be its). Rewriting it also restores it if a concurrent write erased it."""
        try:
            registry.open(Intent.new(self.identity, request_set.fingerprint, started, ends_by))
        except IntentRegistryBusyError as error:
            log.warning("Keeping the wider intent: %s", error)

    def _adopt(self, request_set: RequestSet, since: float, until: float) -> MessageBatch | None:
        """The batch the create that started at ``since`` made, if it can only be this task
        instance's; ``None`` if the create certainly made none; raises otherwise.

        Until ``until`` has passed the create is *in doubt* (it may still be under way, or its
        batch may not be listed yet): then finding nothing is no proof, and nothing is created.
        """
        in_doubt = self.clock() < until
        search = find_candidates(
            self.hook, request_set.count, since, until, self.identity, clock=self.clock
        )
        window = f"{_iso(search.low)} to {_iso(search.high)} (API clock)"
        names = ", ".join(batch.id for batch in search.candidates)
        if not search.candidates:
            if in_doubt:
                raise BatchSubmissionUnknownError(
                    f"A create for {self.identity} is in doubt until {_iso(until)} (it may "
                    "still be under way, or got no answer) and no unclaimed batch of "
                    f"{request_set.count} requests created from {window} shows up yet. The "
                    "next try looks again, and submits only if there still is none.",
                    candidates=[],
                )
            log.info("No batch was made by the last try's create: submitting.")
            return None
        rivals = rival_intents(self.registry(request_set.count).others(self.identity), search)
        now = self.clock()
        rival_names = "; ".join(
            f"{intent.task_instance} ({_iso(intent.started_at)} to {_iso(intent.ends_by)})"
            for intent in rivals
        )
        if any(now < intent.ends_by for intent in rivals):
            raise BatchSubmissionUnknownError(
                f"A create for {self.identity} got no answer. Unclaimed batches of "
                f"{request_set.count} requests created from {window}: {names}; but other task "
                f"instances were creating batches of that size then, and one still may be: "
                f"{rival_names}. The next try looks again, once they have recorded theirs.",
                candidates=[batch.id for batch in search.candidates],
            )
        if len(search.candidates) == 1 and not rivals:
            batch = search.candidates[0]
            intent = {"fingerprint": request_set.fingerprint, "request_count": request_set.count}
            self.record_created(intent, since, batch)
            log.warning("Adopted batch %s: the one unclaimed match of the lost create.", batch.id)
            return batch
        others = f"; other task instances created batches of that size then: {rival_names}"
        raise AmbiguousBatchError(
            f"A create for {self.identity} got no answer, and {len(search.candidates)} "
            f"unclaimed batches of {request_set.count} requests were created from {window}: "
            f"{names}{others if rivals else ''}. Any of them may be this task's, or another's. "
            "Check them in the Console; wait for the right one with MessageBatchSensor, or "
            "cancel them and rerun with resubmit=True.",
            candidates=[batch.id for batch in search.candidates],
        )


@dataclass(frozen=True)
class Search:
    """What listing found for a lost create.

    ``candidates``: batches of the size created in the window, unclaimed or claimed by this
    task instance. ``claimed``: the other batches of the size in the window, by owner and
    creation time on this worker's clock. ``offset``: the API's clock minus this worker's.
    ``low``, ``high``: the window searched, on the API's clock.
    """

    candidates: list[MessageBatch]
    claimed: list[tuple[TaskIdentity, float]]
    offset: float
    low: float
    high: float


def find_candidates(
    hook: MessageBatchHook,
    count: int,
    since: float,
    until: float,
    identity: TaskIdentity,
    *,
    clock: Callable[[], float] = time.time,
) -> Search:
    """List the batches created in ``[since, until]`` (this worker's clock, moved onto the
    API's by the offset its ``Date`` header shows, widened by :data:`CLOCK_SKEW`) with
    ``count`` requests."""
    found: list[MessageBatch] = []
    claimed: list[tuple[TaskIdentity, float]] = []
    offset = low = high = 0.0
    listing = hook.batch_listing(LIST_PAGE_SIZE, MAX_LIST_PAGES)
    for page in listing:
        if listing.pages_read == 1:
            offset = clock_offset(listing.server_time, clock())
            low, high = since + offset - CLOCK_SKEW, until + offset + CLOCK_SKEW
        for batch in page.batches:
            created = batch.created_at.timestamp()
            if low <= created <= high and batch.total_requests == count:
                owner = read_claim(batch.id)
                if owner is None or owner == identity:
                    found.append(batch)
                else:
                    claimed.append((owner, created - offset))
        if page.batches and page.batches[-1].created_at.timestamp() < low:
            break
    else:
        if not listing.complete:
            raise AmbiguousBatchError(
                f"Listing the batches created after {_iso(low)} stopped before reaching them "
                f"all ({_listing_end(listing.end)}): cannot tell whether "
                f"the lost create for {identity} made one. Rerun with resubmit=True once you "
                "have checked in the Console.",
                candidates=[batch.id for batch in found],
            )
    if listing.skipped:
        raise AmbiguousBatchError(
            f"Listing the batches created after {_iso(low)} returned {listing.skipped} entries "
            f"that are not valid batches: any of them may be the lost create for {identity}. "
            "Rerun with resubmit=True once you have checked in the Console.",
            candidates=[batch.id for batch in found],
        )
    return Search(found, claimed, offset, low, high)


def _listing_end(end: str | None) -> str:
    if end == "page cap":
        return f"more than {MAX_LIST_PAGES * LIST_PAGE_SIZE} batches were created since"
    return {
        "no cursor": "the server said it had more pages but gave no cursor",
        "invalid cursor": "the server's cursor is not a batch id",
        "repeated cursor": "the server sent a cursor it had sent before",
    }.get(end or "", str(end))


def clock_offset(server_time: float | None, local_time: float) -> float:
    """The API's clock minus this worker's, from a response's ``Date`` (0 without one)."""
    if server_time is None:
        return 0.0
    offset = server_time - local_time
    if abs(offset) > MAX_BELIEVED_OFFSET:
        log.warning("Ignoring a Date header %.0f s away from this clock.", offset)
        return 0.0
    if abs(offset) > CLOCK_SKEW:
        log.warning(
            "This worker's clock is %.0f s off the API's (its Date header): searching by the "
            "API's clock.",
            -offset,
        )
    return offset


def rival_intents(others: list[Intent], search: Search) -> list[Intent]:
    """The other task instances' intents that could have made one of ``search``'s candidates.

    An intent is set aside when its task instance already claimed a batch of the size created
    within it (it died before withdrawing the intent: its create is accounted for).
    """

    def within(intent: Intent, moment: float) -> bool:
        return intent.started_at - CLOCK_SKEW <= moment <= intent.ends_by + CLOCK_SKEW

    rivals = []
    for intent in others:
        if any(
            owner == intent.task_instance and within(intent, when) for owner, when in search.claimed
        ):
            continue
        if any(
            within(intent, batch.created_at.timestamp() - search.offset)
            for batch in search.candidates
        ):
            rivals.append(intent)
    return rivals


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")
