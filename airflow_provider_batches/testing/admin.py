"""``FakeAdminClient``: drives a fake running in another process through ``/_fake/``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from ._state import DEFAULT_EXPIRES_AFTER
from ._types import Fault, RecordedRequest


class FakeAdminError(Exception):
    """An admin call failed: HTTP status and the response body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"fake admin call failed with HTTP {status}: {body}")
        self.status = status
        self.body = body


class FakeAdminClient:
    """Blocking client for the admin routes (stdlib only)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Talk to the fake directly, whatever proxy the environment configures.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(f"{self.base_url}/_fake/{path}", data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise FakeAdminError(exc.code, exc.read().decode("utf-8", "replace")) from None

    @staticmethod
    def _segment(batch_id: str) -> str:
        return quote(batch_id, safe="")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll the health route until the fake answers or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "health")
                return
            except (OSError, FakeAdminError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

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
        response_chars: int | None = None,
        error_types: Sequence[str] | None = None,
        results_base_url: str | None = None,
        contents: Sequence[Sequence[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """See :meth:`FakeBatchesServer.create_batch`."""
        payload: dict[str, Any] = {
            "num_requests": num_requests,
            "ends_after": ends_after,
            "outcomes": outcomes,
            "batch_id": batch_id,
            "expires_after": expires_after,
            "archive_after": archive_after,
            "cancel_delay": cancel_delay,
        }
        if custom_ids is not None:
            payload["custom_ids"] = list(custom_ids)
        if response_chars is not None:
            payload["response_chars"] = response_chars
        if error_types is not None:
            payload["error_types"] = list(error_types)
        if results_base_url is not None:
            payload["results_base_url"] = results_base_url
        if contents is not None:
            payload["contents"] = [list(blocks) for blocks in contents]
        result: dict[str, Any] = self._call("POST", "batches", payload)
        return result

    def create_batches_bulk(
        self, count: int, ends_after_min: float, ends_after_max: float, num_requests: int = 1
    ) -> dict[str, Any]:
        """``{"ids": [...], "ends_at": {id: epoch_seconds}}``."""
        payload = {
            "count": count,
            "ends_after_min": ends_after_min,
            "ends_after_max": ends_after_max,
            "num_requests": num_requests,
        }
        result: dict[str, Any] = self._call("POST", "batches/bulk", payload)
        return result

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"batches/{self._segment(batch_id)}")
        return result

    def end_batch(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"batches/{self._segment(batch_id)}/end", {})
        return result

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        path = f"batches/{self._segment(batch_id)}/cancel"
        result: dict[str, Any] = self._call("POST", path, {})
        return result

    def set_status_override(self, batch_id: str, status: str | None) -> None:
        path = f"batches/{self._segment(batch_id)}/status_override"
        self._call("POST", path, {"status": status})

    def inject_fault(self, fault: Fault) -> None:
        self._call("POST", "faults", fault.to_dict())

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def stats(self) -> dict[str, Any]:
        """``{"requests", "connections_opened", "requests_by_method", ...}``."""
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def requests(self) -> list[RecordedRequest]:
        return [RecordedRequest.from_dict(item) for item in self._call("GET", "requests")]

    def request_count(self, batch_id: str | None = None, method: str | None = None) -> int:
        query = {k: v for k, v in (("batch_id", batch_id), ("method", method)) if v is not None}
        suffix = f"?{urlencode(query)}" if query else ""
        return int(self._call("GET", f"request_count{suffix}")["count"])

    def set_latency(self, seconds: float) -> None:
        self._call("POST", "latency", {"seconds": seconds})

    def reset(self) -> None:
        self._call("POST", "reset", {})
