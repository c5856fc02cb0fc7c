"""Submitting a set past the API's limits with ``split_oversized=True``, end to end.

Generates a JSONL request set (default 1,000,000 requests of 2,560 bytes, about 2.5 GB: ten
shards of 100,000), migrates a throwaway Airflow metadata DB, starts the embedded fake API in
its own process (``python -m airflow_provider_batches.testing serve``, batches ending
``--processing-seconds`` after their create) and runs, in a fresh Python process, the DAG of
``benchmarks/dags/split_submit_dag.py`` with ``dag.test()``: one ``MessageBatchOperator`` with
``split_oversized=True`` and ``results_path`` on ``file://``, from the JSONL path to the
results written, as the operator tests run split sets (tests/unit/operators/).

That process first runs the same DAG once on a 3-request file (the warm-up: imports, the
DAG bundle's sync, Airflow's and the provider's one-time set-up), then resets its peak RSS
(``/proc/self/clear_refs``) and runs the big set. Peak RSS growth: ``VmHWM`` minus the RSS at
that reset. The phases are timed by wrapping the functions the operator calls for them
(``build_request_shards``: check; ``submit_shards``: submit; ``write_shard_results``:
results; wait: from the last create to the results); each phase's peak is read and reset at its
end, so the table shows where the peak was. The fake counts the creates (``FakeAdminClient``);
the written ``manifest.json`` and ``results.jsonl`` are read back and checked against the
shards.

    .venv/bin/python benchmarks/split_submit.py [--requests 1000000] [--line-bytes 2560]
        [--deferrable] [--processing-seconds 1] [--json out.json] [--write-doc]
    .venv/bin/python benchmarks/split_submit.py --report-only out.json [--write-doc]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, REPO_ROOT, RESULTS_DIR, DocSection, load_average, machine_info
from submit_memory import generate
from trigger_scale import API_KEY, FakeProcess

DAG_FILE = BENCH_DIR / "dags" / "split_submit_dag.py"
#: Issue 21: peak RSS growth of the submitting process for 1,000,000 requests (about 2.5 GB).
RSS_BOUND_MB = 150.0
#: The API's limits per batch (``airflow_provider_batches.request_set``; not imported here:
#: ``run_all.py`` imports this module for :func:`keep_section` only).
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
WARM_UP_REQUESTS = 3
#: The connection's ``max_requests_per_minute`` extra (a tier past the first: 50 is the default).
MAX_REQUESTS_PER_MINUTE = 1000
PHASES = ("setup", "check", "cost bound", "submit", "wait", "results", "finish")


def expected_shards(requests: int, line_bytes: int) -> int:
    """How many shards a generated set makes: each line's canonical JSON plus its comma is
    ``line_bytes`` long (``generate`` writes compact JSON of that length with its newline)."""
    per_shard = min(MAX_REQUESTS, (MAX_BODY_BYTES - len('{"requests":[]}')) // line_bytes)
    return math.ceil(requests / per_shard)


# ---- the run, in a fresh process --------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


class Marks:
    """Wall time, CPU time (all threads) and the peak RSS since the previous mark, at each
    phase boundary; the peak is reset at every mark."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float, int]] = []

    def mark(self, name: str) -> None:
        peak = _status_kb("VmHWM")
        self.marks.append((name, time.perf_counter(), time.process_time(), peak))
        _reset_peak()

    def phases(self, baseline_kb: int) -> dict[str, dict[str, float]]:
        """Each phase from one mark to the next (``setup`` from the start to the check, ``cost
        bound`` from the check to the first create, ``finish`` from the results to the end)."""
        names = {
            ("start", "check_start"): "setup",
            ("check_start", "check_end"): "check",
            ("check_end", "submit_start"): "cost bound",
            ("submit_start", "submit_end"): "submit",
            ("submit_end", "results_start"): "wait",
            ("results_start", "results_end"): "results",
            ("results_end", "end"): "finish",
        }
        phases: dict[str, dict[str, float]] = {}
        for (first, t0, cpu0, _), (second, t1, cpu1, peak) in zip(
            self.marks, self.marks[1:], strict=False
        ):
            phases[names.get((first, second), f"{first} -> {second}")] = {
                "wall_s": round(t1 - t0, 2),
                "cpu_s": round(cpu1 - cpu0, 2),
                "peak_rss_growth_mb": round((peak - baseline_kb) / 1024, 1),
            }
        return phases


