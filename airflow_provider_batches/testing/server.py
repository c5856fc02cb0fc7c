"""``FakeBatchesServer``: the fake API on a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from ._app import FakeApp
from ._state import DEFAULT_EXPIRES_AFTER, FakeState
from ._types import AnswerHook, Fault, ListHook, RecordedRequest

_START_TIMEOUT = 10.0


class FakeBatchesServer:
    """A real HTTP/1.1 server on loopback that speaks the Message Batches API.

    Use as a context manager (``with FakeBatchesServer() as fake:``) or call
    :meth:`start` and :meth:`close`. Control methods act on the shared state directly and
    are safe to call from any thread.
    """

    def __init__(
        self,
        api_key: str = "sk-ant-test-key",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_seconds: float = 2.0,
        *,
        allow_non_loopback: bool = False,
        backlog: int = 4096,
        max_recorded_requests: int | None = 100_000,
        rate_limit_per_minute: float | None = None,
        rate_limit_burst: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = api_key
        self._host = host
        self._port = port
        self._state = FakeState(
            processing_seconds=processing_seconds,
            latency=latency,
            clock=clock,
            max_recorded_requests=max_recorded_requests,
        )
        self._state.rate_limit.configure(rate_limit_per_minute, rate_limit_burst)
        self._app = FakeApp(
            self._state, api_key, backlog=backlog, allow_non_loopback=allow_non_loopback
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeBatchesServer:
        """Start serving; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeBatchesServer already started")
        self._thread = threading.Thread(target=self._run, name="fake-batches-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("FakeBatchesServer did not start in time")
        if self._startup_error is not None:
            self._thread.join(_START_TIMEOUT)
            self._thread = None
            raise self._startup_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self._app.start(self._host, self._port)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._app.close()

    def close(self) -> None:
        """Stop serving and close every client connection. Safe to call twice."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        thread.join(_START_TIMEOUT)
        self._thread = None

    def __enter__(self) -> FakeBatchesServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no trailing slash); empty until started."""
        return self._app.base_url

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1]) if self.base_url else 0

    # ---- batches ---------------------------------------------------------------------------

    def create_batch(
        self,
        num_requests: int = 10,
        ends_after: float | None = 2.0,
        outcomes: dict[str, int] | None = None,
        batch_id: str | None = None,
        expires_after: float = DEFAULT_EXPIRES_AFTER,
        archive_after: float | None = None,
        cancel_delay: float | None = 1.0,
        custom_ids: Sequence[str] | None = None,
        *,
        models: Sequence[str] | None = None,
        response_chars: int | None = None,
        error_types: Sequence[str] | None = None,
        results_base_url: str | None = None,
        contents: Sequence[Sequence[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Add a batch and return its JSON exactly as a GET would now.

        ``ends_after``: seconds until processing ends (None = never by itself).
        ``outcomes``: counts by result type applied at the end (None = all succeeded).
        ``expires_after``: seconds until expiry; expiring first ends it with all expired.
        ``archive_after``: seconds until archived (results then 404).
        ``cancel_delay``: seconds spent canceling once canceled (None = forever).
        ``custom_ids``: ids for the results lines (default ``request-0``, ``request-1``...).
        ``models``: the model named in each succeeded message.
        ``response_chars``: length of each succeeded message's text, to make large results
        (generated lazily while served: 100,000 results of 2,600 chars are about 300 MB).
        ``error_types``: ``error.type`` values the errored results cycle through.
        ``results_base_url``: serve ``results_url`` on this base URL instead of the fake's own.
        ``contents``: the ``content`` blocks of the succeeded messages (text, ``tool_use``...),
        cycled over the requests by index (request ``i`` gets ``contents[i % len(contents)]``);
        instead of the generated text.
        """
        return self._state.create_batch(
            num_requests=num_requests,
            ends_after=ends_after,
            outcomes=outcomes,
            batch_id=batch_id,
            expires_after=expires_after,
            archive_after=archive_after,
            cancel_delay=cancel_delay,
            custom_ids=custom_ids,
            models=models,
            response_chars=response_chars,
            error_types=error_types,
            results_base_url=results_base_url,
            contents=contents,
        )

    def create_batches_bulk(
        self, count: int, ends_after_min: float, ends_after_max: float, num_requests: int = 1
    ) -> dict[str, Any]:
        """Create ``count`` batches ending evenly spread between min and max seconds."""
        ids, ends_at = self._state.create_bulk(count, ends_after_min, ends_after_max, num_requests)
        return {"ids": ids, "ends_at": ends_at}

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """The batch JSON as the API would serve it now (raises FakeApiError if unknown)."""
        return self._state.get_batch(batch_id)

    def end_batch(self, batch_id: str) -> dict[str, Any]:
        """Force processing to end now: outcomes apply (all canceled if it was canceling)."""
        return self._state.end_batch(batch_id)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Cancel as the API would (raises FakeApiError if the batch already ended)."""
        return self._state.cancel_batch(batch_id)

    def delete_batch(self, batch_id: str) -> dict[str, Any]:
        """Delete an ended batch as the API would (raises FakeApiError while it processes)."""
        return self._state.delete_batch(batch_id)

    def set_status_override(self, batch_id: str, status: str | None) -> None:
        """Serve ``status`` as ``processing_status`` (None restores the real one)."""
        self._state.set_status_override(batch_id, status)

    # ---- faults, latency, observations -----------------------------------------------------

    def inject_fault(self, fault: Fault) -> None:
        """Queue ``fault``; the first queued fault matching a request applies to it."""
        self._state.inject_fault(fault)

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def set_list_hook(self, hook: ListHook | None) -> None:
        """Answer ``GET /v1/messages/batches`` through ``hook(query, page)`` (None: faithfully
        again). ``query`` holds the request's parameters (``after_id``, ``limit``...), ``page``
        the page the fake would send. The hook returns None to send that page, a JSON value or
        bytes to send with status 200 instead, or raises ``FakeApiError`` to answer that error.
        It runs on the server's event loop (keep it quick), after faults and only for valid
        requests; ``reset()`` removes it."""
        self._state.list_hook = hook

    def set_answer_hook(self, hook: AnswerHook | None) -> None:
        """Answer the requests of batches created through the API with ``hook(custom_id,
        params)``: the content blocks of that request's succeeded answer (a ``tool_use`` block
        for a forced tool, a text block of JSON, ...), or None for the fake's own text answer.
        None turns it off. It runs on the server's event loop when the create arrives (keep it
        quick); blocks it returns are checked as ``create_batch(contents=...)`` checks them, a
        ``FakeApiError`` it raises answers the create with that error, and ``reset()`` removes
        it. Batches added with ``create_batch`` keep their own ``contents``."""
        self._state.answer_hook = hook

    def set_latency(self, seconds: float) -> None:
        """Delay every API response by ``seconds`` (without blocking other clients)."""
        self._state.set_latency(seconds)

    def set_rate_limit(
        self, per_minute: float | None, burst: float | None = None, limit_headers: bool = True
    ) -> None:
        """Enforce ``per_minute`` requests per API key with a token bucket of ``burst``
        (default: a minute's worth; ``per_minute / 60`` enforces it over one second); None
        turns the rate-limit mode off. Buckets start full. ``limit_headers=False`` answers
        without the ``anthropic-ratelimit-requests-*`` headers (429s keep ``retry-after``)."""
        self._state.rate_limit.configure(per_minute, burst, limit_headers)

    @property
    def rate_limited(self) -> int:
        """429 ``rate_limit_error`` answers sent so far."""
        return self._state.rate_limit.rejected

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request received so far (admin requests excluded), oldest first."""
        return self._state.recorded()

    def request_count(self, batch_id: str | None = None, method: str | None = None) -> int:
        """API requests targeting ``batch_id`` (None = any) with ``method`` (None = any)."""
        return self._state.request_count(batch_id, method)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far (API and admin)."""
        return self._state.connections_opened

    @property
    def open_connections(self) -> int:
        """TCP connections currently open."""
        return self._app.open_connections

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    def reset(self) -> None:
        """Drop batches, faults, the request log and counters."""
        self._state.reset()
