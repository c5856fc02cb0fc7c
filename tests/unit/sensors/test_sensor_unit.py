"""MessageBatchSensor construction and event handling, without running a DAG."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from helpers import API_KEY

from airflow_provider_batches.exceptions import (
    BatchPermanentError,
    BatchWaitError,
    BatchWaitTimeoutError,
)
from airflow_provider_batches.sensors.batch import MessageBatchSensor

ENDED = {
    "id": "msgbatch_1",
    "type": "message_batch",
    "processing_status": "ended",
    "request_counts": {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0},
    "created_at": "2024-08-20T18:37:24.100435Z",
    "expires_at": "2024-08-21T18:37:24.100435Z",
    "ended_at": "2024-08-20T19:37:24.100435Z",
    "cancel_initiated_at": None,
    "archived_at": None,
    "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
}


def _sensor(**kwargs: Any) -> MessageBatchSensor:
    return MessageBatchSensor(task_id="wait", batch_id="msgbatch_1", **kwargs)


def test_start_from_trigger_args_hold_no_secret_and_use_the_timeout(
    fake: Any, fake_conn: str
) -> None:
    from airflow_provider_batches.hooks.batch import MessageBatchHook

    # The key is loaded in this process first, so a sensor that copied it anywhere could.
    assert MessageBatchHook(fake_conn).settings.api_key == API_KEY
    sensor = _sensor(deferrable=True, start_from_trigger=True, timeout=120, poke_interval=15)

    args = sensor.start_trigger_args
    assert sensor.start_from_trigger is True
    assert args.trigger_cls == "airflow_provider_batches.triggers.batch.MessageBatchTrigger"
    assert args.next_method == "execute_complete"
    assert args.timeout == timedelta(seconds=120)
    assert args.trigger_kwargs["batch_id"] == "msgbatch_1"
    assert args.trigger_kwargs["poll_interval"] == 15
    assert args.trigger_kwargs["deadline"] is None
    assert API_KEY not in repr(args)
    assert API_KEY not in json.dumps(args.trigger_kwargs)


def test_start_from_trigger_needs_deferrable() -> None:
    with pytest.raises(ValueError, match="deferrable=True"):
        _sensor(deferrable=False, start_from_trigger=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_errored": -1}, "max_errored must be a non-negative integer"),
        ({"max_expired": 0.5}, "max_expired_ratio for a fraction"),
        ({"max_canceled_ratio": 1.5}, "between 0 and 1"),
        ({"on_fully_canceled": "ignore"}, "on_fully_canceled"),
    ],
)
def test_bad_policy_fails_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sensor(**kwargs)


def test_execute_complete_returns_the_batch_on_success() -> None:
    sensor = _sensor(deferrable=True)
    event = {"status": "success", "batch_id": "msgbatch_1", "batch": ENDED, "message": "ok"}

    assert sensor.execute_complete(context={}, event=event) == ENDED  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "error_class"),
    [
        (
            {
                "status": "timeout",
                "batch_id": "msgbatch_1",
                "batch": None,
                "message": "late",
                "reason": "deadline",
            },
            BatchWaitTimeoutError,
        ),
        (
            {
                "status": "error",
                "batch_id": "msgbatch_1",
                "batch": None,
                "message": "gone",
                "error": {"status_code": 404, "retryable": False},
            },
            BatchPermanentError,
        ),
        (
            {
                "status": "error",
                "batch_id": "msgbatch_1",
                "batch": None,
                "message": "flaky",
                "error": {"status_code": 503, "retryable": True},
            },
            BatchWaitError,
        ),
    ],
)
def test_execute_complete_raises_typed_errors(event: dict[str, Any], error_class: type) -> None:
    with pytest.raises(error_class) as caught:
        _sensor(deferrable=True).execute_complete(context={}, event=event)  # type: ignore[arg-type]

    assert type(caught.value) is error_class
    assert caught.value.batch_id == "msgbatch_1"
    assert event["message"] in str(caught.value)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "must be a dict"),
        ({"status": "weird", "batch_id": "msgbatch_1"}, "has status 'weird'"),
        ({"status": "success", "batch_id": "msgbatch_2", "batch": ENDED}, "is for batch"),
        ({"status": "success", "batch_id": "msgbatch_1"}, "carries no batch"),
    ],
)
def test_execute_complete_rejects_malformed_events(event: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _sensor(deferrable=True).execute_complete(context={}, event=event)  # type: ignore[arg-type]


def test_batch_id_and_conn_id_are_templated() -> None:
    """Both fields are rendered by Airflow's templating, as a DAG author writes them."""
    from airflow.sdk import DAG

    with DAG("templating", schedule=None):
        sensor = MessageBatchSensor(
            task_id="wait",
            batch_id="{{ params.batch }}",
            conn_id="anthropic_{{ params.env }}",
        )
    sensor.render_template_fields(context={"params": {"batch": "msgbatch_7", "env": "prod"}})

    assert (sensor.batch_id, sensor.conn_id) == ("msgbatch_7", "anthropic_prod")
    assert sensor.hook.conn_id == "anthropic_prod"
