"""Bad wait options fail at DAG parse, naming the option, in the operator and the sensor alike.

Before, the operator caught only ``poll_interval <= 0`` and ``timeout <= 0``: ``nan``,
infinity, a negative ``expiry_grace`` or ``max_consecutive_errors=0`` passed the constructor,
and the operator created its batch before the trigger refused the value at deferral, leaving
the batch running with nobody waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wait_option_values import bad_values, good_values

from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.sensors.batch import MessageBatchSensor

pytestmark = pytest.mark.matrix

REQUESTS = [{"custom_id": "a", "params": {"model": "m", "max_tokens": 1, "messages": []}}]


@dataclass(frozen=True)
class WaitingTask:
    """How to build one kind of task that waits, and what it calls its poll interval."""

    task_id: str
    interval: str
    build: Callable[..., Any]
    partial: Callable[..., Any]


TASKS = {
    "operator": WaitingTask(
        "submit",
        "poll_interval",
        lambda **kw: MessageBatchOperator(
            task_id="submit", requests=REQUESTS, deferrable=True, **kw
        ),
        lambda **kw: MessageBatchOperator.partial(task_id="submit", **kw),
    ),
    "sensor": WaitingTask(
        "wait",
        "poke_interval",
        lambda **kw: MessageBatchSensor(
            task_id="wait", batch_id="msgbatch_1", deferrable=True, **kw
        ),
        lambda **kw: MessageBatchSensor.partial(task_id="wait", **kw),
    ),
}
# The operator's and the sensor's option names differ only in the interval's.
OPTIONS = sorted(bad_values("interval"))


def _bad_value(data: st.DataObject, task: WaitingTask, option: str) -> tuple[str, Any]:
    name = task.interval if option == "interval" else option
    return name, data.draw(bad_values(task.interval)[name])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(TASKS)), option=st.sampled_from(OPTIONS))
def test_bad_values_fail_in_the_constructor_naming_the_option(
    data: st.DataObject, kind: str, option: str
) -> None:
    task = TASKS[kind]
    name, value = _bad_value(data, task, option)
    with pytest.raises(ValueError, match=rf"^{task.task_id}: {name} must be"):
        task.build(**{name: value})


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(TASKS)), option=st.sampled_from(OPTIONS))
def test_bad_values_fail_at_partial(data: st.DataObject, kind: str, option: str) -> None:
    """``.partial()`` runs at DAG parse; the task itself is built only per mapped task
    instance, so ``.partial()`` checks what it is given."""
    task = TASKS[kind]
    name, value = _bad_value(data, task, option)
    with pytest.raises(ValueError, match=rf"^{task.task_id} \(mapped\): {name} must be"):
        task.partial(**{name: value})


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_bad_policies_fail_at_partial(kind: str) -> None:
    with pytest.raises(ValueError, match="max_errored_ratio"):
        TASKS[kind].partial(max_errored_ratio=1.5)


GOOD_VALUES = good_values("poll_interval")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), option=st.sampled_from(sorted(GOOD_VALUES)))
def test_good_values_reach_the_trigger(data: st.DataObject, option: str) -> None:
    value = data.draw(GOOD_VALUES[option])
    trigger = TASKS["operator"].build(**{option: value})._trigger("msgbatch_1", deadline=None)
    if option != "timeout":  # the timeout becomes the trigger's deadline
        assert getattr(trigger, option) == pytest.approx(value)


@pytest.mark.parametrize(
    ("option", "value", "seconds"),
    [
        ("poll_interval", timedelta(minutes=2), 120.0),
        ("timeout", timedelta(hours=26), 93_600.0),
        ("expiry_grace", timedelta(hours=1), 3_600.0),
        ("error_tolerance", timedelta(minutes=30), 1_800.0),
    ],
)
def test_timedeltas_are_seconds(option: str, value: timedelta, seconds: float) -> None:
    operator = TASKS["operator"].build(**{option: value})
    assert getattr(operator, option) == seconds
    operator._trigger("msgbatch_1", deadline=None)  # builds: the trigger takes seconds


@pytest.mark.parametrize(
    ("option", "value", "seconds"),
    [("expiry_grace", timedelta(hours=1), 3_600.0), ("error_tolerance", timedelta(0), 0.0)],
)
def test_the_sensor_takes_timedeltas_for_the_trigger_too(
    option: str, value: timedelta, seconds: float
) -> None:
    """The sensor accepted a timedelta here at parse, and its trigger then refused it."""
    trigger = TASKS["sensor"].build(**{option: value})._trigger(deadline=None)
    assert getattr(trigger, option) == seconds


def test_a_good_partial_still_maps() -> None:
    from airflow.sdk import DAG

    with DAG("operator_parse_validation_ok", schedule=None):
        mapped = MessageBatchOperator.partial(
            task_id="submit", poll_interval=5, max_errored=1
        ).expand(requests=[REQUESTS, REQUESTS])
    assert type(mapped).__name__ == "MappedOperator"
    assert mapped.partial_kwargs["poll_interval"] == 5
