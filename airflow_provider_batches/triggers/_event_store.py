"""The watermark of MessageBatchEventTrigger, in ``asset_state_store`` (Airflow 3.3+).

The trigger's only API call, listing batches, is the hook's ``batch_listing``.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_batches.triggers._event_window import Watermark

log = logging.getLogger(__name__)

__all__ = ["WatermarkStore", "asset_state_accessors"]


# asset_state_store arrived in Airflow 3.3: the triggerer sets ``trigger.asset_state_store``
# to an ``AssetStateStoreAccessors`` over the watched assets. Older releases never set it.
def asset_state_accessors(trigger: object) -> list[Any]:
    """One accessor per watched asset (3.3+), or ``[]`` where there is no asset state store."""
    store = getattr(trigger, "asset_state_store", None)
    if store is None:
        return []
    # The accessors' mapping has no public iteration; one trigger row may watch several assets.
    by_name = getattr(store, "_by_name", None)
    by_uri = getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict):
        return [*by_name.values(), *by_uri.values()]
    return [store]


class WatermarkStore:
    """The watermark in every watched asset's state store under one key (3.3+); a no-op store
    when there is none. Read and write failures are logged, never raised: the trigger then
    falls back to its lookback window, or tries the write again after its next poll.
    """

    def __init__(self, accessors: list[Any], key: str) -> None:
        self.accessors = accessors
        self.key = key
        self.saved: Watermark | None = None

    @property
    def available(self) -> bool:
        return bool(self.accessors)

    async def load(self) -> Watermark | None:
        marks: list[Watermark] = []
        for accessor in self.accessors:
            try:
                value = await accessor.aget(self.key)
            except Exception as exc:  # any failure of the store means: no watermark
                log.warning("Could not read the watermark %r: %s", self.key, exc)
                return None
            mark = Watermark.from_json(value)
            if mark is None:
                if value is not None:
                    log.warning("Ignoring a watermark %r this version cannot read.", self.key)
                return None  # an asset without one: the lookback window applies to all
            marks.append(mark)
        self.saved = Watermark.earliest(marks)
        return self.saved

    async def save(self, mark: Watermark) -> None:
        if mark == self.saved:
            return
        try:
            for accessor in self.accessors:
                await accessor.aset(self.key, mark.to_json())
        except Exception as exc:  # the next poll writes it again
            log.warning("Could not write the watermark %r: %s", self.key, exc)
            return
        self.saved = mark
