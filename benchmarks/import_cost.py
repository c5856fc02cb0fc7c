#!/usr/bin/env python
"""Import cost: what importing a provider's sensor, trigger and hook adds to ``import airflow.sdk``.

Every measurement is a fresh interpreter that imports ``airflow.sdk`` (timed on its own), then
the provider's modules, timing the second step with ``time.perf_counter`` and reading peak RSS
(``ru_maxrss``) and current RSS before and after it. Variants run round-robin so background
load spreads over all of them; one discarded warm-up run per variant writes bytecode first.

Bytecode: this machine sets ``PYTHONDONTWRITEBYTECODE=1``, which would make a source checkout
recompile its modules on every import while the official provider, installed by pip, loads
cached ``.pyc`` files. The children therefore run with bytecode writing on and
``PYTHONPYCACHEPREFIX`` pointing at ``benchmarks/results/pycache``, as a pip-installed package
would behave.

    .venv/bin/python benchmarks/import_cost.py --runs 7 --out benchmarks/results/import.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import OFFICIAL_VENV_PYTHON, OUR_VENV_PYTHON, RESULTS_DIR, median

OUR_MODULES = (
    "airflow_provider_batches.sensors.batch",
    "airflow_provider_batches.triggers.batch",
    "airflow_provider_batches.hooks.batch",
)
#: Every module a DAG file imports from this provider: both operators, the sensor, both triggers
#: (an AssetWatcher builds the event trigger in the DAG file) and the hook.
OUR_DAG_MODULES = (
    "airflow_provider_batches.operators.batch",
    "airflow_provider_batches.operators.results",
    "airflow_provider_batches.sensors.batch",
    "airflow_provider_batches.triggers.batch",
    "airflow_provider_batches.triggers.events",
    "airflow_provider_batches.hooks.batch",
)
OFFICIAL_MODULES = (
    "airflow.providers.anthropic.sensors.batch",
    "airflow.providers.anthropic.triggers.batch",
    "airflow.providers.anthropic.hooks.anthropic",
)

CHILD = r"""
import json, resource, sys, time

def rss_kb():
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

t0 = time.perf_counter()
import airflow.sdk  # noqa: F401
t1 = time.perf_counter()
peak1, rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_kb()
for name in sys.argv[1:]:
    __import__(name)
t2 = time.perf_counter()
peak2, rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_kb()
print("IMPORT_COST " + json.dumps({
    "sdk_s": t1 - t0,
    "sdk_peak_rss_kb": peak1,
    "added_s": t2 - t1,
    "added_peak_rss_kb": peak2 - peak1,
    "added_rss_kb": rss2 - rss1,
    "modules": len(sys.argv) - 1,
}))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS_DIR / "pycache")
    return env


def measure_once(python: Path, modules: tuple[str, ...]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), "-c", CHILD, *modules],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("IMPORT_COST "):
            result: dict[str, Any] = json.loads(line.split(" ", 1)[1])
            return result
    raise RuntimeError(
        f"{python} failed to import {modules} (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )


def variants(include_official: bool) -> list[tuple[str, Path, tuple[str, ...]]]:
    found = [
        ("ours: airflow.sdk only", OUR_VENV_PYTHON, ()),
        ("ours: sensor + trigger + hook", OUR_VENV_PYTHON, OUR_MODULES),
        ("ours: every module a DAG imports", OUR_VENV_PYTHON, OUR_DAG_MODULES),
    ]
    if include_official and OFFICIAL_VENV_PYTHON.exists():
        found += [
            ("official: airflow.sdk only", OFFICIAL_VENV_PYTHON, ()),
            ("official: sensor + trigger + hook", OFFICIAL_VENV_PYTHON, OFFICIAL_MODULES),
        ]
    return found


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        value = median([s[key] for s in samples])
        assert value is not None
        return value

    return {
        "runs": len(samples),
        "sdk_import_s_median": round(med("sdk_s"), 3),
        "sdk_peak_rss_mb_median": round(med("sdk_peak_rss_kb") / 1024, 1),
        "added_s_median": round(med("added_s"), 4),
        "added_s_min": round(min(s["added_s"] for s in samples), 4),
        "added_s_max": round(max(s["added_s"] for s in samples), 4),
        "added_peak_rss_mb_median": round(med("added_peak_rss_kb") / 1024, 2),
        "added_rss_mb_median": round(med("added_rss_kb") / 1024, 2),
        "samples": samples,
    }


def run(runs: int, include_official: bool, log: Any = None) -> dict[str, Any]:
    chosen = variants(include_official)
    for name, python, modules in chosen:  # warm-up: writes bytecode, fills the page cache
        if log:
            log(f"import cost: warm-up {name}")
        measure_once(python, modules)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in chosen}
    for index in range(runs):
        for name, python, modules in chosen:
            if log:
                log(f"import cost: run {index + 1}/{runs} {name}")
            samples[name].append(measure_once(python, modules))
    result: dict[str, Any] = {
        "method": (
            "fresh interpreter per run; import airflow.sdk, then the modules; "
            "added = time/peak-RSS of the second step; median over runs; variants round-robin"
        ),
        "modules": {
            "ours": list(OUR_MODULES),
            "ours_dag": list(OUR_DAG_MODULES),
            "official": list(OFFICIAL_MODULES),
        },
        "variants": {name: summarize(values) for name, values in samples.items()},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import cost of the providers' modules.")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-official", action="store_true", help="measure ours only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.runs, not args.no_official, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    for name, summary in result["variants"].items():
        print(
            f"{name:36s} sdk {summary['sdk_import_s_median']:.2f}s  "
            f"added {summary['added_s_median'] * 1000:7.1f} ms  "
            f"{summary['added_peak_rss_mb_median']:6.2f} MB peak RSS"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
