"""MessageBatchOperator: submit a Message Batch once per task instance, wait, and finish."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_batches._compat import default_deferrable
from airflow_provider_batches.exceptions import (
    InvalidRequestSetError,
    InvalidTaskOptionError,
    MessageBatchError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.request_set import (
    RequestSet,
    RequestTally,
    build_request_set,
    requests_from_prompts,
)
from airflow_provider_batches.telemetry import metrics
from airflow_provider_batches.telemetry.lineage import BatchLineage
from airflow_provider_batches.utils.policy import FullyCanceledAction, task_policy
from airflow_provider_batches.utils.request_options import (
    RequestOptions,
    check_request_options,
    rendered_max_tokens,
)
from airflow_provider_batches.utils.structured_options import (
    TooManyInvalidAction,
    check_structured_options,
)
from airflow_provider_batches.utils.trigger_events import validate_event
from airflow_provider_batches.utils.wait_defaults import (
    DEFAULT_ERROR_TOLERANCE,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_POLL_INTERVAL,
    DEFERRAL_TIMEOUT_MARGIN,
)
from airflow_provider_batches.utils.wait_end import (
    cancel_quietly,
    finish_batch,
    gave_up_error,
    wait_in_worker,
)
from airflow_provider_batches.utils.wait_options import (
    as_seconds,
    check_mapped_options,
    check_wait_options,
)

#: ``next_method`` of a task Airflow resumes only to fail it (the trigger gave no event).
TRIGGER_FAILED = "__fail__"
#: ``next_kwargs["error"]`` when that is a deferral timeout (``TriggerFailureReason``).
DEFERRAL_TIMED_OUT = "Trigger timeout"

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_batches.triggers.batch import MessageBatchTrigger


class MessageBatchOperator(BatchLineage, BaseOperator):
    """Submits an Anthropic Message Batch, waits until it ends, and returns it.

    One task instance submits one batch per request set, across retries, worker crashes,
    triggerer restarts and clears (see docs/operator.md). The return value is the ended batch
    in the API's shape, the same XCom as :class:`MessageBatchSensor`'s; with
    ``wait_for_completion=False``, the batch id.

    :param requests: The requests (templated): a list of ``{"custom_id", "params"}`` dicts, a
        JSON array of them as a string, or a path (``str`` or ``ObjectStoragePath``) to a
        JSONL file of them, read as a stream. A string naming no file fails the task at once
        (see docs/operator.md).
    :param prompts: Instead of ``requests`` (templated): a list of prompt strings (custom_ids
        ``prompt-0``, ``prompt-1``, ...) or a ``{custom_id: prompt}`` mapping.
    :param model, max_tokens, system: Filled into every request that lacks them, whatever the
        input form (templated); a request's own values win. Without ``model`` or
        ``max_tokens``, the connection's extras ``default_model`` and ``default_max_tokens``.
    :param prompt_template: Read ``requests`` as records (JSON objects such as
        ``{"id": 7, "review": "..."}``): each record's prompt is this template filled with
        its fields (``str.format_map``), e.g. ``"Classify: {review}"``.
    :param prompt_field: Instead of ``prompt_template``: the record field holding the prompt.
    :param custom_id_field: The record field holding each request's custom_id (a string or an
        integer); without it, custom_ids are ``record-0``, ``record-1``, ...
    :param conn_id: Airflow connection with the API key (templated).
    :param deferrable: Wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: Longest time between polls, in seconds.
    :param timeout: Seconds to wait for the batch to end; ``None`` waits until the batch's
        ``expires_at`` plus ``expiry_grace``.
    :param cancel_on_kill: Cancel the batch when a user kills the task while it waits.
    :param cancel_on_timeout: Cancel the batch when the wait's own deadline (``timeout``)
        passes while it still runs. A wait that ends in an error never cancels.
    :param resubmit: Submit a new batch on every try, even if one is recorded for these
        requests.
    :param max_errored, max_errored_ratio, max_expired, max_expired_ratio, max_canceled,
        max_canceled_ratio, on_fully_canceled: Outcome policy, as for the sensor.
    :param expiry_grace, max_consecutive_errors, error_tolerance: As for the trigger.
    :param results_path: Where to store the results once the batch has ended (templated; a
        ``str`` or ``ObjectStoragePath``, e.g. ``s3://aws_default@bucket/batches``): written
        under ``<results_path>/<batch id>/`` with a ``manifest.json`` last, before the outcome
        policy is applied, and the manifest is pushed to XCom key ``manifest``. The return
        value stays the ended batch. See docs/results.md.
    :param results_overwrite: Download again even if a complete manifest is already there.
    :param results_split_by_type: Also write ``succeeded.jsonl`` and ``errored.jsonl``.
    :param max_cost_usd: Before the create, fail (``SpendLimitExceededError``, nothing sent) if
        the batch can cost more than this many USD: every request's ``max_tokens`` at its
        model's batch output price plus an input estimate (docs/cost.md). The bound is logged
        whether or not this is set; with it set, a model without a price fails the task.
    :param prices: Prices overriding or extending the shipped table, for the bound and the
        manifest's cost: ``{model: {"input", "cache_write_5m", "cache_write_1h",
        "cache_read", "output"}}`` in USD per million tokens at standard prices.
    :param results_output_type, results_max_invalid_ratio: ``output_type`` and
        ``max_invalid_ratio`` of ``MessageBatchResultsOperator``, for the stored results
        (``parsed.jsonl``, ``invalid.jsonl``); checked after the manifest is pushed.
    :param results_on_too_many_invalid: ``on_too_many_invalid`` of
        ``MessageBatchResultsOperator``: ``"fail"`` (default) or ``"skip"`` past
        ``results_max_invalid_ratio``.
    :param wait_for_completion: ``False``: submit only. The task returns the batch id (a
        ``str``) right after the create, or after re-attaching to the batch an earlier try of
        this task instance created, with the same record rules (a retry never creates a second
        batch). Pass ``.output`` to ``MessageBatchSensor(batch_id=...)`` or
        ``MessageBatchResultsOperator(batch_id=...)``. No outcome policy applies and
        ``results_path`` cannot be set (nothing has ended yet).
    :param split_oversized: Cut the requests, in order, into as many batches as the API's
        limits need (100,000 requests, 256 MB each); the task waits for them all, the outcome
        policy judges their summed counts, and the return value is the split set's XCom (a
        dict with ``shards``; see docs/operator.md), also for a set that fits in one batch.
        Without it, a set past a limit fails the task before any request is sent.
    """

    template_fields: Sequence[str] = (
        "requests",
        "prompts",
        "model",
        "max_tokens",
        "system",
        "conn_id",
        "results_path",
    )
    ui_color = "#e4d7f0"

    def __init__(
        self,
        *,
        requests: Any = None,
        prompts: Sequence[str] | Mapping[str, str] | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        system: str | list[Any] | None = None,
        prompt_template: str | None = None,
        prompt_field: str | None = None,
        custom_id_field: str | None = None,
        conn_id: str = MessageBatchHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        cancel_on_timeout: bool = True,
        resubmit: bool = False,
        max_errored: int | None = None,
        max_errored_ratio: float | None = None,
        max_expired: int | None = None,
        max_expired_ratio: float | None = None,
        max_canceled: int | None = None,
        max_canceled_ratio: float | None = None,
        on_fully_canceled: FullyCanceledAction = "succeed",
        expiry_grace: float | timedelta = DEFAULT_EXPIRY_GRACE,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        error_tolerance: float | timedelta = DEFAULT_ERROR_TOLERANCE,
        results_path: Any = None,
        results_overwrite: bool = False,
        results_split_by_type: bool = False,
        max_cost_usd: float | None = None,
        prices: Mapping[str, Any] | None = None,
        results_output_type: Any = None,
        results_max_invalid_ratio: float | None = None,
        results_on_too_many_invalid: TooManyInvalidAction = "fail",
        wait_for_completion: bool = True,
        split_oversized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_submit_only(self.task_id, wait_for_completion, results_path)
        check_split_options(self.task_id, split_oversized, wait_for_completion, results_output_type)
        check_structured_options(
            results_output_type,
            results_max_invalid_ratio,
            task=self.task_id,
            on_too_many_invalid=results_on_too_many_invalid,
        )
        if (requests is None) == (prompts is None):
            raise InvalidTaskOptionError(
                f"{self.task_id}: pass either requests or prompts (exactly one)."
            )
        input_options = {
            "prompts": prompts,
            "model": model,
            "max_tokens": max_tokens,
            "system": system,
            "prompt_template": prompt_template,
            "prompt_field": prompt_field,
            "custom_id_field": custom_id_field,
        }
        check_request_options(input_options, task=self.task_id)
        # Checked here, at DAG parse: a bad value found at deferral would fail the task after
        # its batch was created, leaving the batch running with nobody waiting.
        check_wait_options(
            {
                "poll_interval": poll_interval,
                "timeout": timeout,
                "expiry_grace": expiry_grace,
                "max_consecutive_errors": max_consecutive_errors,
                "error_tolerance": error_tolerance,
            },
            task=self.task_id,
        )
        self.requests = requests
        self.prompts = prompts
        self.model = model
        self.max_tokens = max_tokens
        self.system = system
        self.prompt_template = prompt_template
        self.prompt_field = prompt_field
        self.custom_id_field = custom_id_field
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = as_seconds(poll_interval)
        self.timeout = None if timeout is None else as_seconds(timeout)
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.resubmit = resubmit
        self.policy = task_policy(
            {
                "max_errored": max_errored,
                "max_errored_ratio": max_errored_ratio,
                "max_expired": max_expired,
                "max_expired_ratio": max_expired_ratio,
                "max_canceled": max_canceled,
                "max_canceled_ratio": max_canceled_ratio,
                "on_fully_canceled": on_fully_canceled,
            },
            task=self.task_id,
        )
        self.expiry_grace = as_seconds(expiry_grace)
        self.max_consecutive_errors = max_consecutive_errors
        self.error_tolerance = as_seconds(error_tolerance)
        self.results_path = results_path
        self.results_overwrite = results_overwrite
        self.results_split_by_type = results_split_by_type
        self.max_cost_usd = check_max_cost(max_cost_usd, self.task_id)
        if prices is not None:  # a bad price fails at DAG parse
            from airflow_provider_batches.cost.prices import parse_price_rows

            parse_price_rows(prices, f"{self.task_id}: prices")
        self.prices = prices
        self.results_output_type = results_output_type
        self.results_max_invalid_ratio = results_max_invalid_ratio
        self.results_on_too_many_invalid = results_on_too_many_invalid
        self.wait_for_completion = wait_for_completion
        self.split_oversized = split_oversized
        self._waiting_for: str | None = None
        self._waiting_for_shards: list[str] = []

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Check the options given to ``.partial()`` at DAG parse, like the constructor does.

        Whether the requests will lack a model cannot be known here: the connection's
        ``default_model`` is read only when the task runs (then, before any request).
        """
        task = f"{kwargs.get('task_id')} (mapped)"
        check_mapped_options(kwargs, task=task)
        check_request_options(kwargs, task=task)
        check_submit_only(task, kwargs.get("wait_for_completion", True), kwargs.get("results_path"))
        check_split_options(
            task,
            kwargs.get("split_oversized", False),
            kwargs.get("wait_for_completion", True),
            kwargs.get("results_output_type"),
        )
        return super().partial(**kwargs)

    @property
    def hook(self) -> MessageBatchHook:
        return MessageBatchHook(self.conn_id)

    def request_set(self) -> RequestSet:
        """The checked requests; raises :class:`InvalidRequestSetError` before any request."""
        options = self.request_options()
        return build_request_set(self._request_source(), options)

    def _request_source(self) -> Any:
        if self.prompts is not None:
            if isinstance(self.prompts, str):
                raise InvalidRequestSetError(
                    f"{self.task_id}: prompts rendered to one string; pass a list of prompts."
                )
            source: Any = requests_from_prompts(self.prompts)
        else:
            source = self.requests
        return source

    def request_options(self) -> RequestOptions:
        """What fills each request's gaps (the task's values, then the connection's defaults)
        and maps records, as rendered; the connection is read only when the task leaves
        ``model`` or ``max_tokens`` unset."""
        check_request_options({"model": self.model, "system": self.system}, task=self.task_id)
        model = self.model
        max_tokens = rendered_max_tokens(self.max_tokens, self.task_id)
        if model is None or max_tokens is None:
            settings = self.hook.settings
            model = settings.default_model if model is None else model
            max_tokens = settings.default_max_tokens if max_tokens is None else max_tokens
        return RequestOptions(
            task=self.task_id,
            conn_id=self.conn_id,
            model=model,
            max_tokens=max_tokens,
            system=self.system,
            prompt_template=self.prompt_template,
            prompt_field=self.prompt_field,
            custom_id_field=self.custom_id_field,
        )

    def execute(self, context: Context) -> Any:
        from airflow_provider_batches.operators._submission import Submitter
        from airflow_provider_batches.operators._task_record import (
            TaskIdentity,
            interrupted_wait,
            mark_waiting,
            record_store_for,
        )

        if self.split_oversized:
            return self._execute_shards(context)
        request_set = self.request_set()
        self._check_spend(request_set.tally)
        identity = TaskIdentity.from_context(context)
        store = record_store_for(context, identity)
        try_number = int(getattr(context["ti"], "try_number", 1) or 1)
        record = store.get()
        if record is not None and interrupted_wait(record, try_number):
            self._stop_interrupted_wait(record)
        with request_set:  # the spooled body goes once the create has answered
            submission = Submitter(self.hook, store, identity).submit(
                request_set, resubmit=self.resubmit
            )
        batch = submission.batch
        self._waiting_for = batch.id
        self.log.info("Batch %s (%s).", batch.progress_summary(), submission.how)
        if not self.wait_for_completion:
            self._waiting_for = None
            self.record_lineage(batch=batch.to_xcom())
            return batch.id
        if batch.is_ended:
            return self._finish(batch, context)
        deadline = None if self.timeout is None else time.time() + self.timeout
        trigger = self._trigger(batch.id, deadline)
        if not self.deferrable:
            return self.execute_complete(context, wait_in_worker(trigger), batch_id=batch.id)
        mark_waiting(store, try_number, deadline)
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            kwargs={"batch_id": batch.id},
            timeout=None
            if self.timeout is None
            else timedelta(seconds=self.timeout + DEFERRAL_TIMEOUT_MARGIN),
        )

    def execute_complete(
        self, context: Context, event: Any = None, batch_id: str | None = None
    ) -> dict[str, Any]:
        """Resume after the wait: return the ended batch, or raise for a wait that gave up."""
        if self.split_oversized:
            return self._shard_complete(context, event)
        if batch_id is None and isinstance(event, dict):
            # Airflow releases differ in whether the defer kwargs come back; the event has it.
            batch_id = event.get("batch_id")
        if not isinstance(batch_id, str):
            raise ValueError(f"{self.task_id}: resumed without the batch id it waited for.")
        if self.deferrable:
            from airflow_provider_batches.operators._task_record import (
                TaskIdentity,
                mark_resumed,
                record_store_for,
            )

            mark_resumed(record_store_for(context, TaskIdentity.from_context(context)))
        event = validate_event(event, batch_id)
        if event["status"] == "success":
            return self._finish(MessageBatch.from_xcom(event["batch"]), context)
        raise gave_up_error(event, batch_id, self._after_giving_up(batch_id, event))

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        """Airflow resumes a deferred task here; ``__fail__`` means the trigger never gave an
        event: the triggerer failed it (its class would not load, it crashed) or the deferral
        timed out. Either way the deferred try came back, so no later try may take the
        deferral for a user kill; only a deferral timeout past the wait's own deadline cancels
        (``cancel_on_timeout``). Then Airflow's own handling raises as usual."""
        if next_method == TRIGGER_FAILED:
            self._after_failed_trigger(next_kwargs or {}, context)
        return super().resume_execution(next_method, next_kwargs, context)

    def on_kill(self) -> None:
        """A user killed the task while it waited in this worker: cancel its batch (every
        shard of a split set)."""
        if not self.cancel_on_kill:
            return
        single = [self._waiting_for] if self._waiting_for is not None else []
        for batch_id in self._waiting_for_shards or single:
            cancel_quietly(self.hook, batch_id, self.log)

    def _check_spend(self, tally: RequestTally) -> None:
        """Log the batch's cost bound; raise before any request if it is over max_cost_usd."""
        from airflow_provider_batches.cost.guard import check_spend, tally_bound
        from airflow_provider_batches.cost.prices import parse_price_rows, price_table

        table = price_table(self.hook.settings.prices, parse_price_rows(self.prices, "prices"))
        bound = tally_bound(tally, table)
        self.log.info("Cost bound of the batch: %s.", bound.describe(table))
        if bound.unpriced:
            self.log.warning("No price for %s: not in the bound.", ", ".join(bound.unpriced[:5]))
        if self.max_cost_usd is not None:
            check_spend(bound, self.max_cost_usd, table)

    def _stop_interrupted_wait(self, record: dict[str, Any]) -> None:
        """An earlier try deferred on the batch and never came back (a failed trigger comes
        back through ``resume_execution``): a user cleared the task while it waited. Finish
        the kill its trigger may not have (the new try can start before the trigger's on_kill
        runs). Past the wait's deadline it was a deadline passing: ``cancel_on_timeout`` rules.
        """
        from airflow_provider_batches.operators._task_record import recorded_batch_ids

        deadline = record.get("deadline")
        timed_out = isinstance(deadline, int | float) and time.time() >= deadline
        for batch_id in recorded_batch_ids(record):
            if not (self.cancel_on_timeout if timed_out else self.cancel_on_kill):
                break
            why = "its wait timed out" if timed_out else "a user killed its wait"
            self.log.info("Batch %s: %s in an earlier try; canceling it.", batch_id, why)
            batch = self.hook.retrieve_batch(batch_id)
            if not batch.is_ended and batch.cancel_initiated_at is None:
                cancel_quietly(self.hook, batch_id, self.log)

    def _after_failed_trigger(self, failure: dict[str, Any], context: Context) -> None:
        """The deferred try came back without an event (see :meth:`resume_execution`)."""
        from airflow_provider_batches.operators._task_record import (
            TaskIdentity,
            mark_resumed,
            record_store_for,
            recorded_batch_ids,
        )

        store = record_store_for(context, TaskIdentity.from_context(context))
        record = store.get()
        mark_resumed(store)
        batch_ids = recorded_batch_ids(record)
        if record is None or not batch_ids:
            return
        batch_id = ", ".join(batch_ids)
        deadline = record.get("deadline")
        past_deadline = isinstance(deadline, int | float) and time.time() >= deadline
        if failure.get("error") == DEFERRAL_TIMED_OUT and past_deadline:
            if not self.cancel_on_timeout:
                self.log.info(
                    "Batch %s: the wait timed out; left running (cancel_on_timeout=False).",
                    batch_id,
                )
                return
            for each in batch_ids:
                batch = self.hook.retrieve_batch(each)
                if not batch.is_ended and batch.cancel_initiated_at is None:
                    self.log.info("Batch %s: the wait's deadline passed; canceling it.", each)
                    cancel_quietly(self.hook, each, self.log)
            return
        self.log.warning(
            "Batch %s was left running: its wait failed in the triggerer (%s), not the batch. "
            "The next try re-attaches to it.",
            batch_id,
            failure.get("error"),
        )

    def _after_giving_up(self, batch_id: str, event: dict[str, Any]) -> str:
        """Cancel a batch the wait gave up on, only when its own deadline passed and the user
        asked; the note for the error message. An error never cancels: the batch still works,
        and a retry re-attaches to it."""
        last_seen = event.get("batch")
        if isinstance(last_seen, dict) and last_seen.get("processing_status") == "ended":
            return ""
        if not own_deadline_passed(event):
            if event["status"] == "timeout":
                return (
                    f". Batch {batch_id} was left as is: it is past its expires_at, when the "
                    "API stops processing it, though the API does not report it ended."
                )
            return (
                f". Batch {batch_id} was left running: an error ends the wait, not the batch "
                "(a retry re-attaches to it)."
            )
        if not self.cancel_on_timeout:
            return f". Batch {batch_id} was left running (cancel_on_timeout=False)."
        try:
            self.hook.cancel_batch(batch_id)
        except MessageBatchError as error:
            return f". Canceling batch {batch_id} (cancel_on_timeout=True) failed too: {error}"
        return (
            f". The wait's deadline passed while batch {batch_id} still ran: canceled it "
            "(cancel_on_timeout=True)."
        )

    def _finish(self, batch: MessageBatch, context: Context) -> dict[str, Any]:
        self._waiting_for = None
        manifest: dict[str, Any] | None = None
        if self.results_path:
            # Before the policy: the results of a batch that fails it are what one inspects.
            from airflow_provider_batches.results.writer import write_results

            manifest = write_results(
                self.hook,
                batch,
                self.results_path,
                overwrite=self.results_overwrite,
                split_by_type=self.results_split_by_type,
                prices=self.prices,
                output_type=self.results_output_type,
            )
            context["ti"].xcom_push(key="manifest", value=manifest)
            self.record_lineage(manifest=manifest)
        self.record_lineage(batch=batch.to_xcom())
        metrics.batch_ended(self.conn_id, batch)
        if manifest is not None:
            from airflow_provider_batches.results.structured import check_invalid_answers

            check_invalid_answers(
                manifest, self.results_max_invalid_ratio, self.results_on_too_many_invalid
            )
        return finish_batch(self.policy, batch, context, self.log)

    def _execute_shards(self, context: Context) -> Any:
        """``split_oversized=True``: submit each shard, then wait for them all (see
        :mod:`airflow_provider_batches.operators._shards`)."""
        from airflow_provider_batches.operators._shards import submit_shards
        from airflow_provider_batches.operators._task_record import (
            TaskIdentity,
            interrupted_wait,
            record_store_for,
        )
        from airflow_provider_batches.request_set import build_request_shards

        shards = build_request_shards(self._request_source(), self.request_options())
        self._check_spend(RequestTally.merged(shard.tally for shard in shards))
        identity = TaskIdentity.from_context(context)
        store = record_store_for(context, identity)
        record = store.get()
        if record is not None and interrupted_wait(record, _try_number(context)):
            self._stop_interrupted_wait(record)
        batches = submit_shards(self.hook, context, identity, store, shards, resubmit=self.resubmit)
        deadline = None if self.timeout is None else time.time() + self.timeout
        return self._wait_for_shards(context, [batch.id for batch in batches], deadline)

    def _wait_for_shards(
        self, context: Context, batch_ids: list[str], deadline: Any
    ) -> dict[str, Any]:
        """Wait for each shard still running, one after another (in this worker, or deferring
        on each in turn with the others to cancel on a kill); then finish the whole set."""
        from airflow_provider_batches.operators._shards import unended

        self._waiting_for_shards = batch_ids
        batches, running = unended(self.hook, batch_ids)
        if running and not self.deferrable:
            for batch_id in running:
                event = validate_event(wait_in_worker(self._trigger(batch_id, deadline)), batch_id)
                if event["status"] != "success":
                    raise self._shards_gave_up(batch_ids, batch_id, event)
            batches, running = unended(self.hook, batch_ids)
        if not running:
            return self._finish_shards(batches, context)
        from airflow_provider_batches.operators._task_record import (
            TaskIdentity,
            mark_waiting,
            record_store_for,
        )

        store = record_store_for(context, TaskIdentity.from_context(context))
        mark_waiting(store, _try_number(context), deadline)
        trigger = self._trigger(running[0], deadline)
        trigger.cancel_with = running[1:]
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=None
            if deadline is None
            else timedelta(seconds=max(0.0, deadline - time.time()) + DEFERRAL_TIMEOUT_MARGIN),
        )

    def _shard_complete(self, context: Context, event: Any) -> dict[str, Any]:
        """Resume after one shard's wait: wait for the next, or finish the set."""
        from airflow_provider_batches.operators._task_record import (
            TaskIdentity,
            mark_resumed,
            record_store_for,
            recorded_batch_ids,
        )

        store = record_store_for(context, TaskIdentity.from_context(context))
        record = store.get() or {}
        mark_resumed(store)
        batch_ids = recorded_batch_ids(record)
        batch_id = event.get("batch_id") if isinstance(event, dict) else None
        if not batch_ids or batch_id not in batch_ids:
            raise ValueError(f"{self.task_id}: resumed without the shards it waited for.")
        event = validate_event(event, batch_id)
        if event["status"] != "success":
            raise self._shards_gave_up(batch_ids, batch_id, event)
        return self._wait_for_shards(context, batch_ids, record.get("deadline"))

    def _shards_gave_up(
        self, batch_ids: list[str], batch_id: str, event: dict[str, Any]
    ) -> Exception:
        """The wait for one shard gave up: on the wait's own deadline (``cancel_on_timeout``)
        every shard still running is canceled; otherwise all are left as they are."""
        if own_deadline_passed(event) and self.cancel_on_timeout:
            from airflow_provider_batches.operators._shards import cancel_running

            note = cancel_running(self.hook, batch_ids, "cancel_on_timeout=True")
            return gave_up_error(event, batch_id, f". The wait's deadline passed: {note}.")
        others = ", ".join(other for other in batch_ids if other != batch_id)
        note = self._after_giving_up(batch_id, event)
        return gave_up_error(event, batch_id, f"{note} Other shards left as they are: {others}.")

    def _finish_shards(self, batches: list[MessageBatch], context: Context) -> dict[str, Any]:
        from airflow_provider_batches.operators._shards import finish_shards

        self._waiting_for_shards = []
        if self.results_path:
            from airflow_provider_batches.results.writer import write_shard_results

            manifest = write_shard_results(
                self.hook,
                batches,
                self.results_path,
                overwrite=self.results_overwrite,
                split_by_type=self.results_split_by_type,
                prices=self.prices,
            )
            context["ti"].xcom_push(key="manifest", value=manifest)
        for batch in batches:
            metrics.batch_ended(self.conn_id, batch)
        return finish_shards(self.policy, batches, context, self.log)

    def _trigger(self, batch_id: str, deadline: float | None) -> MessageBatchTrigger:
        from airflow_provider_batches.triggers.batch import MessageBatchTrigger

        return MessageBatchTrigger(
            batch_id=batch_id,
            conn_id=self.conn_id,
            poll_interval=self.poll_interval,
            deadline=deadline,
            expiry_grace=self.expiry_grace,
            max_consecutive_errors=self.max_consecutive_errors,
            error_tolerance=self.error_tolerance,
            cancel_on_kill=self.cancel_on_kill,
        )


