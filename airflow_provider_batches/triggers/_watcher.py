"""One watcher per (connection, event loop): every wait of a connection shares its polls.

A wait calls :meth:`BatchWatcher.poll` with the longest gap it accepts and gets the batch as the
API reports it, from the watcher's next cycle. A cycle runs when the earliest wait is due and
covers the watched batches with as few requests as it can: list pages (the hook's
``batch_listing``: up to 1,000 batches each, newest first, read while that is cheaper than
retrieving what is left), then one retrieve per due batch the pages did not answer (an old
batch, a deleted one). Each answer goes to the waits of that batch only, a 404 included.

A listing concerns no single wait: when a page fails, or a guard ends the listing (page cap,
bad or repeated cursor, a page reaching no older batch than the last), the waits get what the
pages read answered and the due waits left are retrieved. After a failure, listing pauses
(:data:`LIST_PAUSE_FIRST`, doubling up to :data:`LIST_PAUSE_MAX`), so a server without the list
endpoint is served by retrieves alone. A cycle sends at most :data:`MAX_LIST_PAGES` list
requests and one retrieve per due batch (each with the connection's retries). Waits never own a
task: each one is a future the watcher resolves.

What a wait does with the batch (deadlines, expiry, error tolerance, the one event) stays in the
trigger; requests still go through the connection's budget (``_http/budget.py``). Time is read from
this module's ``time`` and waited out with its ``asyncio.sleep`` only, so a test can simulate
both.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref

from airflow_provider_batches.batch_ids import validate_batch_id
from airflow_provider_batches.exceptions import MessageBatchError
from airflow_provider_batches.hooks.batch import MAX_PAGE_SIZE, MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.telemetry import metrics

log = logging.getLogger(__name__)

#: Seconds a connection lookup is reused, so a rotated key is picked up this soon.
SETTINGS_TTL = 30.0
#: A wait that asks for an answer at once (a trigger's first poll) gets it this much later, so
#: that waits starting together (a triggerer taking over thousands) share the first cycle.
GATHER_SECONDS = 0.02
#: Seconds a batch can be in progress (``expires_at`` is creation + 24 h).
IN_PROGRESS_MAX_AGE = 86_400.0
#: Most list requests in one cycle (1,000 batches each), whatever the server's ``has_more``.
MAX_LIST_PAGES = 100
#: Seconds without listing after a failed listing; doubles with each one in a row (a server's
#: ``retry-after`` may ask for longer), up to LIST_PAUSE_MAX. A page that answers resets it.
LIST_PAUSE_FIRST = 30.0
LIST_PAUSE_MAX = 1800.0
#: Waits resumed per event-loop iteration when a cycle hands out batches.
HANDOUT_CHUNK = 200


class _Waiter(asyncio.Future[MessageBatch]):
    """One poll's answer, and the time by which a cycle must start for it.

    The future itself carries the time: one object per wait instead of two.
    """

    __slots__ = ("due",)

    def __init__(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        super().__init__(loop=loop)
        self.due = due


class BatchWatcher:
    """Polls the batches its waits ask for; one per (connection id, event loop)."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._waiting: dict[str, list[_Waiter]] = {}
        self._created_at: dict[str, float] = {}  # epoch seconds, for batches seen at least once
        self._page_floors: list[float] = []  # oldest created_at on each page, last listing
        self._items_per_second = 0.0  # batches per second of creation time, last listing
        self._list_failures = 0  # failed listings in a row
        self._list_paused_until = -math.inf  # monotonic time before which nothing is listed
        self._driver: asyncio.Task[None] | None = None
        self._cycle_task: asyncio.Task[None] | None = None
        self._retrieving: dict[str, asyncio.Task[None]] = {}
        self._nap: asyncio.Task[None] | None = None
        self._next_cycle_at = math.inf
        self._hook: MessageBatchHook | None = None
        self._settings_expire_at = 0.0
        self.lookups = 0
        self.cycles = 0

    def loaded_api_key(self) -> str:
        """The API key of the last lookup, else ``""`` (for redacting unexpected errors)."""
        return self._hook.loaded_api_key() if self._hook is not None else ""

    def waits(self) -> int:
        """How many waits wait for an answer now."""
        return sum(len(waiters) for waiters in self._waiting.values())

    async def poll(self, batch_id: str, within: float) -> MessageBatch:
        """The batch from a cycle starting at most ``within`` seconds from now (or sooner)."""
        validate_batch_id(batch_id)
        waiter = _Waiter(
            asyncio.get_running_loop(),
            time.monotonic() + (within if within > 0 else GATHER_SECONDS),
        )
        self._waiting.setdefault(batch_id, []).append(waiter)
        self._wake_for(waiter.due)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._forget(batch_id, waiter)
            raise

    def _forget(self, batch_id: str, waiter: _Waiter) -> None:
        waiters = self._waiting.get(batch_id)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                # Nobody waits for this batch any more: stop its request, freeing the socket.
                del self._waiting[batch_id]
                retrieve = self._retrieving.get(batch_id)
                if retrieve is not None:
                    retrieve.cancel()
                if not self._waiting and self._cycle_task is not None:
                    self._cycle_task.cancel()

    def _wake_for(self, due: float) -> None:
        if self._driver is None or self._driver.done():
            self._next_cycle_at = due
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        elif due < self._next_cycle_at and self._nap is not None:
            self._nap.cancel()  # the driver wakes and sleeps again, until the earlier due

    async def _drive(self) -> None:
        try:
            await self._drive_cycles()
        except Exception as error:  # a bug here must fail the waits, not leave them hanging
            log.error("Watcher for %s failed", self.conn_id, exc_info=error)
            await self._hand_out_error(list(self._waiting), error)
        finally:  # every wait is answered, or its loop is ending
            metrics.gauge("watcher.waits", 0, conn_id=self.conn_id)

    async def _drive_cycles(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            self._next_cycle_at = min(w.due for ws in self._waiting.values() for w in ws)
            delay = self._next_cycle_at - time.monotonic()
            if delay > 0:
                # Its own task, so that an earlier wait can cut it short (a cancelled nap ends
                # asyncio.wait quietly; a cancelled driver cancels its nap).
                nap = self._nap = loop.create_task(asyncio.sleep(delay))
                try:
                    await asyncio.wait({nap})
                finally:
                    nap.cancel()
                    self._nap = None
                if not nap.cancelled():
                    nap.result()  # a sleep that failed is the driver's failure
                continue
            self._next_cycle_at = -math.inf  # a cycle is running: new waits join the next
            # Its own task, so that it can be cancelled once nobody waits (freeing the socket)
            # without cancelling the driver.
            cycle = self._cycle_task = loop.create_task(self._cycle())
            try:
                await asyncio.wait({cycle})
            finally:
                cycle.cancel()
                self._cycle_task = None
            if not cycle.cancelled() and cycle.exception() is not None:
                error = cycle.exception()
                assert error is not None
                log.error("Watcher for %s: cycle failed", self.conn_id, exc_info=error)
                await self._hand_out_error(self._due_ids(time.monotonic()), error)

    def _due_ids(self, now: float) -> list[str]:
        return [b for b, ws in self._waiting.items() if any(w.due <= now for w in ws)]

    async def _connection(self) -> MessageBatchHook:
        """A hook with the connection's settings loaded: one lookup per TTL for every wait of
        this watcher (the driver runs one cycle at a time, so lookups never overlap)."""
        now = time.monotonic()
        if self._hook is None or now >= self._settings_expire_at:
            self.lookups += 1
            hook = MessageBatchHook(self.conn_id)
            await hook.asettings()
            self._hook = hook
            self._settings_expire_at = now + SETTINGS_TTL
        return self._hook

    async def _cycle(self) -> None:
        loop = asyncio.get_running_loop()
        self.cycles += 1
        metrics.gauge("watcher.waits", self.waits(), conn_id=self.conn_id)
        for batch_id in [b for b in self._created_at if b not in self._waiting]:
            del self._created_at[batch_id]
        due = self._due_ids(time.monotonic())
        try:
            hook = await self._connection()
        except Exception as error:  # a missing or invalid connection: each due wait decides
            await self._hand_out_error(due, error)
            return
        seen: dict[str, MessageBatch] = {}
        covered_since = await self._list(hook, seen)
        await self._hand_out(seen)
        missing = [b for b in due if b not in seen and b in self._waiting]
        if missing:
            self._note_uncovered(missing, covered_since)
            for batch_id in missing:
                retrieve = loop.create_task(self._retrieve_one(hook, batch_id))
                self._retrieving[batch_id] = retrieve
            try:
                await asyncio.gather(*self._retrieving.values(), return_exceptions=True)
            finally:
                for task in self._retrieving.values():
                    task.cancel()
                self._retrieving.clear()

    def _note_uncovered(self, missing: list[str], covered_since: float) -> None:
        for batch_id in missing:
            created = self._created_at.get(batch_id)
            if created is not None and created >= covered_since:
                log.info("Batch %s was not in the list pages (deleted?); retrieving it", batch_id)

    def _pages_needed(self, batch_id: str, pages_read: int, floor: float) -> float:
        """Estimated further list pages to reach this batch; inf when paging cannot help.

        Known batches are placed with the page boundaries of the last listing (new batches
        since then shift them by little), extrapolated with its density beyond them.
        """
        created = self._created_at.get(batch_id)
        if created is None:
            # Never seen: probably recent, so one page further, until the pages read reach
            # back a day (a batch in progress is at most 24 h old; an older one has ended, and
            # one retrieve answers for it).
            return 1.0 if floor > time.time() - IN_PROGRESS_MAX_AGE else math.inf
        if created >= floor:  # the pages read cover it, yet it was not there (deleted?)
            return math.inf
        floors = self._page_floors
        pages = next((i + 1 for i, f in enumerate(floors) if f <= created), None)
        if pages is None:
            if not floors or math.isinf(floors[-1]) or self._items_per_second <= 0:
                return 1.0  # nothing to place it by (no listing yet, or empty pages only)
            items = (floors[-1] - created) * self._items_per_second
            pages = len(floors) + math.ceil(items / MAX_PAGE_SIZE)
        return float(max(1, pages - pages_read))

    async def _list(self, hook: MessageBatchHook, seen: dict[str, MessageBatch]) -> float:
        """Read list pages while cheaper than retrieving, into ``seen``; returns the oldest
        created_at they cover (-inf: every batch the API lists; inf: none read)."""
        if time.monotonic() < self._list_paused_until:
            return math.inf
        floors: list[float] = []
        newest = floor = math.inf
        read = 0
        listing = hook.batch_listing(MAX_PAGE_SIZE, MAX_LIST_PAGES)
        while self._another_page_pays(seen, len(floors), floor):
            try:
                page = await anext(listing)
            except StopAsyncIteration:  # a guard ended it: the rest is retrieved
                break
            except Exception as error:  # a failed page is charged to no wait
                self._pause_listing(error)
                break
            self._list_failures = 0
            metrics.count("watcher.list_pages", 1, conn_id=self.conn_id)
            reached = floor
            for batch in page.batches:
                created = batch.created_at.timestamp()
                newest = created if read == 0 else newest
                floor = min(floor, created)
                read += 1
                if batch.id in self._waiting:
                    seen[batch.id] = batch
                    self._created_at[batch.id] = created
            # What this listing learnt replaces the last one's boundaries, page by page.
            floors.append(floor)
            self._page_floors = floors + self._page_floors[len(floors) :]
            if newest > floor:
                self._items_per_second = read / (newest - floor)
            if floor >= reached:  # no batch older than the last page's: paging on gains nothing
                break
        return -math.inf if listing.complete else floor

    def _another_page_pays(
        self, seen: dict[str, MessageBatch], pages_read: int, floor: float
    ) -> bool:
        # Every watched batch counts, due or not: a page answers those due later too, which
        # puts all the waits on one cadence instead of a request each.
        wanted = [b for b in self._waiting if b not in seen]
        return pages_worth([self._pages_needed(b, pages_read, floor) for b in wanted]) >= 1

    def _pause_listing(self, error: Exception) -> None:
        """No listing for a while; the due waits the pages did not answer are retrieved."""
        self._list_failures += 1
        pause = min(LIST_PAUSE_FIRST * 2.0 ** min(self._list_failures - 1, 30), LIST_PAUSE_MAX)
        pause = max(pause, getattr(error, "retry_after", None) or 0.0)
        self._list_paused_until = time.monotonic() + pause
        log.warning(
            "Listing the batches of %s failed (%d in a row): retrieving the due batches instead, "
            "and listing again in %.0f s at the earliest: %s",
            self.conn_id,
            self._list_failures,
            pause,
            error,
            exc_info=None if isinstance(error, MessageBatchError) else error,
        )

    async def _retrieve_one(self, hook: MessageBatchHook, batch_id: str) -> None:
        metrics.count("watcher.retrieves", 1, conn_id=self.conn_id)
        try:
            batch = await hook.aretrieve_batch(batch_id)
        except Exception as error:
            await self._hand_out_error([batch_id], error)
        else:
            self._created_at[batch_id] = batch.created_at.timestamp()
            await self._hand_out({batch_id: batch})

    async def _hand_out(self, batches: dict[str, MessageBatch]) -> None:
        resumed = 0
        for batch_id, batch in batches.items():
            for waiter in self._waiting.pop(batch_id, ()):
                if not waiter.done():
                    waiter.set_result(batch)
                    resumed += 1
            if resumed >= HANDOUT_CHUNK:  # let those waits run before waking more
                resumed = 0
                await asyncio.sleep(0)

    async def _hand_out_error(self, batch_ids: list[str], error: BaseException) -> None:
        resumed = 0
        for batch_id in batch_ids:
            for waiter in self._waiting.pop(batch_id, ()):
                if not waiter.done():
                    waiter.set_exception(error)
                    resumed += 1
            if resumed >= HANDOUT_CHUNK:
                resumed = 0
                await asyncio.sleep(0)


def pages_worth(needed: list[float]) -> int:
    """How many more pages to read, given the pages each wanted batch still needs.

    Reading ``k`` pages costs ``k`` requests and saves a retrieve for every batch that needs at
    most ``k``; the cheapest ``k`` wins, and on a tie the fewer pages (a retrieve is exact).
    """
    finite = sorted(n for n in needed if n != math.inf)
    best_pages, best_cost = 0, float(len(needed))
    for covered, pages in enumerate(finite, start=1):
        cost = pages + len(needed) - covered
        if cost < best_cost:
            best_pages, best_cost = int(pages), cost
    return best_pages


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BatchWatcher]] = (
    weakref.WeakKeyDictionary()
)


def watcher_for(conn_id: str) -> BatchWatcher:
    """The running loop's watcher of ``conn_id``, created on first use."""
    watchers = _watchers.setdefault(asyncio.get_running_loop(), {})
    watcher = watchers.get(conn_id)
    if watcher is None:
        watcher = watchers[conn_id] = BatchWatcher(conn_id)
    return watcher
