"""Test an event-driven DAG without a triggerer: run the event trigger, then the DAG on its events.

``dag.test()`` does not run an ``AssetWatcher``. :func:`events_from` runs the watcher's trigger
(``MessageBatchEventTrigger``, pointed at the fake) in this process and returns the payloads it
yields; :func:`run_dag_with_asset_events` then runs the consuming DAG with ``dag.test()`` as if
those payloads had arrived as asset events, so its tasks see them in
``triggering_asset_events[asset]`` with ``event.extra["payload"]``, as in a deployment.

Airflow is imported only when these are called: importing :mod:`airflow_provider_batches.testing`
stays cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["events_from", "run_dag_with_asset_events"]


def events_from(
    trigger: Any,
    *,
    max_events: int | None = None,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Run ``trigger`` (an event trigger such as ``MessageBatchEventTrigger``) in a new event
    loop and return the payloads of the events it yields, in order.

    It stops after ``max_events`` events, as soon as ``until(payloads)`` is true, or after
    ``timeout`` seconds, whichever comes first: a trigger that yields nothing returns ``[]``
    after ``timeout``, so checking that an event does *not* come costs the whole timeout. The
    trigger's ``cleanup()`` runs at the end, as in a triggerer. Without an asset state store
    (there is none outside a triggerer) the trigger starts from its ``lookback`` window.
    """
    if max_events is not None and max_events < 1:
        raise ValueError(f"max_events must be at least 1, got {max_events}.")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}.")
    payloads: list[dict[str, Any]] = []

    def done() -> bool:
        if max_events is not None and len(payloads) >= max_events:
            return True
        return until is not None and until(list(payloads))

    async def collect() -> None:
        events = trigger.run()
        try:
            async for event in events:
                payloads.append(event.payload)
                if done():
                    return
        finally:
            await events.aclose()

    async def main() -> None:
        try:
            await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            await trigger.cleanup()

    asyncio.run(main())
    return payloads


def run_dag_with_asset_events(
    dag: Any, asset: Any, payloads: Sequence[dict[str, Any]], **test_kwargs: Any
) -> Any:
    """``dag.test(**test_kwargs)``, its run triggered by one asset event on ``asset`` per payload
    (``extra={"from_trigger": True, "payload": payload}``, what a watcher's event carries).

    The DAG must be loadable by ``dag.test()`` (a file in a configured DAG bundle, a migrated
    metadata DB), and ``asset`` one it is scheduled on. Returns the DAG run. Airflow 3.0 to 3.3.
    """
    events = [{"from_trigger": True, "payload": dict(payload)} for payload in payloads]
    with _attach_events_to_test_run(asset, events):
        return dag.test(**test_kwargs)


@contextmanager
def _attach_events_to_test_run(asset: Any, extras: list[dict[str, Any]]) -> Iterator[None]:
    """While inside, the DAG run ``dag.test()`` creates consumes one new asset event per extra.

    ``dag.test()`` creates its run through ``get_or_create_dagrun`` (``airflow.models.dagrun``
    from Airflow 3.1; ``airflow.models.dag`` in 3.0): wrapped here for the call's duration.
    """
    from airflow.models import dagrun as dagrun_module

    target: Any = dagrun_module
    name = "get_or_create_dagrun"
    if not hasattr(target, name):  # Airflow 3.0
        from airflow.models import dag as dag_module

        target, name = dag_module, "_get_or_create_dagrun"
    original = getattr(target, name)

    def with_events(*args: Any, **kwargs: Any) -> Any:
        run = original(*args, **kwargs)
        session = kwargs.get("session")
        if session is None:
            raise RuntimeError("dag.test() created its run without a session to add events in.")
        _add_events(session, run, asset, extras)
        return run

    setattr(target, name, with_events)
    try:
        yield
    finally:
        setattr(target, name, original)


def _add_events(session: Any, run: Any, asset: Any, extras: list[dict[str, Any]]) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    model = session.scalar(
        select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri)
    )
    if model is None:
        raise ValueError(
            f"Asset {asset.name!r} ({asset.uri}) is not in the metadata DB: pass an asset the "
            "DAG under test is scheduled on."
        )
    events = [AssetEvent(asset_id=model.id, extra=extra) for extra in extras]
    session.add_all(events)
    session.flush()
    run.consumed_asset_events.extend(events)
    session.flush()
