"""MessageBatchSensor: wait until a Message Batch ends and return it to XCom."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_batches._compat import (
    AirflowSkipException,
    check_start_from_trigger_kwargs,
    default_deferrable,
)
from airflow_provider_batches.exceptions import (
    APIError,
    BatchPermanentError,
    BatchWaitError,
    ConnectionConfigError,
    InvalidBatchIdError,
    InvalidTaskOptionError,
)
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.telemetry import metrics
from airflow_provider_batches.utils.policy import FullyCanceledAction, task_policy
from airflow_provider_batches.utils.trigger_events import validate_event
from airflow_provider_batches.utils.wait_defaults import (
    DEFAULT_ERROR_TOLERANCE,
    DEFAULT_EXPIRY_GRACE,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_POLL_INTERVAL,
    DEFERRAL_TIMEOUT_MARGIN,
)
from airflow_provider_batches.utils.wait_end import cancel_quietly, finish_batch, gave_up_error
from airflow_provider_batches.utils.wait_options import (
    as_seconds,
    check_mapped_options,
    check_wait_options,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_batches.triggers.batch import MessageBatchTrigger

_TRIGGER_PATH = "airflow_provider_batches.triggers.batch.MessageBatchTrigger"


class MessageBatchSensor(BaseSensorOperator):
    """Waits until an Anthropic Message Batch has ``processing_status`` ``ended``.

    Returns the ended batch as a JSON-safe dict in the API's shape, so it lands in XCom as
    ``return_value``; outcome policies can fail or skip the task based on its request counts.

    :param batch_id: The batch to wait for (templated, e.g. from an upstream task's XCom).
    :param conn_id: Airflow connection with the API key (templated).
    :param deferrable: Wait in the triggerer instead of a worker slot. Defaults to
        ``[operators] default_deferrable``.
    :param poke_interval: Seconds between polls in every mode (in deferrable mode, the longest
        gap between polls; jitter makes most gaps a little shorter).
    :param max_errored: Fail when more requests than this errored.
    :param max_errored_ratio: Fail when more than this fraction (0-1) of requests errored.
    :param max_expired: Fail when more requests than this expired.
    :param max_expired_ratio: Fail when more than this fraction of requests expired.
    :param max_canceled: Fail when more requests than this were canceled.
    :param max_canceled_ratio: Fail when more than this fraction of requests was canceled.
    :param on_fully_canceled: What a batch that ended with every request canceled does:
        ``"succeed"`` (default), ``"fail"`` or ``"skip"``.
    :param expiry_grace: Deferrable mode: seconds past the batch's ``expires_at`` after which a
        batch that still has not ended ends the wait with a timeout.
    :param max_consecutive_errors: Deferrable mode: transient failures in a row tolerated.
    :param error_tolerance: Deferrable mode: seconds a streak of transient failures may last.
    :param cancel_on_kill: Cancel the batch when a user kills this task while it waits (mark
        failed or success, clear). Off by default: the sensor did not create the batch.
    :param start_from_trigger: Deferrable mode: start straight in the triggerer, without a
        worker (needs ``deferrable=True``; templated ``batch_id`` needs Airflow 3.3+).
    """

    template_fields: Sequence[str] = ("batch_id", "conn_id")
    ui_color = "#f0e4d7"

    def __init__(
        self,
        *,
        batch_id: str,
        conn_id: str = MessageBatchHook.default_conn_name,
        deferrable: bool | None = None,
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
        start_from_trigger: bool = False,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", DEFAULT_POLL_INTERVAL)
        # Checked before Airflow's own checks, which accept 0, infinity and (for some) nan.
        check_wait_options(
            {
                **kwargs,
                "expiry_grace": expiry_grace,
                "max_consecutive_errors": max_consecutive_errors,
                "error_tolerance": error_tolerance,
            },
            task=str(kwargs.get("task_id")),
        )
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        # Validated here so a DAG with a bad policy fails at parse time, not hours later.
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
        self._hook: MessageBatchHook | None = None
        self.cancel_on_kill = cancel_on_kill
        if start_from_trigger:
            self._enable_start_from_trigger()

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """Check the options given to ``.partial()`` at DAG parse, like the constructor does."""
        task = f"{kwargs.get('task_id')} (mapped)"
        check_mapped_options(kwargs, task=task)
        if kwargs.get("start_from_trigger"):
            raise InvalidTaskOptionError(
                f"{task}: start_from_trigger=True does not work with mapped tasks (Airflow "
                "serializes a mapped sensor without its start_trigger_args, so it would start "
                "on a worker anyway). Use deferrable=True without start_from_trigger: the "
                "worker only checks the batch once, then defers."
            )
        return super().partial(**kwargs)

    def _enable_start_from_trigger(self) -> None:
        from airflow.triggers.base import StartTriggerArgs

        if not self.deferrable:
            raise InvalidTaskOptionError(
                f"{self.task_id}: start_from_trigger=True needs deferrable=True, since the wait "
                "then runs only in the triggerer."
            )
        check_start_from_trigger_kwargs(
            self.task_id, {"batch_id": self.batch_id, "conn_id": self.conn_id}
        )
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=_TRIGGER_PATH,
            next_method="execute_complete",
            trigger_kwargs=self._trigger_kwargs(deadline=None),
            next_kwargs=None,
            timeout=timedelta(seconds=self.timeout),
        )

    @property
    def hook(self) -> MessageBatchHook:
        """The hook of this task run: one connection lookup however many pokes it makes."""
        if self._hook is None or self._hook.conn_id != self.conn_id:
            self._hook = MessageBatchHook(self.conn_id)
        return self._hook

    def execute(self, context: Context) -> Any:
        self._hook = None  # a new run reads the connection again
        # A bad batch id fails in _retrieve_or_none (the hook checks it before any request).
        if not self.deferrable:
            return super().execute(context)
        # One check on the worker first: a batch that has already ended needs no deferral.
        try:
            batch = self._retrieve_or_none()
            if batch is not None and batch.is_ended:
                return self._finish(batch, context)
        except BatchWaitError as error:
            # BaseSensorOperator applies soft_fail only inside its poke loop and on resume.
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
            raise
        self.defer(
            trigger=self._trigger(deadline=time.time() + self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_TIMEOUT_MARGIN),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        batch = self._retrieve_or_none()
        if batch is None or not batch.is_ended:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(batch, context))

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: return the batch, or raise a typed error for the event."""
        event = validate_event(event, self.batch_id)
        status = event["status"]
        if status == "success":
            return self._finish(MessageBatch.from_xcom(event["batch"]), context)
        raise gave_up_error(event, self.batch_id)

    def _trigger(self, deadline: float | None) -> MessageBatchTrigger:
        from airflow_provider_batches.triggers.batch import MessageBatchTrigger

        return MessageBatchTrigger(**self._trigger_kwargs(deadline))

    def _trigger_kwargs(self, deadline: float | None) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "conn_id": self.conn_id,
            "poll_interval": self.poke_interval,
            "deadline": deadline,
            "expiry_grace": self.expiry_grace,
            "max_consecutive_errors": self.max_consecutive_errors,
            "error_tolerance": self.error_tolerance,
            "cancel_on_kill": self.cancel_on_kill,
        }

    def on_kill(self) -> None:
        """A user killed the task while it poked in a worker: cancel if ``cancel_on_kill``."""
        if self.cancel_on_kill:
            cancel_quietly(self.hook, self.batch_id, self.log)

    def _retrieve_or_none(self) -> MessageBatch | None:
        """The batch now; ``None`` after a transient failure (the next poke tries again)."""
        try:
            return self.hook.retrieve_batch(self.batch_id)
        except (InvalidBatchIdError, ConnectionConfigError) as error:
            raise BatchPermanentError(str(error), batch_id=self.batch_id) from error
        except APIError as error:
            if not error.retryable:
                raise BatchPermanentError(
                    f"Waiting for batch {self.batch_id} failed: {error}",
                    batch_id=self.batch_id,
                    error=error.to_dict(),
                ) from error
            self.log.warning("Batch %s: poll failed, will poll again: %s", self.batch_id, error)
            return None

    def _finish(self, batch: MessageBatch, context: Context) -> dict[str, Any]:
        """Apply the outcome policy to an ended batch; return its XCom form if it passes."""
        metrics.batch_ended(self.conn_id, batch)
        return finish_batch(self.policy, batch, context, self.log)
