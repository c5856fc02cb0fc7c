"""Run in a subprocess by test_results_memory: stream a large fake batch, print peak RSS growth.

Usage: python memory_probe.py MODE LINES RESPONSE_CHARS OUT_DIR, MODE in iter, aiter, write,
structured (write with a JSON schema output_type; each answer a tool call of RESPONSE_CHARS);
or python memory_probe.py hostile KIND: a 2-request batch whose server sends KIND (repeat: one
line forever; blank: blank lines forever; gzip: a gzip bomb of blank lines) until it has sent
CAP bytes; prints the error the read ended with and the peak RSS growth.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading

import psutil

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="apb-memory-"))


class PeakRss:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        return self.peak - self.baseline


#: Bytes the hostile server sends at most (on the wire: for gzip, about 1,000 times that decoded).
HOSTILE_CAP = {"repeat": 256 << 20, "blank": 256 << 20, "gzip": 1 << 20}


def hostile(kind: str) -> None:
    from scripted_results import KEY, ScriptedResults, forever, line

    from airflow_provider_batches.hooks.batch import MessageBatchHook

    piece = {
        "repeat": (line(0, pad=1000) + b"\n") * 64,
        "blank": b"\n" * 65536,
        "gzip": b"\n" * (4 << 20),
    }[kind]
    reply = forever(piece, gzip=kind == "gzip")
    with ScriptedResults([reply], HOSTILE_CAP[kind]) as server:
        os.environ["AIRFLOW_CONN_HOSTILE"] = json.dumps(
            {
                "conn_type": "anthropic_batches",
                "password": KEY,
                "host": server.base_url,
                "extra": {"max_retries": 0, "max_requests_per_minute": 1_000_000},
            }
        )
        hook = MessageBatchHook("hostile")
        hook.settings  # noqa: B018 (the connection is read before the measure)
        probe = PeakRss()
        try:
            sum(1 for _ in hook.iter_results(server.batch(2)))
            error = None
        except Exception as exc:
            error = type(exc).__name__
        growth = probe.stop()
        sent = server.body_bytes_sent
    print(json.dumps({"error": error, "growth": growth, "sent": sent}))


def main() -> None:
    if sys.argv[1] == "hostile":
        hostile(sys.argv[2])
        return
    mode, lines, chars, out_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_batches.hooks.batch import MessageBatchHook
    from airflow_provider_batches.results.writer import write_results
    from airflow_provider_batches.testing import FakeBatchesServer

    key = "sk-ant-memory-probe-key"
    with FakeBatchesServer(api_key=key) as fake:
        os.environ["AIRFLOW_CONN_ANTHROPIC_DEFAULT"] = json.dumps(
            {"conn_type": "anthropic_batches", "password": key, "host": fake.base_url}
        )
        hook = MessageBatchHook()
        warm = fake.create_batch(num_requests=200, ends_after=0.0, response_chars=chars)
        write_results(hook, warm["id"], ObjectStoragePath(f"file://{out_dir}/warm"))
        sum(1 for _ in hook.iter_results(warm["id"]))
        call = {"type": "tool_use", "id": "toolu_1", "name": "note", "input": {"text": "x" * chars}}
        batch = fake.create_batch(
            num_requests=lines,
            ends_after=0.0,
            outcomes={"succeeded": lines - 100, "errored": 100},
            response_chars=chars,
            contents=[[call]] if mode == "structured" else None,
        )
        ended = hook.retrieve_batch(batch["id"])
        probe = PeakRss()
        size = 0
        if mode == "iter":
            count = sum(1 for _ in hook.iter_results(ended))
        elif mode == "aiter":

            async def read() -> int:
                return sum([1 async for _ in hook.aiter_results(ended)])

            count = asyncio.run(read())
        elif mode == "structured":
            schema = {"type": "object", "properties": {"text": {"type": "string"}}}
            store = ObjectStoragePath(f"file://{out_dir}/big")
            manifest = write_results(hook, ended, store, output_type=schema)
            count = manifest["structured"]["parsed"]
            size = manifest["files"]["parsed"]["bytes"]
        else:
            manifest = write_results(hook, ended, ObjectStoragePath(f"file://{out_dir}/big"))
            count = manifest["line_counts"]["total"]
            size = manifest["files"]["results"]["bytes"]
        growth = probe.stop()
    print(json.dumps({"count": count, "bytes": size, "growth": growth}))


if __name__ == "__main__":
    main()
