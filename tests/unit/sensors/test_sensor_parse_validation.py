"""Sensor settings checked at DAG parse. The bad values of every wait option,
for the sensor and the operator alike: tests/unit/utils/test_wait_options.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wait_option_values import good_values

from airflow_provider_batches.sensors.batch import MessageBatchSensor

GOOD_VALUES = good_values("poke_interval")


def _sensor(**kwargs: Any) -> MessageBatchSensor:
    return MessageBatchSensor(task_id="wait", batch_id="msgbatch_1", deferrable=True, **kwargs)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), option=st.sampled_from(sorted(GOOD_VALUES)))
def test_good_values_construct(data: st.DataObject, option: str) -> None:
    value = data.draw(GOOD_VALUES[option])
    sensor = _sensor(**{option: value})
    assert getattr(sensor, option) == pytest.approx(value, abs=1e-6)  # timedelta: microseconds


@pytest.mark.parametrize(
    ("option", "value"),
    [("poke_interval", timedelta(0)), ("timeout", timedelta(seconds=-1))],
)
def test_bad_timedeltas_fail_too(option: str, value: timedelta) -> None:
    with pytest.raises(ValueError, match=rf"^wait: {option} must be"):
        _sensor(**{option: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_errored": -1}, "max_errored must be a non-negative integer"),
        ({"max_errored_ratio": 1.5}, "between 0 and 1"),
        ({"on_fully_canceled": "explode"}, "on_fully_canceled"),
    ],
)
def test_bad_policies_fail_at_partial(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MessageBatchSensor.partial(task_id="wait", **kwargs)


def test_mapped_start_from_trigger_is_refused_at_parse() -> None:
    with pytest.raises(ValueError, match="start_from_trigger=True does not work with mapped"):
        MessageBatchSensor.partial(task_id="wait", deferrable=True, start_from_trigger=True)


def test_good_partial_still_maps() -> None:
    from airflow.sdk import DAG

    with DAG("parse_validation_ok", schedule=None):
        mapped = MessageBatchSensor.partial(
            task_id="wait", max_errored=1, poke_interval=5, deferrable=True
        ).expand(batch_id=["msgbatch_a", "msgbatch_b"])
    assert type(mapped).__name__ == "MappedOperator"
    assert mapped.partial_kwargs["max_errored"] == 1
