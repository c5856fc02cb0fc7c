"""A request set split into shards (``split_oversized=True``): one batch per shard, waited for
together, finished as one.

Each shard is submitted like a set of its own (:mod:`.submission`): its own record, claim and
intent, under the task instance's identity with the shard's index, so a retry after a crash
mid-submission re-attaches to the shards already created and creates only the others. The
task instance's own record then lists every shard's batch (``shard_batch_ids``), for the kill
and timeout paths. The shards are waited for one after another (they run at once on the
server, so the wait lasts as long as the slowest); the outcome policy judges their summed
counts.

The XCom of a split set (:func:`split_xcom`) is a dict with a ``shards`` key, which a single
batch's XCom never has.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from airflow_provider_batches.exceptions import BatchOutcomeError, MessageBatchError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch, RequestCounts
from airflow_provider_batches.operators._submission import Submitter
from airflow_provider_batches.operators._task_record import RecordStore, TaskIdentity
from airflow_provider_batches.request_set import RequestSet
from airflow_provider_batches.utils.policy import OutcomePolicy

log = logging.getLogger(__name__)

_COUNT_NAMES = ("processing", "succeeded", "errored", "canceled", "expired")


def submit_shards(
    hook: MessageBatchHook,
    context: Any,
    identity: TaskIdentity,
    store: RecordStore,
    shards: list[RequestSet],
    *,
    resubmit: bool,
) -> list[MessageBatch]:
    """Submit (or re-attach to) each shard in order; record every shard's batch in ``store``.

    Every shard's spooled body is dropped once its create has answered, or on failure."""
    from airflow_provider_batches.operators._task_record import record_store_for

    batches: list[MessageBatch] = []
    try:
        for index, shard in enumerate(shards):
            shard_identity = replace(identity, shard=index)
            shard_store = record_store_for(context, shard_identity)
            with shard:
                submission = Submitter(hook, shard_store, shard_identity).submit(
                    shard, resubmit=resubmit
                )
            log.info(
                "Shard %d of %d: batch %s (%s).",
                index + 1,
                len(shards),
                submission.batch.progress_summary(),
                submission.how,
            )
            batches.append(submission.batch)
    finally:
        for shard in shards:
            shard.close()
    store.set({"shard_batch_ids": [batch.id for batch in batches], "batch_id": None})
    return batches


def summed_counts(batches: list[MessageBatch]) -> RequestCounts:
    """The shards' request counts added up (a count the API adds later too)."""
    totals: dict[str, int] = dict.fromkeys(_COUNT_NAMES, 0)
    for batch in batches:
        for name, value in batch.request_counts.model_dump().items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return RequestCounts.model_validate(totals)


def whole_set(batches: list[MessageBatch]) -> MessageBatch:
    """The split set as one batch for the outcome policy: the first shard with every shard's
    counts summed, named after the set."""
    return batches[0].model_copy(
        update={"id": f"{batches[0].id}-shards", "request_counts": summed_counts(batches)}
    )


def split_xcom(batches: list[MessageBatch]) -> dict[str, Any]:
    """The XCom of a split set: ``shards`` (each ended batch in the API's shape, in shard
    order), ``batch_ids``, and the summed ``request_counts`` and ``total_requests``."""
    counts = summed_counts(batches)
    return {
        "shards": [batch.to_xcom() for batch in batches],
        "batch_ids": [batch.id for batch in batches],
        "processing_status": "ended",
        "request_counts": counts.model_dump(mode="json"),
        "total_requests": counts.total,
    }


def finish_shards(
    policy: OutcomePolicy, batches: list[MessageBatch], context: Any, task_log: Any
) -> dict[str, Any]:
    """Apply ``policy`` to the whole set; its XCom if it passes."""
    from airflow_provider_batches._compat import AirflowSkipException

    value = split_xcom(batches)
    verdict = policy.evaluate(whole_set(batches))
    task_log.info("Split set of %d batches: %s", len(batches), verdict.reason)
    if verdict.action == "succeed":
        return value
    context["ti"].xcom_push(key="batch", value=value)
    if verdict.action == "skip":
        raise AirflowSkipException(f"Skipping: {verdict.reason}.")
    raise BatchOutcomeError(f"Failing: {verdict.reason}.", batch_id=batches[0].id, batch=value)


def unended(hook: MessageBatchHook, batch_ids: list[str]) -> tuple[list[MessageBatch], list[str]]:
    """Every shard's batch as it is now, and the ids of those still running."""
    batches = [hook.retrieve_batch(batch_id) for batch_id in batch_ids]
    return batches, [batch.id for batch in batches if not batch.is_ended]


def cancel_running(hook: MessageBatchHook, batch_ids: list[str], why: str) -> str:
    """Cancel each shard still running (a kill or the wait's own deadline); a note of what was
    done, for the error message. A failed cancel is noted and the others still canceled."""
    canceled: list[str] = []
    failed: list[str] = []
    for batch_id in batch_ids:
        try:
            batch = hook.retrieve_batch(batch_id)
            if batch.is_ended or batch.cancel_initiated_at is not None:
                continue
            hook.cancel_batch(batch_id)
        except MessageBatchError as error:
            log.warning("Batch %s: cancel (%s) failed: %s", batch_id, why, error)
            failed.append(batch_id)
            continue
        log.info("Batch %s: canceled (%s).", batch_id, why)
        canceled.append(batch_id)
    note = f"canceled shards {', '.join(canceled)} ({why})" if canceled else "no shard to cancel"
    return note + (f"; canceling {', '.join(failed)} failed" if failed else "")