def instrument(marks: Marks) -> None:
    """Mark the start and end of the calls the operator makes for each phase (it imports them
    when it runs, so the module attributes replaced here are the ones it calls)."""
    import airflow_provider_batches.operators._shards as shards
    import airflow_provider_batches.request_set as request_set
    import airflow_provider_batches.results.writer as writer

    for module, name, phase in (
        (request_set, "build_request_shards", "check"),
        (shards, "submit_shards", "submit"),
        (writer, "write_shard_results", "results"),
    ):
        original = getattr(module, name)

        def timed(*args: Any, _original: Any = original, _phase: str = phase, **kwargs: Any) -> Any:
            marks.mark(f"{_phase}_start")
            try:
                return _original(*args, **kwargs)
            finally:
                marks.mark(f"{_phase}_end")

        setattr(module, name, timed)


def _creates(admin: Any) -> int:
    """Creates the fake received (``POST /v1/messages/batches``)."""
    return sum(
        1
        for r in admin.requests()
        if r.method == "POST" and r.batch_id is None and r.path.rstrip("/").endswith("/batches")
    )


def _xcoms(dag_id: str, run: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """The run's task states and the task's XComs by key (as the operator tests read them)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id)
        )
        values = {row.key: row.value for row in rows if row.task_id == "submit"}
    return states, values


def run_case(path: Path, url: str, work: Path, dag_id: str) -> dict[str, Any]:
    import airflow_provider_batches
    from airflow_provider_batches._compat import dag_bag_class
    from airflow_provider_batches.testing import FakeAdminClient

    admin = FakeAdminClient(url, timeout=120)
    dag = dag_bag_class()(dag_folder=str(DAG_FILE)).dags[dag_id]
    marks = Marks()
    instrument(marks)
    warm = work / "warm-up.jsonl"
    generate(warm, WARM_UP_REQUESTS, 2560)
    warm_run = dag.test(run_conf={"path": str(warm), "results_path": f"file://{work}/warm-up"})
    if str(warm_run.state) != "success":
        raise RuntimeError(f"the warm-up run ended {warm_run.state}")
    creates_before = _creates(admin)
    marks.marks.clear()
    gc.collect()
    _reset_peak()
    baseline = _status_kb("VmRSS")
    marks.mark("start")
    run = dag.test(run_conf={"path": str(path), "results_path": f"file://{work}/results"})
    marks.mark("end")
    # Measured up to here; what follows only reads what the run left.
    peak = max(mark[3] for mark in marks.marks[1:])
    states, xcoms = _xcoms(dag_id, run)
    value = xcoms.get("return_value") or {}
    manifest = xcoms.get("manifest") or {}
    return {
        "package": airflow_provider_batches.__file__,
        "dag_id": dag_id,
        "state": str(run.state),
        "task_states": states,
        "baseline_rss_mb": round(baseline / 1024, 1),
        "peak_rss_growth_mb": round((peak - baseline) / 1024, 1),
        "wall_s": round(marks.marks[-1][1] - marks.marks[0][1], 2),
        "cpu_s": round(marks.marks[-1][2] - marks.marks[0][2], 2),
        "phases": marks.phases(baseline),
        "creates": _creates(admin) - creates_before,
        "batch_ids": value.get("batch_ids", []),
        "request_counts": value.get("request_counts"),
        "total_requests": value.get("total_requests"),
        "manifest_prefix": manifest.get("prefix"),
    }


# ---- the driver -------------------------------------------------------------------------------


#: The check's ``CustomIdSet`` of N custom_ids as ``generate`` writes them, built in a fresh
#: process: what the check keeps across all shards to find a repeated custom_id.
_ID_MAP_CODE = """
import sys
from airflow_provider_batches.request_set import CustomIdSet
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
before = rss()
seen = CustomIdSet(list)
for index in range(int(sys.argv[1])):
    seen.earlier(index, f"request-{index:06d}")
print(rss() - before)
"""


def custom_id_map_mb(count: int) -> float:
    """RSS of the check's set of ``count`` generated custom_ids, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _ID_MAP_CODE, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return round(int(done.stdout) / 1024, 1)


def _count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            lines += chunk.count(b"\n")
    return lines


def check_written(result: dict[str, Any], requests: int) -> dict[str, Any]:
    """Read the manifest the run wrote (and count its results.jsonl) and check it covers every
    shard: the shards' batch ids in order, the per-shard and total line counts."""
    prefix = Path(str(result["manifest_prefix"]).removeprefix("file://"))
    manifest = json.loads((prefix / "manifest.json").read_bytes())
    results = prefix / "results.jsonl"
    shards = manifest.get("shards", [])
    shard_totals = [shard["line_counts"]["total"] for shard in shards]
    total = manifest["line_counts"]["total"]
    lines = _count_lines(results)
    return {
        "manifest_path": str(prefix / "manifest.json"),
        "results_gb": round(results.stat().st_size / 1e9, 2),
        "results_lines": lines,
        "line_counts": manifest["line_counts"],
        "shards": [{"batch_id": s["batch_id"], "line_counts": s["line_counts"]} for s in shards],
        "files_results_lines": manifest["files"]["results"]["lines"],
        "covers_every_shard": (
            [shard["batch_id"] for shard in shards] == result["batch_ids"]
            and sum(shard_totals) == total == requests == lines
            and manifest["files"]["results"]["lines"] == lines
        ),
    }


def targets(report: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue 21's numbers: (what, met, the figure)."""
    result, written = report["result"], report.get("written") or {}
    ids = result.get("batch_ids", [])
    expected = report.get("expected_shards")
    creates_ok = (
        result.get("creates") == len(ids) == len(set(ids))
        and (expected is None or len(ids) == expected)
        and result.get("state") == "success"
    )
    peak = result.get("peak_rss_growth_mb", math.inf)
    return [
        (
            f"{expected if expected is not None else 'all'} batches, each created once",
            creates_ok,
            f"{len(ids)} shards, {result.get('creates')} creates seen by the fake, "
            f"{len(set(ids))} distinct batch ids",
        ),
        (
            f"peak RSS growth of the submitting process <= {RSS_BOUND_MB:g} MB",
            peak <= RSS_BOUND_MB,
            f"{peak} MB",
        ),
        (
            "results of all shards to file:// with one manifest",
            bool(written.get("covers_every_shard")),
            f"{len(written.get('shards', []))} shards in manifest.json, "
            f"{written.get('line_counts', {}).get('total', 0):,} lines (results.jsonl: "
            f"{written.get('results_lines', 0):,})",
        ),
    ]


def _airflow_env(work: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # A timeout for a 256 MB upload (the fake parses each body before it answers) and a
        # request budget of MAX_REQUESTS_PER_MINUTE: at the default 50 a minute the client
        # spaces its requests 1.2 s apart (the fake enforces no limit).
        "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps(
            {
                "conn_type": "anthropic_batches",
                "host": url,
                "password": API_KEY,
                "extra": {"timeout": 600, "max_requests_per_minute": MAX_REQUESTS_PER_MINUTE},
            }
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--line-bytes", type=int, default=2560)
    parser.add_argument("--file", type=Path, default=None, help="use this JSONL file as it is")
    parser.add_argument(
        "--deferrable", action="store_true", help="defer on each shard (dag.test runs triggers)"
    )
    parser.add_argument(
        "--processing-seconds", type=float, default=1.0, help="how long the fake's batches run"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--write-doc", action="store_true", help="write the section of docs/benchmarks.md"
    )
    parser.add_argument(
        "--report-only",
        type=Path,
        default=None,
        metavar="JSON",
        help="print (with --write-doc, write) the section again from a saved --json report",
    )
    parser.add_argument("--run-case", nargs=5, metavar=("FILE", "URL", "WORK", "DAG", "OUT"))
    args = parser.parse_args(argv)
    if args.report_only:
        return finish(
            json.loads(args.report_only.read_text(encoding="utf-8")), None, args.write_doc
        )
    if args.run_case:
        file, url, work, dag_id, out = args.run_case
        result = run_case(Path(file), url, Path(work), dag_id)
        Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / "split_submit.log"
    dag_id = "split_submit_deferrable" if args.deferrable else "split_submit"
    report: dict[str, Any] = {"machine": machine_info(), "dag_id": dag_id}
    with tempfile.TemporaryDirectory(prefix="apb-split-bench-") as scratch:
        work = Path(scratch)
        path = args.file or work / "requests.jsonl"
        report["expected_shards"] = None
        if args.file is None:
            started = time.perf_counter()
            generate(path, args.requests, args.line_bytes)
            report["generate_s"] = round(time.perf_counter() - started, 1)
            report["expected_shards"] = expected_shards(args.requests, args.line_bytes)
            requests = args.requests
        else:
            requests = _count_lines(path)
        report["requests"] = requests
        report["file_gb"] = round(path.stat().st_size / 1e9, 2)
        if args.file is None:
            report["custom_id_map_mb"] = custom_id_map_mb(requests)
        print(f"request set {path}: {requests:,} requests, {report['file_gb']} GB", flush=True)
        fake = FakeProcess(
            sys.executable,
            0.0,
            RESULTS_DIR / "split_submit.fake.log",
            processing_seconds=args.processing_seconds,
        )
        try:
            env = _airflow_env(work, fake.url)
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                check=True,
                capture_output=True,
            )
            out = work / "result.json"
            report["load_before"] = load_average()
            print(f"running {dag_id} (log: {log_path}) ...", flush=True)
            with open(log_path, "wb") as sink:
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run-case",
                        str(path),
                        fake.url,
                        str(work),
                        dag_id,
                        str(out),
                    ],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=str(REPO_ROOT),
                    check=False,
                )
            report["load_after"] = load_average()
            report["fake"] = fake.usage()
        finally:
            fake.stop()
        if done.returncode or not out.exists():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            print(f"the run failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
            return 1
        report["result"] = json.loads(out.read_text(encoding="utf-8"))
        if report["result"].get("manifest_prefix"):
            report["written"] = check_written(report["result"], requests)
    report["processing_seconds"] = args.processing_seconds
    report["command"] = _command(argv, args)
    return finish(report, args.json, args.write_doc)


def finish(report: dict[str, Any], json_path: Path | None, write_doc: bool) -> int:
    """Print the section (and write it, and the raw report); non-zero if a target is missed."""
    verdicts = targets(report)
    report["targets"] = [
        {"target": what, "met": met, "measured": figure} for what, met, figure in verdicts
    ]
    lines = section(report, report["command"])
    print("\n".join(lines))
    if json_path:
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if write_doc:
        DOC.write(lines)
    missed = [what for what, met, _ in verdicts if not met]
    if missed:
        print(f"MISSED: {missed}", file=sys.stderr)
        return 1
    return 0


def _command(argv: list[str] | None, args: argparse.Namespace) -> str:
    shown = [arg for arg in (argv or sys.argv[1:]) if arg != "--write-doc"]
    if args.json:  # where this run kept its raw numbers is no part of the command
        shown = [arg for arg in shown if arg not in ("--json", str(args.json))]
    return " ".join(["python benchmarks/split_submit.py", *shown])


# ---- the report -------------------------------------------------------------------------------

#: This section goes after the first of these found (the order ``run_all.py`` keeps).
DOC = DocSection(
    "split_submit",
    after=[
        "<!-- structured_results:end -->",
        "<!-- submit_memory:end -->",
        "<!-- results_stream:end -->",
    ],
)


def phase_table(result: dict[str, Any]) -> list[str]:
    rows = [
        "| phase | wall s | CPU s | peak RSS growth MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, phase in result["phases"].items():
        rows.append(
            f"| {name} | {phase['wall_s']} | {phase['cpu_s']} | {phase['peak_rss_growth_mb']} |"
        )
    rows.append(
        f"| **whole run** | {result['wall_s']} | {result['cpu_s']} "
        f"| **{result['peak_rss_growth_mb']}** |"
    )
    return rows


def manifest_table(written: dict[str, Any]) -> list[str]:
    kinds = ("succeeded", "errored", "canceled", "expired", "total")
    rows = [
        "| shard | batch id | " + " | ".join(kinds) + " |",
        "| ---: | --- |" + " ---: |" * len(kinds),
    ]
    for index, shard in enumerate(written["shards"], 1):
        counts = shard["line_counts"]
        rows.append(
            f"| {index} | `{shard['batch_id']}` | "
            + " | ".join(f"{counts.get(kind, 0):,}" for kind in kinds)
            + " |"
        )
    counts = written["line_counts"]
    rows.append(
        "| **all** | manifest `line_counts` | "
        + " | ".join(f"**{counts.get(kind, 0):,}**" for kind in kinds)
        + " |"
    )
    return rows


def section(report: dict[str, Any], command: str) -> list[str]:
    result, machine = report["result"], report["machine"]
    written = report.get("written")
    phases = result["phases"]
    fake = report.get("fake", {})
    wait_mode = (
        "`deferrable=True`, deferring on each shard in turn (`dag.test()` runs the trigger in "
        "the same process)"
        if report["dag_id"].endswith("deferrable")
        else "`deferrable=False`, waiting in the worker"
    )
    lines = [
        "## A set past the API's limits: `split_oversized=True` (`benchmarks/split_submit.py`)",
        "",
        "Written by `benchmarks/split_submit.py --write-doc` (`run_all.py` keeps this section). "
        "One `MessageBatchOperator(split_oversized=True, results_path='file://...')` run with "
        "`dag.test()` in a fresh process (the DAG: `benchmarks/dags/split_submit_dag.py`), from "
        "the JSONL path to the results written, against the fake API in its own process "
        f"(batches end {report['processing_seconds']:g} s after their create). The same DAG "
        f"ran first on a {WARM_UP_REQUESTS}-request file in that process (imports, Airflow's "
        "one-time set-up); then the peak RSS was reset (`/proc/self/clear_refs`). Peak RSS "
        "growth: `VmHWM` minus the RSS at that reset, read and reset at each phase's end. CPU "
        "s: the whole process (all threads). The phases are the operator's calls: `check` "
        "(`build_request_shards`: read, check, fingerprint and spool every shard), `submit` "
        "(`submit_shards`: record, claim and create each shard), `wait` (until every shard "
        "ended), `results` (`write_shard_results`: one `results.jsonl`, one `manifest.json`).",
        "",
        f"Command: `{command}` ({machine['date_utc'][:16]} UTC; {machine['cpu_count']} CPUs, "
        f"{machine['mem_total_gib']} GiB, shared; load average (1/5/15 min) "
        f"{report['load_before']} before the run, {report['load_after']} after it).",
        "",
        f"{report['requests']:,} requests, {report['file_gb']} GB of JSONL; "
        f"{len(result['batch_ids'])} shards, {result['creates']} creates seen by the fake "
        f"(`FakeAdminClient`), {len(set(result['batch_ids']))} distinct batch ids; "
        f"check {phases.get('check', {}).get('wall_s')} s, submit "
        f"{phases.get('submit', {}).get('wall_s')} s, wait {phases.get('wait', {}).get('wall_s')}"
        f" s, results {phases.get('results', {}).get('wall_s')} s; {result['cpu_s']} CPU s in "
        f"all; peak RSS growth {result['peak_rss_growth_mb']} MB (RSS at the reset "
        f"{result['baseline_rss_mb']} MB).",
        "",
        *phase_table(result),
        "",
    ]
    id_map = report.get("custom_id_map_mb")
    after_check = [
        phase["peak_rss_growth_mb"]
        for name, phase in phases.items()
        if name not in ("setup", "check")
    ]
    if id_map is not None and after_check:
        lines += [
            "Where the peak is: the check keeps the hash of every custom_id read so far, "
            "across all shards (custom_ids must be unique in the whole set, one results file "
            f"holds them all); the check's set of this set's {report['requests']:,} custom_ids "
            f"alone takes {id_map} MB in a fresh process, whatever their length. It is freed "
            f"when the check returns: the phases after it peak at {max(after_check)} MB.",
            "",
        ]
    if written:
        lines += [
            f"The written manifest (`<results_path>/<first shard's id>-shards/manifest.json`), "
            f"read back; `results.jsonl`: {written['results_lines']:,} lines, "
            f"{written['results_gb']} GB:",
            "",
            *manifest_table(written),
            "",
        ]
    lines += [
        f"- The connection: `timeout` 600 s, `max_requests_per_minute` "
        f"{MAX_REQUESTS_PER_MINUTE:,} (at the default 50 the client spaces its requests 1.2 s "
        f"apart; the fake enforces no limit). The operator: {wait_mode}, `poll_interval=2`.",
        f"- The fake's own process (not counted above): {fake.get('cpu_s')} CPU s, peak RSS "
        f"{fake.get('peak_rss_mb')} MB (it parses each 256 MB create body before it answers).",
        "",
        "Targets (issue 21): "
        + "; ".join(
            f"{what}: {'met' if met else 'MISSED'} ({figure})"
            for what, met, figure in targets(report)
        )
        + ".",
    ]
    return lines


#: run_all.py keeps this section when it rewrites the page.
keep_section = DOC.keep


if __name__ == "__main__":
    sys.exit(main())
