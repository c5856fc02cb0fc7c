"""Thread-safe state of the fake: batch store, faults, request log and counters.

Shared between the server's event-loop thread and the thread that drives a test, so every
public method takes the lock. Nothing here does I/O.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from ._batches import MAX_REQUESTS, BatchRecord, normalize_outcomes
from ._ids import new_batch_id
from ._options import check_results_options, optional_seconds, required_seconds, validate_batch_id
from ._ratelimit import RateLimiter
from ._results import ResultsSpec
from ._types import AnswerHook, FakeApiError, Fault, ListHook, RecordedRequest

DEFAULT_EXPIRES_AFTER = 86_400.0


class _FaultSlot:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times


class FakeState:
    """Everything the fake knows. ``base_url`` is set once the server is listening."""

    def __init__(
        self,
        *,
        processing_seconds: float = 2.0,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        max_recorded_requests: int | None = 100_000,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.processing_seconds = required_seconds("processing_seconds", processing_seconds)
        self._latency = required_seconds("latency", latency)
        self.base_url = ""
        self._batches: dict[str, BatchRecord] = {}
        self._faults: list[_FaultSlot] = []
        self._log: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._by_method: Counter[str] = Counter()
        self._by_batch: Counter[tuple[str, str]] = Counter()
        self._total_requests = 0
        self._connections_opened = 0
        self.rate_limit = RateLimiter(clock)
        #: Answers list requests in place of the faithful page (see FakeBatchesServer).
        self.list_hook: ListHook | None = None
        self.answer_hook: AnswerHook | None = None

    def now(self) -> float:
        """The fake's clock (epoch seconds): ``created_at``, processing and ``Date`` follow it."""
        return self._clock()

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
        models: Sequence[str] | None = None,
        response_chars: int | None = None,
        error_types: Sequence[str] | None = None,
        results_base_url: str | None = None,
        contents: Sequence[Sequence[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Add a batch (see ``FakeBatchesServer.create_batch``); returns its JSON."""
        checked = normalize_outcomes(num_requests, outcomes)
        if num_requests > MAX_REQUESTS:
            raise ValueError(f"num_requests must be <= {MAX_REQUESTS}")
        ends = optional_seconds("ends_after", ends_after)
        expires = required_seconds("expires_after", expires_after)
        archive = optional_seconds("archive_after", archive_after)
        delay = optional_seconds("cancel_delay", cancel_delay)
        for name, values in (("custom_ids", custom_ids), ("models", models)):
            if values is not None and len(values) != num_requests:
                raise ValueError(f"{name} must have num_requests ({num_requests}) entries")
        if batch_id is not None:
            validate_batch_id(batch_id)
        check_results_options(response_chars, error_types, results_base_url, contents)
        with self._lock:
            now = self._clock()
            if batch_id is None:
                batch_id = new_batch_id()
            elif batch_id in self._batches:
                raise ValueError(f"a batch with id {batch_id!r} already exists")
            record = BatchRecord(
                id=batch_id,
                num_requests=num_requests,
                created_at=now,
                ends_at=None if ends is None else now + ends,
                expires_at=now + expires,
                archive_at=None if archive is None else now + archive,
                cancel_delay=delay,
                outcomes=checked,
                custom_ids=None if custom_ids is None else list(custom_ids),
                models=None if models is None else list(models),
                response_chars=response_chars,
                error_types=None if error_types is None else tuple(error_types),
                results_base_url=None if results_base_url is None else results_base_url.rstrip("/"),
                contents=None if contents is None else [list(blocks) for blocks in contents],
            )
            record.advance(now)
            self._batches[batch_id] = record
            return record.to_json(self.base_url, now)

    def create_bulk(
        self, count: int, ends_after_min: float, ends_after_max: float, num_requests: int = 1
    ) -> tuple[list[str], dict[str, float]]:
        """Create ``count`` batches whose ends are spread evenly over [min, max] seconds."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        low = required_seconds("ends_after_min", ends_after_min)
        high = required_seconds("ends_after_max", ends_after_max)
        if high < low:
            raise ValueError("ends_after_max must be >= ends_after_min")
        ids: list[str] = []
        ends_at: dict[str, float] = {}
        for index in range(count):
            offset = low if count == 1 else low + (high - low) * index / (count - 1)
            batch = self.create_batch(num_requests=num_requests, ends_after=offset)
            with self._lock:
                record = self._batches[batch["id"]]
                assert record.ends_at is not None
                ends_at[record.id] = record.ends_at
            ids.append(batch["id"])
        return ids, ends_at

    def _get(self, batch_id: str, now: float) -> BatchRecord:
        record = self._batches.get(batch_id)
        if record is None:
            raise FakeApiError(404, f"No message batch found with id {batch_id!r}.")
        record.advance(now)
        return record

    def has_batch(self, batch_id: str) -> bool:
        with self._lock:
            return batch_id in self._batches

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            return self._get(batch_id, now).to_json(self.base_url, now)

    def end_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            record = self._get(batch_id, now)
            record.force_end(now)
            return record.to_json(self.base_url, now)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            record = self._get(batch_id, now)
            if not record.cancel(now):
                raise FakeApiError(
                    400, f"Message batch {batch_id!r} has already ended and cannot be canceled."
                )
            return record.to_json(self.base_url, now)

    def delete_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            record = self._get(batch_id, now)
            if not record.ended:
                raise FakeApiError(
                    400,
                    f"Message batch {batch_id!r} cannot be deleted while it is still "
                    "processing; cancel it first and wait for processing to end.",
                )
            del self._batches[batch_id]
            return {"id": batch_id, "type": "message_batch_deleted"}

    def set_status_override(self, batch_id: str, status: str | None) -> None:
        with self._lock:
            self._get(batch_id, self._clock()).status_override = status

    def results(self, batch_id: str) -> ResultsSpec:
        """What the JSONL results hold, or a FakeApiError (404 unknown/archived, 400 not ended)."""
        with self._lock:
            now = self._clock()
            record = self._get(batch_id, now)
            if record.archived(now):
                raise FakeApiError(
                    404, f"Results for message batch {batch_id!r} are no longer available."
                )
            if not record.ended:
                raise FakeApiError(
                    400,
                    f"Message batch {batch_id!r} is still processing; results are available "
                    "once processing has ended.",
                )
            return record.results_spec()

    def placeholder_batch(self, batch_id: str | None) -> dict[str, Any]:
        """JSON of ``batch_id`` if it exists, else of an unsaved in-progress batch."""
        with self._lock:
            now = self._clock()
            if batch_id is not None and batch_id in self._batches:
                return self._get(batch_id, now).to_json(self.base_url, now)
            record = BatchRecord(
                id=batch_id or new_batch_id(),
                num_requests=1,
                created_at=now,
                ends_at=None,
                expires_at=now + DEFAULT_EXPIRES_AFTER,
                archive_at=None,
                cancel_delay=None,
                outcomes=normalize_outcomes(1, None),
            )
            return record.to_json(self.base_url, now)

    def list_batches(
        self, limit: int = 20, before_id: str | None = None, after_id: str | None = None
    ) -> dict[str, Any]:
        """One page, newest first, with the API's cursor semantics."""
        with self._lock:
            now = self._clock()
            ordered = list(reversed(self._batches.values()))
            ids = [record.id for record in ordered]
            if after_id is not None:
                start = ids.index(after_id) + 1 if after_id in ids else len(ids)
                page = ordered[start : start + limit]
                has_more = start + limit < len(ordered)
            elif before_id is not None:
                stop = ids.index(before_id) if before_id in ids else 0
                start = max(0, stop - limit)
                page = ordered[start:stop]
                has_more = start > 0
            else:
                page = ordered[:limit]
                has_more = len(ordered) > limit
            data = []
            for record in page:
                record.advance(now)
                data.append(record.to_json(self.base_url, now))
        return {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    # ---- faults ----------------------------------------------------------------------------

    def inject_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_FaultSlot(fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(
        self, method: str, batch_id: str | None, endpoint: str | None = None
    ) -> Fault | None:
        """The first queued fault matching this request, using up one of its ``times``."""
        with self._lock:
            for slot in self._faults:
                if slot.fault.matches(method, batch_id, endpoint):
                    if slot.remaining > 0:
                        slot.remaining -= 1
                        if slot.remaining == 0:
                            self._faults.remove(slot)
                    return slot.fault
        return None

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # ---- latency, request log, counters ----------------------------------------------------

    @property
    def latency(self) -> float:
        return self._latency

    def set_latency(self, seconds: float) -> None:
        self._latency = required_seconds("latency", seconds)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)
            self._total_requests += 1
            self._by_method[request.method] += 1
            if request.batch_id is not None:
                self._by_batch[(request.batch_id, request.method)] += 1

    def recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def request_count(self, batch_id: str | None = None, method: str | None = None) -> int:
        wanted = None if method is None else method.upper()
        with self._lock:
            if batch_id is None:
                if wanted is None:
                    return self._total_requests
                return self._by_method[wanted]
            return sum(
                count
                for (bid, meth), count in self._by_batch.items()
                if bid == batch_id and (wanted is None or meth == wanted)
            )

    def note_connection(self) -> None:
        with self._lock:
            self._connections_opened += 1

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._total_requests,
                "connections_opened": self._connections_opened,
                "requests_by_method": dict(self._by_method),
                "batches": len(self._batches),
                "pending_faults": len(self._faults),
                "latency": self._latency,
                "rate_limited": self.rate_limit.rejected,
            }

    def reset(self) -> None:
        """Drop batches, faults, the list hook, the request log and all counters (latency is
        kept)."""
        with self._lock:
            self._batches.clear()
            self._faults.clear()
            self._log.clear()
            self._by_method.clear()
            self._by_batch.clear()
            self._total_requests = 0
            self._connections_opened = 0
            self.list_hook = None
            self.answer_hook = None
        self.rate_limit.reset()
