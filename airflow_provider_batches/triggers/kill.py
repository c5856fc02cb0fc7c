"""Tell a user's kill of a deferred task from a triggerer restart, move or deferral timeout.

Airflow 3.3 calls ``BaseTrigger.on_kill()`` when a trigger stops being assigned to its
triggerer for a user action; the same path also fires when a trigger merely moves to another
triggerer (apache/airflow PR 73454). What tells them apart is the task instance itself: a user
action (mark failed or success, clear) takes it out of ``deferred``; a move leaves it
``deferred``. So before cancelling, the trigger asks the execution API for the task instance's
state (``GetTaskStates`` through the triggerer's supervisor), and cancels only when the task
instance has left ``deferred``. When the state cannot be read, it does not cancel: a live batch
is never canceled on a guess.
"""

from __future__ import annotations

import time
from typing import Any

#: Task instance states that mean the wait still belongs to a deferred task.
STILL_WAITING = frozenset({"deferred"})


async def task_instance_state(trigger: Any) -> tuple[bool, str | None]:
    """``(known, state)`` of the trigger's task instance, read through the Task SDK."""
    ti = getattr(trigger, "task_instance", None)
    if ti is None:
        return False, None
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult
    except ImportError:  # Airflow without the Task SDK comms: nothing to ask
        return False, None
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        return False, None
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    try:
        response = await comms.asend(
            GetTaskStates(
                dag_id=ti.dag_id, map_index=map_index, task_ids=[ti.task_id], run_ids=[ti.run_id]
            )
        )
    except Exception:
        return False, None
    if not isinstance(response, TaskStatesResult):
        return False, None
    states = response.task_states.get(ti.run_id) or {}
    key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
    if key not in states:
        return True, None  # the task instance is gone (cleared away, run deleted)
    state = states[key]
    return True, None if state is None else str(getattr(state, "value", state))


async def kill_decision(trigger: Any, deadline: float | None) -> tuple[bool, str]:
    """Whether ``on_kill`` should cancel the batch, and why (for the log)."""
    if deadline is not None and time.time() >= deadline:
        return False, "the wait's deadline has passed: a timeout, not a user kill"
    known, state = await task_instance_state(trigger)
    if not known:
        return False, "the task instance's state cannot be read, so this may be a triggerer move"
    if state in STILL_WAITING:
        return False, "the task instance is still deferred: the trigger moved or restarted"
    return True, f"the task instance is now {state or 'cleared'}: a user action"
