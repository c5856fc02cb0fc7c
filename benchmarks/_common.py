"""Helpers shared by the benchmark scripts (stdlib only: they also run in the official venv)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUR_VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
OFFICIAL_VENV = BENCH_DIR / ".venvs" / "official"
OFFICIAL_VENV_PYTHON = OFFICIAL_VENV / "bin" / "python"
RESULTS_DIR = BENCH_DIR / "results"
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def rss_now_kb() -> int:
    """Current resident set size of this process in KiB (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Peak RSS above the level when it was created, sampled on a thread."""

    def __init__(self) -> None:
        self.baseline = rss_now_kb()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_now_kb())

    def growth_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        return (max(self.peak, rss_now_kb()) - self.baseline) / 1024


def peak_rss_kb() -> int:
    """Peak resident set size of this process so far, in KiB (ru_maxrss is KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_open_files_limit() -> int:
    """Raise the open-files soft limit to the hard limit, as a triggerer deployment would."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _package_version(python: Path, distribution: str) -> str | None:
    code = (
        "import importlib.metadata as m, sys\n"
        "try:\n    print(m.version(sys.argv[1]))\n"
        "except m.PackageNotFoundError:\n    print('')\n"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", code, distribution],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load_average_at_start": load_average(),
        "open_files_limit": raise_open_files_limit(),
    }
    if OUR_VENV_PYTHON.exists():
        info["ours_airflow"] = _package_version(OUR_VENV_PYTHON, "apache-airflow")
        info["ours_httpx"] = _package_version(OUR_VENV_PYTHON, "httpx")
        info["ours_provider"] = _package_version(OUR_VENV_PYTHON, "airflow-provider-batches")
    if OFFICIAL_VENV_PYTHON.exists():
        info["official_airflow"] = _package_version(OFFICIAL_VENV_PYTHON, "apache-airflow")
        info["official_provider"] = _package_version(
            OFFICIAL_VENV_PYTHON, "apache-airflow-providers-anthropic"
        )
        info["official_anthropic_sdk"] = _package_version(OFFICIAL_VENV_PYTHON, "anthropic")
    return info


def dump_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class DocSection:
    """One benchmark's generated section of docs/benchmarks.md, between its two markers.

    ``after``: end markers of other sections; a section not yet in the page goes right after
    the first of them found there, else before the page's first ``## `` heading.
    """

    def __init__(self, name: str, after: Sequence[str] = ()) -> None:
        self.start = f"<!-- {name}:start -->"
        self.end = f"<!-- {name}:end -->"
        self.after = tuple(after)

    def keep(self, old: str, new: str) -> str:
        """``new`` with this section as ``old`` has it (for run_all.py's rewrite of the page)."""
        if self.start not in old or self.start in new:
            return new
        return self._insert(
            new, self.start + old.split(self.start, 1)[1].split(self.end, 1)[0] + self.end
        )

    def write(self, lines: Sequence[str]) -> None:
        """Replace this section of docs/benchmarks.md with ``lines`` (or add it)."""
        text = DOC_PATH.read_text(encoding="utf-8")
        block = "\n".join([self.start, *lines, self.end])
        if self.start in text:
            before, rest = text.split(self.start, 1)
            text = before + block + rest.split(self.end, 1)[1]
        else:
            text = self._insert(text, block)
        DOC_PATH.write_text(text, encoding="utf-8")

    def _insert(self, text: str, block: str) -> str:
        for marker in self.after:
            if marker in text:
                head, _, tail = text.partition(marker)
                return f"{head}{marker}\n\n{block}{tail}"
        head, _, tail = text.partition("\n## ")
        return f"{head.rstrip()}\n\n{block}\n\n## {tail}"
