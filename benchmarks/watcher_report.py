#!/usr/bin/env python
"""Watcher benchmarks (issue 12): many waits under the Batches API's tier-1 rate limit.

    PYTHONPATH=. .venv/bin/python benchmarks/watcher_report.py            # everything
    PYTHONPATH=. .venv/bin/python benchmarks/watcher_report.py --ns 100,1000 --skip-official

Scenarios, each one ``trigger_scale.py`` run (fake API in its own process, 50 ms latency):

- ``limited``: the fake enforces 50 requests per minute per key (429 + ``retry-after``
  beyond); our connection keeps its default budget (50 a minute); waits of N batches, polls
  every ``--limited-poll`` seconds. The official trigger runs the same scenario at the Ns in
  ``--official-ns`` (capped at ``--official-cap`` seconds).
- ``unlimited``: N = 1,000, 5 s polls, no rate limit: ours, and the trigger as it was before
  the watcher (``--before-src``, a checkout of the previous code: one retrieve per wait).

Writes the raw JSON to ``benchmarks/results/watcher-*.json``, the charts to
``docs/images/watcher-*.png`` (matplotlib, a benchmark-only dependency: see
``benchmarks/requirements.txt``) and the summary block at the top of ``docs/benchmarks.md``
(between the ``watcher-summary`` markers; the rest of the page is left as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    DOC_PATH,
    OFFICIAL_VENV_PYTHON,
    OUR_VENV_PYTHON,
    REPO_ROOT,
    RESULTS_DIR,
    load_average,
)

IMAGES = REPO_ROOT / "docs" / "images"
START = "<!-- watcher-summary:start -->"
END = "<!-- watcher-summary:end -->"
RPM = 50.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="100,1000,10000", help="N for the limited scenario")
    parser.add_argument("--official-ns", default="100,1000")
    parser.add_argument("--limited-poll", type=float, default=15.0)
    parser.add_argument("--ends", default="20,80", help="batch ends spread (s), limited runs")
    parser.add_argument("--official-cap", type=float, default=240.0)
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--before-src", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="redraw from saved JSON")
    parser.add_argument("--note", action="append", default=[])
    return parser.parse_args()


def run(name: str, provider: str, n: int, extra: list[str], src: Path | None = None) -> Any:
    out = RESULTS_DIR / f"watcher-{name}-n{n}.json"
    python = OUR_VENV_PYTHON if provider == "ours" else OFFICIAL_VENV_PYTHON
    command = [str(python), str(BENCH_DIR / "trigger_scale.py"), "--provider", provider]
    command += ["-n", str(n), "--latency", "0.05", "--out", str(out), *extra]
    command += ["--fake-python", str(OUR_VENV_PYTHON)]
    env = dict(os.environ)
    if provider == "ours":
        env["PYTHONPATH"] = str(src or REPO_ROOT)
    print(f"[{time.strftime('%H:%M:%S')}] {name} N={n}: {' '.join(command[1:])}", flush=True)
    with open(out.with_suffix(".log"), "wb") as sink:
        subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env, check=False)
    return json.loads(out.read_text()) if out.exists() else None


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    low, high = (float(x) for x in args.ends.split(","))
    limited = ["--rate-limit-rpm", str(RPM), "--poll-interval", str(args.limited_poll)]
    limited += ["--ends-min", str(low), "--ends-max", str(high)]
    results: dict[str, Any] = {"limited": {}, "official": {}, "unlimited": {}}
    results["load_before"] = load_average()
    for n in [int(x) for x in args.ns.split(",")]:
        cap = ["--max-seconds", str(high + 6 * args.limited_poll + 60)]
        results["limited"][n] = run("limited-ours", "ours", n, limited + cap)
    if not args.skip_official and OFFICIAL_VENV_PYTHON.exists():
        for n in [int(x) for x in args.official_ns.split(",")]:
            cap = ["--max-seconds", str(args.official_cap)]
            results["official"][n] = run("limited-official", "official", n, limited + cap)
    fast = ["--poll-interval", "5", "--ends-min", "2.5", "--ends-max", "7.5"]
    results["unlimited"]["ours"] = run("unlimited-ours", "ours", 1000, fast)
    if args.before_src is not None:
        before = run("unlimited-before", "ours", 1000, fast, src=args.before_src)
        results["unlimited"]["before"] = before
    results["load_after"] = load_average()
    (RESULTS_DIR / "watcher.json").write_text(json.dumps(results, indent=1))
    return results


def charts(results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(parents=True, exist_ok=True)
    panels = [
        ("lag_p99_s", "p99 detection lag (s)"),
        ("requests_per_minute", "requests per minute"),
        ("peak_rss_mb", "peak RSS (MB)"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for label, series, marker in (
            ("ours", results["limited"], "o-"),
            ("official", results["official"], "s--"),
        ):
            points = sorted((int(n), r[key]) for n, r in series.items() if r and r.get(key))
            if points:
                axis.plot(*zip(*points, strict=True), marker, label=label)
        if key == "requests_per_minute":
            axis.axhline(RPM, color="grey", linestyle=":", label="API limit (tier 1)")
        axis.set_xscale("log")
        axis.set_xlabel("waits (N)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("50 requests/minute enforced by the fake API, 50 ms latency")
    figure.tight_layout()
    path = IMAGES / "watcher-scale.png"
    figure.savefig(path, dpi=90)
    return [f"![lag, requests per minute and RSS against N](images/{path.name})"]


def _cell(result: Any, key: str) -> str:
    if not result:
        return "n/a"
    value = result.get(key)
    return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else f"{value}"


ROWS = [
    ("batch ends detected", "events"),
    ("non-success events", "non_success_events"),
    ("trigger exceptions", "trigger_exceptions"),
    ("not detected before the cap", "not_detected_before_timeout"),
    ("429s received", "http_429s"),
    ("requests", "http_requests"),
    ("requests per minute", "requests_per_minute"),
    ("p50 / p99 lag (s)", "lag"),
    ("TCP connections", "tcp_connections_opened"),
    ("peak RSS (MB)", "peak_rss_mb"),
    ("worst loop stall excl. GC and CPU wait (ms)", "stall_max_excl_gc_and_cpu_wait_ms"),
    ("worst loop stall, raw (ms)", "stall_max_ms"),
    ("GC-tracked objects per wait", "gc_objects_per_wait"),
    ("run time (s)", "run_wall_s"),
]


def table(columns: list[tuple[str, Any]]) -> list[str]:
    lines = ["| | " + " | ".join(name for name, _ in columns) + " |"]
    lines.append("| --- |" + " --- |" * len(columns))
    for label, key in ROWS:
        if key == "lag":
            cells = [
                f"{_cell(r, 'lag_p50_s')} / {_cell(r, 'lag_p99_s')}" if r else "n/a"
                for _, r in columns
            ]
        else:
            cells = [_cell(r, key) for _, r in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def objects_table(limited: dict[str, Any]) -> list[str]:
    """GC-tracked objects per wait by type, at the largest N (whole objects only)."""
    if not limited:
        return []
    n, result = max(limited.items(), key=_by_n)
    by_type = (result or {}).get("gc_objects_per_wait_by_type") or {}
    rows = [(name, share) for name, share in by_type.items() if share >= 0.5]
    if not rows:
        return []
    lines = [
        f"GC-tracked objects per wait at N = {int(n):,}, by type (types with at least one "
        "object for every two waits):",
        "",
        "| type | per wait |",
        "| --- | --- |",
    ]
    lines += [f"| `{name}` | {share} |" for name, share in sorted(rows, key=lambda r: -r[1])]
    return [*lines, ""]


def _by_n(item: tuple[Any, Any]) -> int:
    return int(item[0])


def summary(results: dict[str, Any], notes: list[str]) -> str:
    limited = results["limited"]
    official = results["official"]
    columns = [(f"ours N={int(n):,}", r) for n, r in sorted(limited.items(), key=_by_n)]
    columns += [(f"official N={int(n):,}", r) for n, r in sorted(official.items(), key=_by_n)]
    unlimited = results["unlimited"]
    lines = [
        START,
        "## Summary: one watcher per connection (issue 12)",
        "",
        "Generated by `benchmarks/watcher_report.py`. The fake API enforces **50 requests per "
        "minute** (tier 1) with 50 ms latency; every wait of a connection goes through one "
        "watcher (list pages, or retrieves where cheaper) and one request budget (default 50 a "
        "minute). The official trigger runs the same scenario"
        + ("" if official else " (not run this time: see the notes)")
        + f". Load average before/after: {results.get('load_before')} / "
        f"{results.get('load_after')}.",
        "",
        *charts(results),
        "",
        *table(columns),
        "",
        "N = 1,000, 5 s polls, no rate limit (the issue's side-by-side setting):",
        "",
        *table(
            [
                (name, r)
                for name, r in (
                    ("ours (watcher)", unlimited.get("ours")),
                    ("before the watcher", unlimited.get("before")),
                )
            ]
        ),
        "",
        *objects_table(limited),
        *[f"- {note}" for note in notes],
        "",
        "The tables below this summary come from `benchmarks/run_all.py --full` (before the "
        "watcher) and are kept as they were.",
        END,
        "",
    ]
    return "\n".join(lines)


def write_doc(text: str) -> None:
    current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    if START in current and END in current:
        head, rest = current.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
    else:
        head, tail = "", current
        if current.startswith("# "):
            title, _, tail = current.partition("\n")
            head = title + "\n\n"
    DOC_PATH.write_text(head + text + "\n" + tail)


def main() -> int:
    args = parse_args()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((RESULTS_DIR / "watcher.json").read_text())
    else:
        results = run_all(args)
    write_doc(summary(results, args.note))
    print(json.dumps({k: v for k, v in results.items() if k.startswith("load")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
