"""The suite's time bound (tests/support/time_bound.py) ends a test whatever its code does.

Each case runs a small pytest session in a subprocess with the same hooks and a 1 s bound. The
code under test does what defeated pytest-timeout's signal method or could defeat the guard:
re-arming and clearing SIGALRM as Airflow's DAG importer does, an asyncio loop whose tasks keep
the exception, code that swallows the interrupt and returns, code that swallows it for ever.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SUPPORT_DIR = Path(__file__).resolve().parents[1] / "support"

CONFTEST = f"""
import sys
sys.path.insert(0, {str(SUPPORT_DIR)!r})
from time_bound import (  # noqa: F401
    pytest_addoption,
    pytest_runtest_makereport,
    pytest_timeout_cancel_timer,
    pytest_timeout_set_timer,
)
"""

CASES = """
import asyncio
import signal
import time

import pytest


def clear_the_alarm():
    # What Airflow's DAG importer does around every parse (dag.test(), DagBag).
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, 0)


def test_sleeps_after_sigalrm_was_cleared():
    clear_the_alarm()
    time.sleep(120)


def test_waits_in_an_event_loop_whose_tasks_keep_the_interrupt():
    clear_the_alarm()

    async def busy():
        while True:
            time.sleep(0.01)  # an interrupt lands in this task's step: the task keeps it
            await asyncio.sleep(0)

    async def main():
        for _ in range(3):
            asyncio.get_running_loop().create_task(busy())
        await asyncio.Event().wait()

    asyncio.run(main())


def test_swallows_the_interrupt_and_returns():
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            time.sleep(deadline - time.monotonic())
        except BaseException:
            return


@pytest.mark.timeout(60)
def test_within_its_own_bound():
    time.sleep(1.5)


def test_after_the_others():
    pass
"""

FOREVER = """
import time


def test_swallows_every_interrupt_for_ever():
    while True:
        try:
            time.sleep(60)
        except BaseException:
            pass
"""


def _session(tmp_path: Path, tests: str, grace: float) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(tests))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=1",
        "-o",
        f"timeout_grace={grace}",
        "-rA",
        str(tmp_path),
    ]
    # The outer bound only keeps this test from hanging if the guard itself were broken.
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def test_each_stuck_test_fails_and_the_session_goes_on(tmp_path: Path) -> None:
    done = _session(tmp_path, CASES, grace=60)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    for name in (
        "test_sleeps_after_sigalrm_was_cleared",
        "test_waits_in_an_event_loop_whose_tasks_keep_the_interrupt",
        "test_swallows_the_interrupt_and_returns",
    ):
        assert f"FAILED test_cases.py::{name}" in out
    assert "PASSED test_cases.py::test_within_its_own_bound" in out
    assert "PASSED test_cases.py::test_after_the_others" in out
    assert "ran past its time bound of 1.0 s" in out
    assert "swallowed the interrupt" in out
    assert "Stacks when the time bound passed" in out


def test_a_test_that_swallows_every_interrupt_ends_the_process(tmp_path: Path) -> None:
    done = _session(tmp_path, FOREVER, grace=1)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout" in done.stdout + done.stderr
    assert "test_swallows_every_interrupt_for_ever" in done.stdout + done.stderr
