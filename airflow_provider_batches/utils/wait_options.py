"""Checks of the wait options the sensor and the operator share, run at DAG parse (constructor
and ``.partial()``), so a bad value fails there and not after a batch was created."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_batches.exceptions import InvalidTaskOptionError

#: option -> (what it must be, whether infinity is allowed)
_SECONDS_OPTIONS: dict[str, tuple[str, bool]] = {
    "poke_interval": ("a finite number of seconds greater than 0", False),
    "poll_interval": ("a finite number of seconds greater than 0", False),
    "timeout": ("a finite number of seconds greater than 0", False),
    "expiry_grace": ("a finite number of seconds, 0 or more", False),
    "error_tolerance": ("a number of seconds, 0 or more (inf: no time limit)", True),
}
_POSITIVE = frozenset({"poke_interval", "poll_interval", "timeout"})


def check_wait_options(options: Mapping[str, Any], task: str) -> None:
    """Raise :class:`InvalidTaskOptionError` (a ``ValueError`` no retry can fix) naming the
    task, the option and the fix for any bad value in ``options``.

    Only the options present are checked, so ``.partial()`` can check what it is given.
    """
    for name, (expected, infinity_allowed) in _SECONDS_OPTIONS.items():
        if name not in options or (name == "timeout" and options[name] is None):
            continue
        seconds = _seconds(options[name])
        bad = (
            seconds is None
            or math.isnan(seconds)
            or (math.isinf(seconds) and not infinity_allowed)
            or seconds < 0
            or (name in _POSITIVE and seconds == 0)
        )
        if bad:
            raise InvalidTaskOptionError(
                f"{task}: {name} must be {expected}, got {options[name]!r}."
            )
    if "max_consecutive_errors" in options:
        value = options["max_consecutive_errors"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidTaskOptionError(
                f"{task}: max_consecutive_errors must be a whole number, 1 or more (1 fails "
                f"the wait at the first transient failure), got {value!r}."
            )


def check_mapped_options(options: Mapping[str, Any], task: str) -> None:
    """Check what ``.partial()`` is given: the wait options, and the outcome policy's.

    Airflow builds a mapped task's operator only when each mapped task instance runs, so
    values given to ``.expand()`` are checked then, before any API call.
    """
    from airflow_provider_batches.utils.policy import task_policy

    check_wait_options(options, task)
    task_policy(options, task)


def as_seconds(value: float | timedelta) -> float:
    """Seconds as a float, from a number or a ``timedelta`` (checked first)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _seconds(value: Any) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
