"""A request body sent from a replayable source with a known length, never held whole.

Each attempt of the send loop asks the :class:`RequestContent` for its chunks anew, from the
first byte: a retried request (a create answered 429 or 529) sends the same bytes again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol


class RequestContent(Protocol):
    """A body that can be read again from its start, any number of times."""

    @property
    def content_type(self) -> str: ...

    @property
    def length(self) -> int: ...

    def chunks(self) -> Iterator[bytes]:
        """The body from its first byte, in pieces; exactly ``length`` bytes in all."""
        ...


async def achunks(content: RequestContent) -> AsyncIterator[bytes]:
    """:meth:`RequestContent.chunks` for an async client (the pieces come from a local spool:
    each read is short)."""
    for chunk in content.chunks():
        yield chunk
