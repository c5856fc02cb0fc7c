"""The provider's metrics, sent through Airflow's own ``Stats``.

Whatever Airflow is set up to send to (StatsD, Datadog's DogStatsD, OpenTelemetry) receives
them with no further setup. Every name starts with :data:`PREFIX` (after Airflow's own
``[metrics] statsd_prefix``); docs/metrics.md lists each name, its type and its tags. Tags are
the connection id, the model and a status, never anything from the connection's secrets; a
plain StatsD client drops tags (Airflow's ``statsd_influxdb_enabled`` appends them to names).

Emitting never fails or holds up the caller: an error of the metrics backend is logged at
debug level and dropped. In the triggerer it costs no waiting either: StatsD and DogStatsD
send one UDP datagram per metric (a ``sendto`` that returns without waiting for any reply),
and OpenTelemetry records in memory and exports from its own thread. Airflow builds its client
on a process's first send (resolving the StatsD host, reading its metrics registry): sends
from an event loop are made in a thread of their own until that is done (:class:`_FirstSends`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeGuard

from airflow_provider_batches.models import MessageBatch

if TYPE_CHECKING:
    from airflow_provider_batches.request_set import RequestSet


log = logging.getLogger(__name__)

#: The one prefix of every metric of this provider.
PREFIX = "anthropic_batches"
#: The result types the API counts per batch, each a ``requests.<type>`` counter.
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
#: Manifest usage fields and the kind each is counted as (``tokens.<kind>``).
TOKEN_KINDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_creation_input_tokens": "cache_write",
    "cache_read_input_tokens": "cache_read",
}
#: Longest tag value sent; characters other than these become ``_``.
MAX_TAG_CHARS = 100
_UNSAFE_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@functools.cache
def _stats() -> Any:
    """Airflow's ``Stats``: ``airflow.sdk.observability.stats`` from 3.2 on (where
    ``airflow.stats`` is a deprecated alias), ``airflow.stats`` on 3.0 and 3.1."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:
        from airflow.stats import Stats
    return Stats


def _tags(conn_id: str | None, **more: str | None) -> dict[str, str]:
    """Tag values as every backend can carry them: a model name comes from the server."""
    tags = {"conn_id": conn_id, **more}
    return {
        key: _UNSAFE_TAG_CHARS.sub("_", str(value))[:MAX_TAG_CHARS]
        for key, value in tags.items()
        if value
    }


class _FirstSends:
    """Sends made in an event loop before this process has sent any metric, made in one
    thread instead: Airflow builds its metrics client on the first send (a DNS lookup of the
    StatsD host, reading its metrics registry file), which must not hold up the loop. Sends
    stay in order: once that thread has nothing left, later sends are made in place."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start over; in a forked child too, where Airflow builds its client again and no
        thread came along."""
        self.lock = threading.Lock()
        self.warm = False  # a send has completed and none is queued
        self.queued = 0
        self.executor: ThreadPoolExecutor | None = None

    def send(self, *call: Any) -> None:
        with self.lock:
            if self.warm or not _in_event_loop():
                in_place = True
            else:
                in_place = False
                self.queued += 1
                if self.executor is None:
                    self.executor = ThreadPoolExecutor(1, thread_name_prefix="batches-metrics")
                executor = self.executor
        if in_place:
            _send_now(*call)
            with self.lock:
                self.warm = self.queued == 0  # the client is built, and nothing waits
        else:
            try:
                executor.submit(self._send_queued, *call)
            except RuntimeError:  # the interpreter is shutting down: the metric is dropped
                with self.lock:
                    self.queued -= 1

    def _send_queued(self, *call: Any) -> None:
        _send_now(*call)
        with self.lock:
            self.queued -= 1
            self.warm = self.queued == 0


_first_sends = _FirstSends()
os.register_at_fork(after_in_child=_first_sends.forget)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _send(method: str, name: str, value: float, tags: Mapping[str, str]) -> None:
    if _first_sends.warm:
        _send_now(method, name, value, tags)
    else:
        _first_sends.send(method, name, value, tags)


