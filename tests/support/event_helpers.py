"""Running a MessageBatchEventTrigger in the test's loop, and the smallest real state-store shim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_batches.triggers.events import MessageBatchEventTrigger

#: Seconds a cancelled trigger gets to stop before the test fails (instead of hanging).
STOP_GUARD = 30.0


class RunningTrigger:
    """``trigger.run()`` driven in a task; events collect in ``payloads``."""

    def __init__(self, trigger: MessageBatchEventTrigger) -> None:
        self.trigger = trigger
        self.payloads: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._agen = trigger.run()

    async def __aenter__(self) -> RunningTrigger:
        self._task = asyncio.create_task(self._consume())
        return self

    async def _consume(self) -> None:
        async for event in self._agen:
            self.payloads.append(event.payload)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        # A hang guard, not a timing assertion: a trigger that swallows its cancel fails here.
        done, _ = await asyncio.wait({self._task}, timeout=STOP_GUARD)
        if not done:
            where = self._agen_position()
            self._task.cancel()
            raise AssertionError(
                f"the trigger did not stop within {STOP_GUARD}s of being cancelled: its run() "
                f"is at {where} (a lost cancel: it went on polling). Events: {self.payloads}"
            )
        if not self._task.cancelled():
            self._task.result()  # the trigger's own error, if it failed
            raise AssertionError("the trigger ended without raising CancelledError when cancelled")

    def _agen_position(self) -> str:
        frame = getattr(self._agen, "ag_frame", None)
        if frame is None:
            return "no frame"
        return f"{frame.f_code.co_filename}:{frame.f_lineno}"

    def ids(self) -> list[str]:
        return [payload["id"] for payload in self.payloads]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait (a hang guard, not a timing assertion) until ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self._task is not None
            if self._task.done():
                self._task.result()
                raise AssertionError("the trigger stopped")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s: {self.payloads}")
            await asyncio.sleep(0.01)


class DictSupervisorComms:
    """Answers the asset state store messages of the real ``AssetStateStoreAccessor`` from a
    dict, as the triggerer's supervisor answers them from the metadata DB.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.writes = 0
        #: Called on every write, to observe what had happened by then.
        self.on_write: Callable[[], None] = lambda: None

    def _answer(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import (
            AssetStateStoreResult,
            ErrorResponse,
            GetAssetStateStoreByName,
            SetAssetStateStoreByName,
        )

        if isinstance(msg, GetAssetStateStoreByName):
            key = (msg.name, msg.key)
            if key not in self.values:
                return ErrorResponse(error=ErrorType.ASSET_STORE_NOT_FOUND, detail={"key": msg.key})
            return AssetStateStoreResult(value=self.values[key])
        if isinstance(msg, SetAssetStateStoreByName):
            self.values[(msg.name, msg.key)] = msg.value
            self.writes += 1
            self.on_write()
            return None
        raise AssertionError(f"unexpected message {msg!r}")

    def send(self, msg: Any) -> Any:
        return self._answer(msg)

    async def asend(self, msg: Any) -> Any:
        return self._answer(msg)


def attach_asset_state_store(trigger: MessageBatchEventTrigger, *asset_names: str) -> None:
    """What the 3.3 triggerer does before ``run()`` for a trigger watching these assets."""
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors

    trigger.asset_state_store = AssetStateStoreAccessors(
        inlets=[Asset(name=name, uri=f"batches://{name}") for name in asset_names]
    )
