#!/usr/bin/env python
"""Stream one large batch's results to storage: ours against the SDK iterator, same run.

    python benchmarks/results_stream.py            # 100,000 results, about 300 MB
    python benchmarks/results_stream.py --quick    # 10,000 results
    python benchmarks/results_stream.py --write-doc  # also update docs/benchmarks.md

The fake API runs in its own process and generates the results lazily. Each variant runs in a
fresh child process that measures its wall time, CPU time and peak RSS growth (sampled every
5 ms from /proc after imports and a warm-up):

- ``ours -> file://``: ``write_results`` (results.jsonl + manifest) to a temporary directory;
- ``ours -> s3://``: the same to a moto S3 server on loopback through the amazon provider and
  s3fs (pinned in ``requirements-lock.txt``);
- ``official provider -> file``: the official provider's ``stream_batch_results`` writing each
  result as a JSON line, when ``benchmarks/.venvs/official`` exists; otherwise the ``anthropic``
  SDK's ``client.messages.batches.results()`` iterator (what that method wraps) does the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OFFICIAL_VENV_PYTHON, REPO_ROOT, DocSection, PeakRss, cpu_seconds

API_KEY = "sk-ant-bench-results-key"
S3_CONN = "aws_bench"
BUCKET = "bench-results"
DOC = DocSection("results_stream")
TARGET_RSS_MB = 64.0
TARGET_FILE_MBPS = 50.0


# ---- children ---------------------------------------------------------------------------------


def _child(variant: str, batch_id: str, warm_id: str, out: str) -> dict[str, Any]:
    if variant.startswith("ours"):
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_batches.hooks.batch import MessageBatchHook
        from airflow_provider_batches.results.writer import write_results

        hook = MessageBatchHook()
        batch = hook.retrieve_batch(batch_id)
        target = ObjectStoragePath(out)
        write_results(hook, warm_id, target / "warm", overwrite=True)
        probe, started, cpu = PeakRss(), time.perf_counter(), cpu_seconds()
        manifest = write_results(hook, batch, target / "run", overwrite=True)
        lines, size = manifest["line_counts"]["total"], manifest["files"]["results"]["bytes"]
    else:
        write_line, results = _official_iterator()
        for _ in results(warm_id):
            pass
        probe, started, cpu = PeakRss(), time.perf_counter(), cpu_seconds()
        lines = size = 0
        with open(out, "w", encoding="utf-8") as stream:
            for result in results(batch_id):
                size += stream.write(write_line(result))
                lines += 1
    seconds = time.perf_counter() - started
    return {
        "variant": variant,
        "lines": lines,
        "bytes": size,
        "seconds": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "mb_per_s": size / seconds / 1e6,
        "peak_rss_growth_mb": probe.growth_mb(),
    }


def _official_iterator() -> Any:
    try:
        from airflow.providers.anthropic.hooks.anthropic import (  # type: ignore[import-not-found]
            AnthropicHook,
        )

        hook = AnthropicHook()

        def results(batch_id: str) -> Any:
            return hook.stream_batch_results(batch_id)
    except ImportError:
        import anthropic

        client = anthropic.Anthropic(
            api_key=API_KEY, base_url=os.environ["BENCH_BASE_URL"], max_retries=2
        )

        def results(batch_id: str) -> Any:
            return client.messages.batches.results(batch_id)

    return (lambda result: result.model_dump_json() + "\n"), results


# ---- parent -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_batches.testing", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "FAKE_ANTHROPIC_API_KEY": API_KEY},
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("FAKE_API_READY "):
        process.kill()
        raise RuntimeError(f"the fake API did not start: {line!r}")
    return process, line.split()[1]


def _start_moto() -> tuple[subprocess.Popen[bytes], str] | None:
    try:
        import boto3
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        return None
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        region_name="us-east-1",
    )
    for _ in range(200):
        try:
            client.create_bucket(Bucket=BUCKET)
            return process, endpoint
        except Exception:
            time.sleep(0.05)
    process.kill()
    return None


def _run_child(
    variant: str, batch_id: str, warm_id: str, out: str, env: dict[str, str]
) -> dict[str, Any]:
    python = sys.executable
    if variant.startswith("official") and OFFICIAL_VENV_PYTHON.exists():
        python = str(OFFICIAL_VENV_PYTHON)
    command = [python, __file__, "--child", variant, "--batch-id", batch_id]
    completed = subprocess.run(
        [*command, "--warm-id", warm_id, "--out", out],
        capture_output=True,
        text=True,
        env=env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _table(results: list[dict[str, Any]], lines: int, size: int) -> list[str]:
    rows = [
        f"{lines:,} results, {size / 1e6:,.0f} MB (`results.jsonl`), one run, each variant in a "
        "fresh process; RSS growth is the peak above the level after imports and a warm-up. "
        "CPU is the client process's only (the fake API and moto run in their own processes): "
        "MB per CPU second is what the client could do on a CPU of its own.",
        "",
        "| variant | MB/s (wall) | MB per CPU s | wall s | CPU s | peak RSS growth MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows.append(
            f"| {r['variant']} | {r['mb_per_s']:.1f} | {r['bytes'] / 1e6 / r['cpu_s']:.0f} "
            f"| {r['seconds']:.1f} | {r['cpu_s']:.1f} "
            f"| {r['peak_rss_growth_mb']:.1f} |"
        )
    return rows


#: run_all.py keeps this section when it rewrites the page.
keep_section = DOC.keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 results instead of 100,000")
    parser.add_argument("--response-chars", type=int, default=2600)
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch-id", help=argparse.SUPPRESS)
    parser.add_argument("--warm-id", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.batch_id, args.warm_id, args.out)))
        return 0

    from airflow_provider_batches.testing import FakeAdminClient

    lines = 10_000 if args.quick else 100_000
    work = Path(tempfile.mkdtemp(prefix="apb-results-bench-"))
    fake, base_url = _start_fake()
    moto = _start_moto()
    try:
        admin = FakeAdminClient(base_url)
        batch = admin.create_batch(
            num_requests=lines,
            ends_after=0.0,
            outcomes={
                "succeeded": lines - lines // 50,
                "errored": lines // 100,
                "expired": lines // 100,
            },
            response_chars=args.response_chars,
        )
        warm = admin.create_batch(num_requests=100, ends_after=0.0, response_chars=100)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "AIRFLOW_HOME": str(work / "airflow"),
            "BENCH_BASE_URL": base_url,
            "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps(
                {"conn_type": "anthropic_batches", "password": API_KEY, "host": base_url}
            ),
        }
        variants = [("ours -> file://", f"file://{work}/ours")]
        if moto is not None:
            env[f"AIRFLOW_CONN_{S3_CONN.upper()}"] = json.dumps(
                {
                    "conn_type": "aws",
                    "login": "bench",
                    "password": "bench-secret",
                    "extra": {"endpoint_url": moto[1], "region_name": "us-east-1"},
                }
            )
            variants.append(("ours -> s3:// (moto)", f"s3://{S3_CONN}@{BUCKET}/ours"))
        official = (
            "official provider stream_batch_results -> file"
            if OFFICIAL_VENV_PYTHON.exists()
            else "anthropic SDK batches.results() -> file"
        )
        variants.append((official, str(work / "official.jsonl")))
        results = []
        for name, out in variants:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(_run_child(name, batch["id"], warm["id"], out, env))
    finally:
        fake.terminate()
        fake.wait(10)
        if moto is not None:
            moto[0].terminate()
            moto[0].wait(10)
        shutil.rmtree(work, ignore_errors=True)
    size = results[0]["bytes"]
    ours = results[0]
    ours_all = [r for r in results if r["variant"].startswith("ours")]
    section = [
        "## Results streaming (`benchmarks/results_stream.py`)",
        "",
        "Written by `benchmarks/results_stream.py --write-doc` (not by `run_all.py`, which keeps "
        "this section). Ours streams with `write_results` (one parse per line, SHA-256, "
        "manifest); the comparison writes each result of the SDK's iterator as a JSON line.",
        "",
        f"Command: `python benchmarks/results_stream.py{' --quick' if args.quick else ''}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, shared).",
        "",
        *_table(results, lines, size),
        "",
        f"Targets: peak RSS growth < {TARGET_RSS_MB:g} MB: "
        f"{'met' if all(r['peak_rss_growth_mb'] < TARGET_RSS_MB for r in ours_all) else 'MISSED'}"
        f"; >= {TARGET_FILE_MBPS:g} MB/s to file://: "
        f"{'met' if ours['mb_per_s'] >= TARGET_FILE_MBPS else 'MISSED'} "
        f"({ours['mb_per_s']:.1f} MB/s, including the fake API generating the lines in "
        "another process on the same CPUs).",
    ]
    print("\n".join(section))
    if args.write_doc:
        DOC.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
