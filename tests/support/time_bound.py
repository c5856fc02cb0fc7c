"""Every test ends within its time bound, whatever the code under test does with signals.

pytest-timeout's default method arms ``SIGALRM``. Airflow arms it too and then sets the timer
to 0: the DAG importer does (every ``dag.test()`` parses its DAG file, and so does a
``DagBag``), and so does a task's ``execution_timeout``. That silently cancels pytest-timeout's
alarm, and a test stuck afterwards (in ``dag.test()``'s inline trigger loop, say) waited for
ever. This plugin implements pytest-timeout's timer hooks instead, so ``timeout`` in
``pyproject.toml``, ``--timeout``, ``-o timeout=N`` and ``@pytest.mark.timeout(N)`` keep their
meaning, with one watchdog thread that Airflow does not touch:

1. At the bound it records every thread's stack and interrupts the main thread with
   ``SIGUSR1``, whose handler fails the test (``pytest.fail``: a ``BaseException``, which the
   ``except Exception`` of Airflow or the provider does not swallow). It interrupts again every
   second until the test's phase ends: an exception raised inside an asyncio task's step is
   kept by the task, not raised.
2. A test whose code swallowed every interrupt and returned is reported failed all the same.
3. A test still running ``GRACE_SECONDS`` after its bound: the stacks and captured output are
   printed and the process exits with status 1 (pytest-timeout's thread method). A red run,
   never a stall.

Cost per test: a lock and a notify to arm and disarm; one thread for the whole session.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Generator
from types import FrameType
from typing import Any

import pytest
import pytest_timeout

#: How long a test may go on after its bound before the process is ended.
GRACE_SECONDS = 30.0
#: Seconds between interrupts once the bound has passed.
REPEAT_SECONDS = 1.0
INTERRUPT = signal.SIGUSR1


class _Watchdog:
    """The armed test, its deadline, and whether (and how) the bound was enforced."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.item: pytest.Item | None = None
        self.settings: Any = None
        self.deadline = 0.0
        self.grace = GRACE_SECONDS
        self.fired = False  # the bound passed while this test ran
        self.interrupting = False  # read without the lock by the signal handler
        self.stacks = ""
        self.reported = False

    def arm(self, item: pytest.Item, settings: Any) -> None:
        with self._cond:
            self.item, self.settings = item, settings
            self.deadline = time.monotonic() + float(settings.timeout)
            self.grace = float(item.config.getini("timeout_grace") or GRACE_SECONDS)
            self.fired = self.interrupting = self.reported = False
            self.stacks = ""
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="time bound", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self.item = None
            self.interrupting = False
            self._cond.notify()

    def phase_ended(self, item: pytest.Item) -> str | None:
        """Stop interrupting; once per test, the stacks taken when its bound passed."""
        with self._cond:
            self.interrupting = False
            if self.item is not item or not self.fired or self.reported:
                return None
            self.reported = True
            return self.stacks

    def _run(self) -> None:
        with self._cond:
            while True:
                if self.item is None:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                if not self.fired:
                    if now < self.deadline:
                        self._cond.wait(self.deadline - now)
                        continue
                    if pytest_timeout.is_debugging():
                        self.item = None
                        continue
                    self.fired = self.interrupting = True
                    self.stacks = _stacks()
                hard_deadline = self.deadline + self.grace
                if now >= hard_deadline:
                    # Prints the captured output and every stack, then os._exit(1).
                    pytest_timeout.timeout_timer(self.item, self.settings)
                if self.interrupting and signal.getsignal(INTERRUPT) is _on_interrupt:
                    signal.pthread_kill(threading.main_thread().ident or 0, INTERRUPT)
                    self._cond.wait(min(REPEAT_SECONDS, hard_deadline - now))
                else:
                    self._cond.wait(hard_deadline - now)


_watchdog = _Watchdog()


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    if _watchdog.interrupting:
        bound = _watchdog.settings.timeout if _watchdog.settings is not None else "?"
        pytest.fail(
            f"Timeout: the test ran past its time bound of {bound} s (tests/support/time_bound.py)"
        )


def _stacks() -> str:
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    me = threading.get_ident()
    return "\n".join(
        f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
        for ident, frame in sys._current_frames().items()
        if ident != me
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "timeout_grace",
        f"Seconds a test may run past its timeout before the process exits "
        f"(default {GRACE_SECONDS:g}; tests/support/time_bound.py)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool:
    if threading.current_thread() is threading.main_thread():
        signal.signal(INTERRUPT, _on_interrupt)  # again each test: code under test may replace it
    _watchdog.arm(item, settings)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool:
    _watchdog.disarm()
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    stacks = _watchdog.phase_ended(item)
    if stacks is None:
        return
    report: pytest.TestReport = outcome.get_result()
    if report.passed:  # the code under test swallowed every interrupt, then returned
        report.outcome = "failed"
        report.longrepr = (
            f"Timeout: the test ran past its time bound of {_watchdog.settings.timeout} s "
            "(tests/support/time_bound.py) and swallowed the interrupt"
        )
    report.sections.append(("Stacks when the time bound passed", stacks))
