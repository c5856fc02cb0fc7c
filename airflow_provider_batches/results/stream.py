"""The hook's results methods: resolve the batch and the connection, then read its lines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator
from typing import TYPE_CHECKING

from airflow_provider_batches.clients import shared_async_pool, shared_sync_client
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results.lines import DEFAULT_MAX_LINE_BYTES, ResultLine
from airflow_provider_batches.results.reader import aiter_result_lines, iter_result_lines

if TYPE_CHECKING:
    from airflow_provider_batches.hooks.batch import MessageBatchHook


def resolve_batch(hook: MessageBatchHook, batch: str | MessageBatch) -> MessageBatch:
    return batch if isinstance(batch, MessageBatch) else hook.retrieve_batch(batch)


def _line_bound(max_line_bytes: int | None) -> int:
    if max_line_bytes is None:
        return DEFAULT_MAX_LINE_BYTES
    if type(max_line_bytes) is not int or max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be a positive integer, got {max_line_bytes!r}.")
    return max_line_bytes


def iter_batch_results(
    hook: MessageBatchHook,
    batch: str | MessageBatch,
    *,
    allowed_results_hosts: Collection[str] = (),
    max_line_bytes: int | None = None,
) -> Iterator[ResultLine]:
    bound = _line_bound(max_line_bytes)
    ended = resolve_batch(hook, batch)
    settings = hook.settings
    yield from iter_result_lines(
        shared_sync_client(settings),
        settings,
        ended,
        allowed_hosts=(*settings.results_hosts, *allowed_results_hosts),
        max_line_bytes=bound,
    )


async def aiter_batch_results(
    hook: MessageBatchHook,
    batch: str | MessageBatch,
    *,
    allowed_results_hosts: Collection[str] = (),
    max_line_bytes: int | None = None,
) -> AsyncIterator[ResultLine]:
    bound = _line_bound(max_line_bytes)
    ended = batch if isinstance(batch, MessageBatch) else await hook.aretrieve_batch(batch)
    settings = await hook.asettings()
    async for line in aiter_result_lines(
        shared_async_pool(settings),
        settings,
        ended,
        allowed_hosts=(*settings.results_hosts, *allowed_results_hosts),
        max_line_bytes=bound,
    ):
        yield line