def check_max_cost(value: Any, task_id: str) -> float | None:
    """``max_cost_usd``: ``None`` or a positive finite number of USD."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(
            f"{task_id}: max_cost_usd must be a positive number of US dollars such as 25.0, "
            f"got {value!r}."
        )
    return float(value)


def check_split_options(
    task: str, split_oversized: Any, wait_for_completion: Any, results_output_type: Any
) -> None:
    """What a split set does not support yet fails at DAG parse, naming the alternative."""
    if not isinstance(split_oversized, bool):
        raise ValueError(f"{task}: split_oversized must be True or False, got {split_oversized!r}.")
    if split_oversized and wait_for_completion is False:
        raise ValueError(
            f"{task}: split_oversized=True needs wait_for_completion=True (a submit-only task "
            "returns one batch id). Split the requests over mapped submit-only tasks instead."
        )
    if split_oversized and results_output_type is not None:
        raise ValueError(
            f"{task}: results_output_type is not supported with split_oversized=True yet. "
            "Validate the split set's results.jsonl downstream with MessageBatchResultsOperator "
            "per shard, or leave results_output_type unset."
        )


def check_submit_only(task: str, wait_for_completion: Any, results_path: Any) -> None:
    """``wait_for_completion`` is a bool, and ``False`` leaves nothing to store results of."""
    if not isinstance(wait_for_completion, bool):
        raise ValueError(
            f"{task}: wait_for_completion must be True or False, got {wait_for_completion!r}."
        )
    if not wait_for_completion and results_path:
        raise ValueError(
            f"{task}: results_path needs wait_for_completion=True (a submit-only task ends "
            "before the batch does). Store the results downstream with "
            "MessageBatchResultsOperator(batch_id=<this task>.output, results_path=...) after "
            "a MessageBatchSensor."
        )


def _try_number(context: Context) -> int:
    return int(getattr(context["ti"], "try_number", 1) or 1)


def own_deadline_passed(event: dict[str, Any]) -> bool:
    """Whether a wait's event says its own deadline passed: the one ending that may cancel."""
    return event["status"] == "timeout" and event.get("reason") == "deadline"
