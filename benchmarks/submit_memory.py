"""Submitting a big request set: peak RSS growth and time of the submitting process.

Generates a JSONL request set (default 100,000 requests, about 256 MB), starts the embedded
fake API in its own process (``python -m airflow_provider_batches.testing serve``) and runs
each case in a fresh Python process, measuring only that client:

- ``validate``: ``build_request_set(path)`` (check, fingerprint, spool), this checkout;
- ``validate-before``: the same with ``request_set.py`` as committed in ``--before-ref`` (the
  code before streaming), loaded from ``git show``;
- ``submit``: ``build_request_set(path)`` then ``MessageBatchHook.create_batch(request_set)``:
  the operator's path, streamed from the spool;
- ``submit-before``: the ``--before-ref`` request set, then ``create_batch(request_set.requests)``
  (the create body built in memory, as the operator did before);
- ``official``: the official provider's path: the requests as a list (``json.loads`` per line),
  then ``anthropic.Anthropic(base_url=fake).messages.batches.create(requests=list)`` (the SDK
  the official hook calls).

Peak RSS growth: the process's peak (``VmHWM``, reset through ``/proc/self/clear_refs`` after
imports and a warm-up create of one request) minus its RSS at that point.

    .venv/bin/python benchmarks/submit_memory.py [--requests 100000] [--line-bytes 2560]
        [--cases validate,validate-before,submit,submit-before,official] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, DocSection, load_average, machine_info
from trigger_scale import API_KEY, FakeProcess

CASES = ("validate", "validate-before", "submit", "submit-before", "official")
#: Each case's peak RSS growth must stay under this (issue 21: at most 100 MB for ``submit``).
RSS_BOUND_MB = {"validate": 100.0, "submit": 100.0}


def generate(path: Path, count: int, line_bytes: int) -> int:
    """``count`` requests, each line about ``line_bytes`` long; returns the file's size."""
    filler = "Summarize the following text in three sentences. "
    with open(path, "w", encoding="utf-8") as out:
        for index in range(count):
            head: dict[str, Any] = {
                "custom_id": f"request-{index:06d}",
                "params": {
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 1024,
                    "temperature": 0.5,
                    "system": "You are a careful assistant.",
                    "messages": [{"role": "user", "content": ""}],
                },
            }
            empty = len(json.dumps(head, separators=(",", ":")))
            size = max(1, line_bytes - empty - 1)
            text = (filler * (size // len(filler) + 1))[:size]
            head["params"]["messages"][0]["content"] = f"{index}: {text}"[:size]
            out.write(json.dumps(head, separators=(",", ":")) + "\n")
    return path.stat().st_size


# ---- one case, in a fresh process -------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def _load_before(source: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("request_set_before", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_case(case: str, path: Path, base_url: str, before: Path | None) -> dict[str, Any]:
    os.environ["AIRFLOW_CONN_ANTHROPIC_DEFAULT"] = json.dumps(
        {
            "conn_type": "anthropic_batches",
            "host": base_url,
            "password": API_KEY,
            "extra": {"timeout": 600},
        }
    )
    one = {
        "custom_id": "warm-up",
        "params": {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
    }
    created: Any = None
    if case == "official":
        import anthropic

        client = anthropic.Anthropic(api_key=API_KEY, base_url=base_url, max_retries=0, timeout=600)
        client.messages.batches.create(requests=[one])  # type: ignore[list-item]
    else:
        from airflow_provider_batches.hooks.batch import MessageBatchHook
        from airflow_provider_batches.request_set import build_request_set

        hook = MessageBatchHook()
        warm = Path(tempfile.mkstemp(suffix=".jsonl")[1])
        warm.write_text(json.dumps(one) + "\n")
        with build_request_set(warm) as warm_set:
            hook.create_batch(warm_set)
        warm.unlink()
        build = build_request_set
        if case.endswith("-before"):
            assert before is not None
            build = _load_before(before).build_request_set
    _reset_peak()
    baseline = _status_kb("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    count = 0
    if case == "official":
        requests = []
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    requests.append(json.loads(line))
        checked_at, cpu_checked = time.perf_counter(), time.process_time()
        created = client.messages.batches.create(requests=requests)
        count = created.request_counts.processing
    else:
        request_set = build(path)
        checked_at, cpu_checked = time.perf_counter(), time.process_time()
        count = request_set.count
        if case == "submit":
            created = hook.create_batch(request_set)
        elif case == "submit-before":
            created = hook.create_batch(request_set.requests)
    ended, cpu_ended = time.perf_counter(), time.process_time()
    peak = _status_kb("VmHWM")
    size = path.stat().st_size
    result = {
        "case": case,
        "requests": count,
        "file_mb": round(size / 1e6, 1),
        "check_s": round(checked_at - started, 2),
        "check_mb_s": round(size / 1e6 / (checked_at - started), 1),
        "check_cpu_s": round(cpu_checked - cpu_started, 2),
        "check_mb_per_cpu_s": round(size / 1e6 / (cpu_checked - cpu_started), 1),
        "total_s": round(ended - started, 2),
        "total_cpu_s": round(cpu_ended - cpu_started, 2),
        "baseline_rss_mb": round(baseline / 1024, 1),
        "peak_rss_growth_mb": round((peak - baseline) / 1024, 1),
    }
    if created is not None:
        result["batch_requests"] = created.request_counts.processing
    return result


# ---- the driver -------------------------------------------------------------------------------


def _before_source(ref: str, into: Path) -> Path:
    source = subprocess.run(
        ["git", "show", f"{ref}:airflow_provider_batches/request_set.py"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    target = into / "request_set_before.py"
    target.write_text(source)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--line-bytes", type=int, default=2560)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--before-ref", default="21a917b", help="git ref of the code before")
    parser.add_argument("--file", type=Path, default=None, help="use this JSONL file as it is")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--write-doc", action="store_true", help="write the section of docs/benchmarks.md"
    )
    parser.add_argument("--run-case", nargs=4, metavar=("CASE", "FILE", "URL", "BEFORE"))
    args = parser.parse_args(argv)
    if args.run_case:
        case, file, url, before = args.run_case
        result = run_case(case, Path(file), url, Path(before) if before != "-" else None)
        print(json.dumps(result), flush=True)
        return 0
    cases = [case for case in args.cases.split(",") if case]
    with tempfile.TemporaryDirectory(prefix="apb-submit-bench-") as scratch:
        work = Path(scratch)
        path = args.file or work / "requests.jsonl"
        if args.file is None:
            started = time.perf_counter()
            size = generate(path, args.requests, args.line_bytes)
            print(f"generated {path} ({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f}s")
        before = _before_source(args.before_ref, work)
        fake = FakeProcess(sys.executable, 0.0, work / "fake.log")
        results: list[dict[str, Any]] = []
        try:
            for case in cases:
                load = load_average()
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run-case",
                        case,
                        str(path),
                        fake.url,
                        str(before),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=str(REPO_ROOT),
                )
                if done.returncode:
                    print(f"{case} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                    results.append({"case": case, "error": done.stderr.strip().splitlines()[-1]})
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["load_before"] = load
                results.append(result)
                print(json.dumps(result), flush=True)
            fake_usage = fake.usage()
        finally:
            fake.stop()
    report = {
        "machine": machine_info(),
        "load_after": load_average(),
        "fake": fake_usage,
        "results": results,
    }
    print(table(results))
    print(f"fake server process: {fake_usage}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.write_doc:
        shown = [arg for arg in (argv or sys.argv[1:]) if arg != "--write-doc"]
        if args.json:  # where this run kept its raw numbers is no part of the command
            shown = [arg for arg in shown if arg not in ("--json", str(args.json))]
        DOC.write(section(report, " ".join(["python benchmarks/submit_memory.py", *shown])))
    failed = [
        r["case"]
        for r in results
        if r.get("case") in RSS_BOUND_MB
        and r.get("peak_rss_growth_mb", 1e9) > RSS_BOUND_MB[r["case"]]
    ]
    if failed:
        print(f"peak RSS growth over the bound in: {failed}", file=sys.stderr)
        return 1
    return 0


DOC = DocSection("submit_memory", after=["<!-- results_stream:end -->"])


def section(report: dict[str, Any], command: str) -> list[str]:
    by_case = {r["case"]: r for r in report["results"] if "error" not in r}
    machine = report["machine"]
    lines = [
        "## Submitting a 256 MB request set (`benchmarks/submit_memory.py`)",
        "",
        "Written by `benchmarks/submit_memory.py --write-doc` (`run_all.py` keeps this section).",
        "Each case runs in a fresh process; the fake API runs in its own process "
        "(`python -m airflow_provider_batches.testing serve`), so only the client is measured. "
        "Peak RSS growth: the peak (`VmHWM`, reset after imports and a warm-up create) minus "
        "the RSS then. `check`: reading and checking the set (ours: check, fingerprint and "
        "spool; the official path: `json.loads` of each line into a list). MB per CPU s is "
        "what the client does on a CPU of its own: this machine is shared (load below).",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{machine.get('cpu_count', '?')} CPUs, shared; load average after the run "
        f"{report['load_after']}).",
        "",
        table(report["results"]),
        "",
        "- `validate`, `submit`: this release (`build_request_set(path)`, then "
        "`MessageBatchHook.create_batch(request_set)` streaming the spool).",
        "- `validate-before`, `submit-before`: `request_set.py` before streaming (the list of "
        "dicts, then the create body built in memory by `create_batch(request_set.requests)`).",
        "- `official`: the official provider's path, the `anthropic` SDK's "
        "`messages.batches.create(requests=list)` on the same fake.",
        f"- The fake's own process (not counted above): {report['fake'].get('cpu_s')} CPU s, "
        f"peak RSS {report['fake'].get('peak_rss_mb')} MB (it holds the body received and its "
        "parsed requests while it answers the create).",
    ]
    ours, before = by_case.get("submit"), by_case.get("validate-before")
    check = by_case.get("validate")
    if ours and check and before:
        ratio = check["check_mb_per_cpu_s"] / before["check_mb_per_cpu_s"]
        lines += [
            "",
            f"Targets: peak RSS growth of the submitting process <= 100 MB: "
            f"{'met' if ours['peak_rss_growth_mb'] <= 100 else 'NOT met'} "
            f"({ours['peak_rss_growth_mb']} MB); checks >= 120 MB/s and >= 2x before: "
            f"{check['check_mb_per_cpu_s']} MB per CPU second, {ratio:.1f}x before "
            f"({check['check_mb_s']} MB/s wall on the shared machine).",
        ]
    return lines


#: run_all.py keeps this section when it rewrites the page.
keep_section = DOC.keep


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| case | requests | file MB | check s | check MB/s | check MB per CPU s | total s "
        "| total CPU s | peak RSS growth MB | load before |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['case']} | failed: {r['error'][:200]} | | | | | | | | |")
            continue
        rows.append(
            f"| {r['case']} | {r['requests']:,} | {r['file_mb']} | {r['check_s']} | "
            f"{r['check_mb_s']} | {r['check_mb_per_cpu_s']} | {r['total_s']} | "
            f"{r['total_cpu_s']} | {r['peak_rss_growth_mb']} | "
            f"{', '.join(str(x) for x in r.get('load_before', []))} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
