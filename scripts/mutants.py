"""Mutation check: each one-line mutation of the package must make at least one test fail.

For every mutant: copy ``airflow_provider_batches`` to a temporary directory, replace one
snippet (which must occur exactly once, otherwise this script fails loudly: the code changed
and the mutant list needs updating), put the copy first on ``PYTHONPATH`` and run the few tests
meant to kill it (``pytest -x``). A mutant whose tests all pass has survived: exit status 1.

Before the mutants, the same test selection runs once on an unchanged copy: a selection that
fails without any mutation would "kill" every mutant and prove nothing.

Usage: ``python scripts/mutants.py [--list] [name ...]`` (``make mutants`` runs them all).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_batches"
#: Per-test hang guard inside a mutant run (a mutant may turn a wait into an endless loop).
TEST_TIMEOUT = 60


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the package
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "sensor never defers",
        "sensors/batch.py",
        "        if not self.deferrable:\n            return super().execute(context)\n",
        "        if True:\n            return super().execute(context)\n",
        (
            "tests/test_sensor_defers.py::"
            "test_deferrable_sensor_hands_an_unfinished_batch_to_the_trigger",
        ),
    ),
    Mutant(
        "parse_batch accepts a body describing another batch",
        "hooks/batch.py",
        "    if request.batch_id is not None and batch.id != request.batch_id:\n",
        "    if False:\n",
        ("tests/test_parse_batch_guards.py::test_a_2xx_body_describing_another_batch_is_rejected",),
    ),
    Mutant(
        "parse_batch accepts a body containing the API key",
        "hooks/batch.py",
        # parse_list_page has the same check: the comment below makes it parse_batch's.
        "    if secret and secret.encode() in response.content:\n"
        "        # Kept fields go to XCom and logs:"
        " a body that echoes the key is never accepted.\n",
        "    if False:\n"
        "        # Kept fields go to XCom and logs:"
        " a body that echoes the key is never accepted.\n",
        (
            "tests/test_parse_batch_guards.py::"
            "test_a_2xx_body_containing_the_api_key_is_rejected_without_showing_it",
        ),
    ),
    Mutant(
        "parse_batch skips the XCom serialization check",
        "hooks/batch.py",
        "        batch.to_xcom()  # fields kept from a hostile body must still serialize"
        " for XCom\n",
        "        pass\n",
        (
            "tests/test_parse_batch_guards.py::"
            "test_a_batch_that_cannot_be_serialized_for_xcom_is_an_invalid_response",
        ),
    ),
    Mutant(
        "404 made retryable",
        "retry.py",
        "RETRYABLE_STATUSES = frozenset({408, 409, 429})\n",
        "RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})\n",
        (
            "tests/test_retry.py::test_client_errors_are_not_retryable[404]",
            "tests/test_trigger.py::test_permanent_errors_end_the_wait_at_once[404-NotFoundError-not_found_error]",
        ),
    ),
    Mutant(
        "batch-id validation dropped",
        "batch_ids.py",
        "    problem = _batch_id_problem(batch_id)\n",
        "    problem = None\n",
        ("tests/test_hook.py::test_bad_batch_ids_never_reach_the_server",),
    ),
    Mutant(
        "API key in the trigger kwargs",
        "triggers/batch.py",
        '                "conn_id": self.conn_id,\n',
        '                "conn_id": self.conn_id,'
        ' "api_key": MessageBatchHook(self.conn_id).settings.api_key,\n',
        ("tests/test_sensor_defers.py::test_trigger_kwargs_hold_no_key_after_the_key_was_loaded",),
    ),
    Mutant(
        "permanent errors retried",
        "transport.py",
        "        if not retryable or self.attempt >= self.settings.max_retries:\n",
        "        if self.attempt >= self.settings.max_retries:\n",
        ("tests/test_trigger.py::test_permanent_errors_end_the_wait_at_once",),
    ),
    Mutant(
        "trigger ignores its deadline",
        "triggers/batch.py",
        # The check before each poll and the bound around each poll both enforce the deadline
        # (either alone keeps the guarantee), so the mutant drops the deadline itself.
        "        self.deadline = None if deadline is None else float(deadline)\n",
        "        self.deadline = None\n",
        ("tests/test_deadline.py::test_a_passed_deadline_ends_the_wait_before_any_poll",),
    ),
    Mutant(
        "the API key is not redacted from error bodies",
        "transport_errors.py",
        "            if form in text:\n",
        "            if False:\n",
        ("tests/reliability/test_secrets.py::test_key_echoed_in_an_error_body_is_redacted",),
    ),
    Mutant(
        "a failure streak never ends the wait",
        "triggers/batch.py",
        "        return self.count >= self.max_count or now - self.started >= self.max_seconds\n",
        "        return False\n",
        (
            "tests/test_trigger_bounds.py::"
            "test_a_failure_streak_ends_the_wait_after_max_consecutive_errors",
        ),
    ),
    Mutant(
        "the trigger ignores the expiry grace",
        "triggers/batch.py",
        "                if time.time() > batch.expires_at.timestamp() + self.expiry_grace:\n",
        "                if False:\n",
        (
            "tests/test_trigger_bounds.py::"
            "test_a_batch_never_reported_ended_times_out_after_expiry_grace",
        ),
    ),
    Mutant(
        "outcome policy inverted",
        "policy.py",
        "            if limit is not None and value > limit:\n",
        "            if limit is not None and value <= limit:\n",
        ("tests/test_policy.py::test_a_count_limit_fails_only_when_exceeded",),
    ),
    Mutant(
        "create resent after a 5xx (a second batch billed)",
        "retry.py",
        "    return status_code >= 500 and status_code not in REFUSAL_STATUSES\n",
        "    return False\n",
        ("tests/hardening/test_create_not_resent.py::test_create_is_sent_once_after_a_5xx",),
    ),
    Mutant(
        "an ambiguous create is treated as a clean failure (no adoption)",
        "submission.py",
        "    return isinstance(error, BatchCreateOutcomeUnknownError)\n",
        "    return False\n",
        ("tests/operator/test_operator_submission.py::test_which_create_failures_are_ambiguous",),
    ),
    Mutant(
        "a wait that ends in an error cancels its batch (cancel_on_timeout for any give-up)",
        "operators/batch.py",
        '    return event["status"] == "timeout" and event.get("reason") == "deadline"\n',
        '    return event["status"] != "success"\n',
        (
            "tests/operator/test_operator_cancels.py::test_a_wait_that_gives_up_cancels_only_at_its_own_deadline",
        ),
    ),
    Mutant(
        "a batch past its expiry that the API still reports running is canceled",
        "operators/batch.py",
        '    return event["status"] == "timeout" and event.get("reason") == "deadline"\n',
        '    return event["status"] == "timeout"\n',
        (
            "tests/operator/test_operator_cancels.py::test_a_wait_that_gives_up_cancels_only_at_its_own_deadline",
        ),
    ),
    Mutant(
        "a trigger the triggerer failed is taken for a user kill by the next try",
        "operators/batch.py",
        "        if next_method == TRIGGER_FAILED:\n",
        "        if False:\n",
        (
            "tests/operator/test_operator_cancels.py::"
            "test_a_trigger_that_failed_without_an_event_cancels_only_past_the_deadline",
        ),
    ),
    Mutant(
        "a trigger failed by the triggerer after the deadline cancels like a deferral timeout",
        "operators/batch.py",
        '        if failure.get("error") == DEFERRAL_TIMED_OUT and past_deadline:\n',
        "        if past_deadline:\n",
        (
            "tests/operator/test_operator_cancels.py::"
            "test_a_trigger_that_failed_without_an_event_cancels_only_past_the_deadline",
        ),
    ),
    Mutant(
        "no intent is published before the create",
        "submission.py",
        "        registry.open(\n",
        "        (lambda intent: None)(\n",
        (
            "tests/operator/test_operator_submission.py::test_a_lost_create_never_adopts_the_batch_another_map_index_made",
        ),
    ),
    Mutant(
        "a lost create adopts a batch another task instance's intent may have made",
        "submission.py",
        "            rivals.append(intent)\n",
        "            pass\n",
        (
            "tests/operator/test_operator_submission.py::test_a_lost_create_never_adopts_the_batch_another_map_index_made",
        ),
    ),
    Mutant(
        "a stale intent whose batch is claimed still blocks adoption",
        "submission.py",
        "            continue\n",
        "            pass\n",
        (
            "tests/operator/test_operator_submission.py::test_a_stale_intent_whose_batch_is_claimed_does_not_block_adoption",
        ),
    ),
    Mutant(
        "a try creates while an overlapping try's create may be under way",
        "submission.py",
        "        in_doubt = self.clock() < until\n",
        "        in_doubt = False\n",
        (
            "tests/operator/test_operator_submission.py::test_an_overlapping_try_never_creates_while_the_first_create_is_under_way",
        ),
    ),
    Mutant(
        "a create that certainly made nothing holds the next try back",
        "submission.py",
        '        if record.get("created_nothing") is True:\n',
        "        if False:\n",
        (
            "tests/operator/test_operator_submission.py::"
            "test_a_create_that_certainly_made_nothing_lets_the_next_try_create_at_once",
        ),
    ),
    Mutant(
        "the intent is never withdrawn once the batch is recorded",
        "submission.py",
        '        self.registry(int(intent["request_count"])).close(self.identity)\n',
        "        pass\n",
        (
            "tests/operator/test_operator_submission.py::test_first_try_creates_and_records_before_and_after",
        ),
    ),
    Mutant(
        "the listing window ignores the API's clock (Date header)",
        "submission.py",
        "    offset = server_time - local_time\n",
        "    offset = 0.0\n",
        (
            "tests/operator/test_operator_submission.py::test_a_worker_clock_ten_minutes_off_still_finds_its_lost_batch",
        ),
    ),
    Mutant(
        "an intent erased by a concurrent write is not written again",
        "intent_registry.py",
        "            if holds(self._read(key)):\n",
        "            if True:\n",
        (
            "tests/operator/test_operator_submission.py::test_an_intent_erased_by_a_stale_write_is_written_again",
        ),
    ),
    Mutant(
        "results_path writes but never hands the manifest to XCom",
        "operators/batch.py",
        '            context["ti"].xcom_push(key="manifest", value=manifest)\n',
        "            pass\n",
        (
            "tests/operator/test_operator_dag.py::"
            "test_results_path_stores_the_results_and_pushes_the_manifest",
        ),
    ),
    Mutant(
        "the event trigger emits an ended batch again on every poll",
        "triggers/events.py",
        "                if batch.id in seen:\n",
        "                if False:\n",
        (
            "tests/events/test_event_trigger.py::"
            "test_one_event_per_ended_batch_however_often_it_is_seen",
        ),
    ),
)


def apply(mutant: Mutant, copy_root: Path) -> None:
    """Write the mutation into the copy; fail loudly unless the snippet occurs exactly once."""
    target = copy_root / PACKAGE / mutant.path
    source = target.read_text(encoding="utf-8")
    found = source.count(mutant.original)
    if found != 1:
        raise SystemExit(
            f"MUTANT LIST OUT OF DATE: {mutant.name!r}: the snippet {mutant.original!r} occurs "
            f"{found} times in {PACKAGE}/{mutant.path} (exactly once expected). Update "
            "scripts/mutants.py to the current code."
        )
    target.write_text(source.replace(mutant.original, mutant.mutated), encoding="utf-8")


def fresh_copy(workdir: Path, name: str) -> Path:
    copy_root = workdir / name
    shutil.copytree(
        ROOT / PACKAGE, copy_root / PACKAGE, ignore=shutil.ignore_patterns("__pycache__")
    )
    return copy_root


def environment(copy_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy_root), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONSAFEPATH"] = "1"  # no current directory in front of the copy on sys.path
    return env


def check_import_source(copy_root: Path) -> None:
    """The test process must import the copy, not the installed package."""
    out = subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        env=environment(copy_root),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy_root.resolve()):
        raise SystemExit(f"the tests would import {out}, not the mutated copy in {copy_root}")


def run_tests(copy_root: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={TEST_TIMEOUT}",
        *tests,
    ]
    done = subprocess.run(
        command, env=environment(copy_root), cwd=ROOT, capture_output=True, text=True
    )
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only the mutants with these names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name}: {PACKAGE}/{mutant.path} -> {', '.join(mutant.tests)}")
        return 0
    if not mutants:
        raise SystemExit(f"no mutant named {args.names}; see --list")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="apb-mutants-") as tmp:
        workdir = Path(tmp)
        # Every snippet is checked before anything runs, so a stale list fails in seconds.
        for index, mutant in enumerate(mutants):
            apply(mutant, fresh_copy(workdir, f"check{index}"))
        baseline = fresh_copy(workdir, "baseline")
        check_import_source(baseline)
        selection = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        code, output = run_tests(baseline, selection)
        if code != 0:
            print(output)
            raise SystemExit("the selected tests fail WITHOUT any mutation: fix them first")
        print(f"baseline: {len(selection)} tests pass on the unmutated package")

        survivors: list[str] = []
        for index, mutant in enumerate(mutants):
            copy_root = workdir / f"check{index}"  # already mutated above
            check_import_source(copy_root)
            code, output = run_tests(copy_root, mutant.tests)
            if code == 1:
                verdict = "killed"
            elif code == 0:
                verdict = "SURVIVED"
                survivors.append(mutant.name)
            else:
                print(output)
                raise SystemExit(f"{mutant.name!r}: pytest could not run (exit status {code})")
            print(f"{verdict:8} {mutant.name}")
            failed = [line for line in output.splitlines() if line.startswith("FAILED")]
            reason = next((line for line in output.splitlines() if line.startswith("E ")), "")
            for line in failed + [reason.strip()][: bool(reason)]:
                print(f"         {line[:200]}")
    killed = len(mutants) - len(survivors)
    print(f"{killed}/{len(mutants)} mutants killed in {time.monotonic() - started:.0f} s")
    if survivors:
        print(f"survivors: {survivors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
