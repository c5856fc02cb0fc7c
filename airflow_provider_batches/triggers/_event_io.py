"""I/O for MessageBatchEventTrigger: one list page, and the watermark in ``asset_state_store``.

:func:`alist_page` is the trigger's only API call. It goes through the transport, so it spends
the connection's request budget; the page is checked with the watcher's helpers
(``watch_pages``), more strictly: a page that is too long or has a malformed cursor is refused,
since the trigger's watermark depends on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from airflow_provider_batches.clients import shared_async_pool
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.transport import ApiRequest, ResponseLike, asend, invalid_response
from airflow_provider_batches.triggers._event_window import Watermark
from airflow_provider_batches.watch_pages import batches_in, page_body

log = logging.getLogger(__name__)

__all__ = [
    "ListPage",
    "WatermarkStore",
    "alist_page",
    "asset_state_accessors",
]


@dataclass(frozen=True)
class ListPage:
    """One page of ``GET /v1/messages/batches``, newest first; ``skipped`` counts entries that
    are not valid batches (logged, never emitted).
    """

    batches: list[MessageBatch]
    has_more: bool
    last_id: str | None
    skipped: int = 0


async def alist_page(hook: MessageBatchHook, after_id: str | None, limit: int) -> ListPage:
    """``GET /v1/messages/batches?limit=&after_id=`` on the loop's shared pool, with the
    transport's retries (backoff, ``retry-after``).
    """
    settings = await hook.asettings()
    query: dict[str, Any] = {"limit": limit}
    if after_id is not None:
        query["after_id"] = after_id
    request = ApiRequest("GET", f"{settings.batches_url()}?{urlencode(query)}")
    pool = shared_async_pool(settings)

    def parse(response: ResponseLike, request: ApiRequest, secret: str) -> ListPage:
        return _parse_page(response, request, secret, limit)

    return await asend(pool.client, pool.gate, settings, request, parse)


def _parse_page(response: ResponseLike, request: ApiRequest, secret: str, limit: int) -> ListPage:
    body, data = page_body(response, request, secret)
    if len(data) > limit:
        raise invalid_response(
            response, request, secret, f"{len(data)} batches on a page of at most {limit}"
        )
    has_more, last_id = body.get("has_more"), body.get("last_id")
    if not isinstance(has_more, bool) or not (last_id is None or isinstance(last_id, str)):
        raise invalid_response(response, request, secret, "has_more or last_id is malformed")
    batches, skipped = batches_in(data)
    return ListPage(batches, has_more, last_id, skipped)


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
