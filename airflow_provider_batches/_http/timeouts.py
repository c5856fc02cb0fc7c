"""A time bound for awaitables that never loses a cancellation of the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable``, raising ``asyncio.TimeoutError`` once ``timeout`` seconds pass.

    Unlike ``asyncio.wait_for`` before Python 3.12, a cancellation of the calling task always
    raises ``CancelledError``: that ``wait_for`` returns the result instead when the awaitable
    finished in the same loop step as the cancel, so a trigger the triggerer cancels while one
    of its requests completes would go on polling forever. Like ``wait_for``, the awaitable has
    stopped (finished or cancelled) by the time this returns or raises.
    """
    inner = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        await _stop(inner)
        raise
    if not inner.done():
        await _stop(inner)
        raise asyncio.TimeoutError
    return inner.result()


async def _stop(inner: asyncio.Future[T]) -> None:
    """Cancel ``inner`` and wait until it has ended, whatever it ends with."""
    inner.cancel()
    try:
        await asyncio.wait({inner})
    finally:
        if inner.done() and not inner.cancelled():
            inner.exception()  # retrieved: it was abandoned, not lost silently