def _send_now(method: str, name: str, value: float, tags: Mapping[str, str]) -> None:
    try:
        stats = _stats()
        if method == "gauge":
            stats.gauge(f"{PREFIX}.{name}", value, tags=dict(tags))
        else:
            stats.incr(f"{PREFIX}.{name}", count=value, tags=dict(tags))
    except Exception as error:  # a metric is never worth failing or slowing a task for
        log.debug("Metric %s.%s not sent: %r", PREFIX, name, error)


def count(name: str, value: float, *, conn_id: str | None, **tags: str | None) -> None:
    """Add ``value`` to the counter ``<PREFIX>.<name>``; nothing for zero."""
    if value:
        _send("incr", name, value, _tags(conn_id, **tags))


def gauge(name: str, value: float, *, conn_id: str | None, **tags: str | None) -> None:
    """Set the gauge ``<PREFIX>.<name>``."""
    _send("gauge", name, value, _tags(conn_id, **tags))


def batch_created(conn_id: str | None, requests: Iterable[Mapping[str, Any]] | RequestSet) -> None:
    """One batch created: ``batches.created``, and its requests per model (a request set's
    from what its check pass kept, never by reading a spooled file back)."""
    from airflow_provider_batches.request_set import RequestSet  # not at parse time

    count("batches.created", 1, conn_id=conn_id)
    if isinstance(requests, RequestSet):
        per_model = {model: tally.requests for model, tally in requests.tally.models.items()}
    else:
        per_model = {}
        for request in requests:
            params = request.get("params")
            model = params.get("model") if isinstance(params, Mapping) else None
            key = model if isinstance(model, str) else "unknown"
            per_model[key] = per_model.get(key, 0) + 1
    for model, requests_of_model in sorted(per_model.items()):
        count("requests.submitted", requests_of_model, conn_id=conn_id, model=model)


def ending_status(batch: MessageBatch) -> str:
    """How an ended batch ended: ``canceled`` (a cancel was asked), ``expired`` (requests ran
    out of time), else ``completed``."""
    if batch.cancel_initiated_at is not None:
        return "canceled"
    if batch.request_counts.expired:
        return "expired"
    return "completed"


def batch_ended(conn_id: str | None, batch: MessageBatch) -> None:
    """A task finished with an ended batch: ``batches.ended`` by status, and its requests by
    result type (``requests.succeeded``, ...)."""
    count("batches.ended", 1, conn_id=conn_id, status=ending_status(batch))
    for result_type in RESULT_TYPES:
        count(
            f"requests.{result_type}",
            getattr(batch.request_counts, result_type),
            conn_id=conn_id,
        )


def results_written(conn_id: str | None, manifest: Mapping[str, Any]) -> None:
    """A batch's results were written: its tokens by kind, and its cost when the manifest
    has one (see :func:`manifest_cost`)."""
    usage = manifest.get("usage")
    if isinstance(usage, Mapping):
        for field, kind in TOKEN_KINDS.items():
            tokens = usage.get(field)
            if isinstance(tokens, int) and not isinstance(tokens, bool):
                count(f"tokens.{kind}", tokens, conn_id=conn_id)
    for model, usd in manifest_cost(manifest).items():
        count("cost_usd", usd, conn_id=conn_id, model=model or None)


def manifest_cost(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The cost in USD a manifest records, per model (``""`` when only a total is known):
    ``cost.by_model.<model>.usd.total`` where present, else ``cost.total_usd``. A model priced
    ``null`` (not in the price table) is left out, never counted as zero."""
    cost = manifest.get("cost")
    if not isinstance(cost, Mapping):
        return {}
    per_model: dict[str, float] = {}
    by_model = cost.get("by_model")
    if isinstance(by_model, Mapping):
        for model, entry in by_model.items():
            usd = entry.get("usd") if isinstance(entry, Mapping) else None
            model_total = usd.get("total") if isinstance(usd, Mapping) else None
            if _is_number(model_total):
                per_model[str(model)] = float(model_total)
    if per_model:
        return per_model
    total = cost.get("total_usd")
    return {"": float(total)} if _is_number(total) else {}


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def api_response(conn_id: str | None, status_code: int) -> None:
    """One API response: ``api.responses`` by status class, and ``api.rate_limited`` for a
    429."""
    count("api.responses", 1, conn_id=conn_id, status=f"{status_code // 100}xx")
    if status_code == 429:
        count("api.rate_limited", 1, conn_id=conn_id)
