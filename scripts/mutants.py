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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_batches"
#: Per-test hang guard inside a mutant run (a mutant may turn a wait into an endless loop):
#: the suite's time bound (tests/support/time_bound.py) fails such a test after this many seconds.
TEST_TIMEOUT = 60
#: What tests/support/time_bound.py allows a test past TEST_TIMEOUT before it ends the process.
TEST_GRACE = 30
#: Seconds a pytest run may spend outside its tests (start-up, the Airflow DB migration).
RUN_OVERHEAD = 300
#: Exit status reported for a run that outlived every bound: the suite's own guard failed.
HUNG = -1


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
            "tests/unit/sensors/test_sensor_defers.py::"
            "test_deferrable_sensor_hands_an_unfinished_batch_to_the_trigger",
        ),
    ),
    Mutant(
        "parse_batch accepts a body describing another batch",
        "hooks/batch.py",
        "    if request.batch_id is not None and batch.id != request.batch_id:\n",
        "    if False:\n",
        (
            "tests/unit/hooks/test_parse_batch_guards.py::test_a_2xx_body_describing_another_batch_is_rejected",
        ),
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
            "tests/unit/hooks/test_parse_batch_guards.py::"
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
            "tests/unit/hooks/test_parse_batch_guards.py::"
            "test_a_batch_that_cannot_be_serialized_for_xcom_is_an_invalid_response",
        ),
    ),
    Mutant(
        "404 made retryable",
        "_http/retry.py",
        "RETRYABLE_STATUSES = frozenset({408, 409, 429})\n",
        "RETRYABLE_STATUSES = frozenset({404, 408, 409, 429})\n",
        (
            "tests/unit/_http/test_retry.py::test_client_errors_are_not_retryable[404]",
            "tests/unit/triggers/test_trigger.py::test_permanent_errors_end_the_wait_at_once[404-NotFoundError-not_found_error]",
        ),
    ),
    Mutant(
        "batch-id validation dropped",
        "batch_ids.py",
        "    problem = _batch_id_problem(batch_id)\n",
        "    problem = None\n",
        ("tests/unit/hooks/test_hook.py::test_bad_batch_ids_never_reach_the_server",),
    ),
    Mutant(
        "API key in the trigger kwargs",
        "triggers/batch.py",
        '                "conn_id": self.conn_id,\n',
        '                "conn_id": self.conn_id,'
        ' "api_key": MessageBatchHook(self.conn_id).settings.api_key,\n',
        (
            "tests/unit/sensors/test_sensor_defers.py::test_trigger_kwargs_hold_no_key_after_the_key_was_loaded",
        ),
    ),
    Mutant(
        "permanent errors retried",
        "_http/send.py",
        "        if not retryable or self.attempt >= self.settings.max_retries:\n",
        "        if self.attempt >= self.settings.max_retries:\n",
        ("tests/unit/triggers/test_trigger.py::test_permanent_errors_end_the_wait_at_once",),
    ),
    Mutant(
        "trigger ignores its deadline",
        "triggers/batch.py",
        # The check before each poll and the bound around each poll both enforce the deadline
        # (either alone keeps the guarantee), so the mutant drops the deadline itself.
        "        self.deadline = None if deadline is None else float(deadline)\n",
        "        self.deadline = None\n",
        (
            "tests/unit/triggers/test_trigger_deadline.py::test_a_passed_deadline_ends_the_wait_before_any_poll",
        ),
    ),
    Mutant(
        "the API key is not redacted from error bodies",
        "_http/errors.py",
        "            if form in text:\n",
        "            if False:\n",
        ("tests/integration/test_secrets.py::test_key_echoed_in_an_error_body_is_redacted",),
    ),
    Mutant(
        "a failure streak never ends the wait",
        "triggers/batch.py",
        "        return self.count >= self.max_count or now - self.started >= self.max_seconds\n",
        "        return False\n",
        (
            "tests/unit/triggers/test_trigger_bounds.py::"
            "test_a_failure_streak_ends_the_wait_after_max_consecutive_errors",
        ),
    ),
    Mutant(
        # The same mutant under dag.test(): the suite's time bound must fail it, not hang
        # (Airflow's DAG importer cancels pytest-timeout's SIGALRM; tests/support/time_bound.py).
        "a failure streak never ends the wait under dag.test()",
        "triggers/batch.py",
        "        return self.count >= self.max_count or now - self.started >= self.max_seconds\n",
        "        return False\n",
        (
            "tests/unit/operators/test_operator_dag.py::"
            "test_too_many_failed_polls_leave_the_batch_running_for_the_next_try",
        ),
    ),
    Mutant(
        "the trigger ignores the expiry grace",
        "triggers/batch.py",
        "                if time.time() > batch.expires_at.timestamp() + self.expiry_grace:\n",
        "                if False:\n",
        (
            "tests/unit/triggers/test_trigger_bounds.py::"
            "test_a_batch_never_reported_ended_times_out_after_expiry_grace",
        ),
    ),
    Mutant(
        "outcome policy inverted",
        "utils/policy.py",
        "            if limit is not None and value > limit:\n",
        "            if limit is not None and value <= limit:\n",
        ("tests/unit/utils/test_policy.py::test_a_count_limit_fails_only_when_exceeded",),
    ),
    Mutant(
        "create resent after a 5xx (a second batch billed)",
        "_http/retry.py",
        "    return status_code >= 500 and status_code not in REFUSAL_STATUSES\n",
        "    return False\n",
        ("tests/unit/hooks/test_create_not_resent.py::test_create_is_sent_once_after_a_5xx",),
    ),
    Mutant(
        "an ambiguous create is treated as a clean failure (no adoption)",
        "operators/_submission.py",
        "    return isinstance(error, BatchCreateOutcomeUnknownError)\n",
        "    return False\n",
        ("tests/unit/operators/test_submission.py::test_which_create_failures_are_ambiguous",),
    ),
    Mutant(
        "a wait that ends in an error cancels its batch (cancel_on_timeout for any give-up)",
        "operators/batch.py",
        '    return event["status"] == "timeout" and event.get("reason") == "deadline"\n',
        '    return event["status"] != "success"\n',
        (
            "tests/unit/operators/test_operator_cancels.py::test_a_wait_that_gives_up_cancels_only_at_its_own_deadline",
        ),
    ),
    Mutant(
        "a batch past its expiry that the API still reports running is canceled",
        "operators/batch.py",
        '    return event["status"] == "timeout" and event.get("reason") == "deadline"\n',
        '    return event["status"] == "timeout"\n',
        (
            "tests/unit/operators/test_operator_cancels.py::test_a_wait_that_gives_up_cancels_only_at_its_own_deadline",
        ),
    ),
    Mutant(
        "a trigger the triggerer failed is taken for a user kill by the next try",
        "operators/batch.py",
        "        if next_method == TRIGGER_FAILED:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_operator_cancels.py::"
            "test_a_trigger_that_failed_without_an_event_cancels_only_past_the_deadline",
        ),
    ),
    Mutant(
        "a trigger failed by the triggerer after the deadline cancels like a deferral timeout",
        "operators/batch.py",
        '        if failure.get("error") == DEFERRAL_TIMED_OUT and past_deadline:\n',
        "        if past_deadline:\n",
        (
            "tests/unit/operators/test_operator_cancels.py::"
            "test_a_trigger_that_failed_without_an_event_cancels_only_past_the_deadline",
        ),
    ),
    Mutant(
        "no intent is published before the create",
        "operators/_submission.py",
        "        registry.open(\n",
        "        (lambda intent: None)(\n",
        (
            "tests/unit/operators/test_submission.py::test_a_lost_create_never_adopts_the_batch_another_map_index_made",
        ),
    ),
    Mutant(
        "a lost create adopts a batch another task instance's intent may have made",
        "operators/_submission.py",
        "            rivals.append(intent)\n",
        "            pass\n",
        (
            "tests/unit/operators/test_submission.py::test_a_lost_create_never_adopts_the_batch_another_map_index_made",
        ),
    ),
    Mutant(
        "a stale intent whose batch is claimed still blocks adoption",
        "operators/_submission.py",
        "            continue\n",
        "            pass\n",
        (
            "tests/unit/operators/test_submission.py::test_a_stale_intent_whose_batch_is_claimed_does_not_block_adoption",
        ),
    ),
    Mutant(
        "a try creates while an overlapping try's create may be under way",
        "operators/_submission.py",
        "        in_doubt = self.clock() < until\n",
        "        in_doubt = False\n",
        (
            "tests/unit/operators/test_submission.py::test_an_overlapping_try_never_creates_while_the_first_create_is_under_way",
        ),
    ),
    Mutant(
        "a create that certainly made nothing holds the next try back",
        "operators/_submission.py",
        '        if record.get("created_nothing") is True:\n',
        "        if False:\n",
        (
            "tests/unit/operators/test_submission.py::"
            "test_a_create_that_certainly_made_nothing_lets_the_next_try_create_at_once",
        ),
    ),
    Mutant(
        "the intent is never withdrawn once the batch is recorded",
        "operators/_submission.py",
        '        self.registry(int(intent["request_count"])).close(self.identity)\n',
        "        pass\n",
        (
            "tests/unit/operators/test_submission.py::test_first_try_creates_and_records_before_and_after",
        ),
    ),
    Mutant(
        "the listing window ignores the API's clock (Date header)",
        "operators/_submission.py",
        "    offset = server_time - local_time\n",
        "    offset = 0.0\n",
        (
            "tests/unit/operators/test_submission.py::test_a_worker_clock_ten_minutes_off_still_finds_its_lost_batch",
        ),
    ),
    Mutant(
        "an intent erased by a concurrent write is not written again",
        "operators/_intent_registry.py",
        "            if holds(self._read(key)):\n",
        "            if True:\n",
        (
            "tests/unit/operators/test_submission.py::test_an_intent_erased_by_a_stale_write_is_written_again",
        ),
    ),
    Mutant(
        "results_path writes but never hands the manifest to XCom",
        "operators/batch.py",
        "                output_type=self.results_output_type,\n"
        "            )\n"
        '            context["ti"].xcom_push(key="manifest", value=manifest)\n',
        "                output_type=self.results_output_type,\n            )\n",
        (
            "tests/unit/operators/test_operator_dag.py::"
            "test_results_path_stores_the_results_and_pushes_the_manifest",
        ),
    ),
    Mutant(
        "a failed list page is handed to the due waits again",
        "triggers/_watcher.py",
        "                self._pause_listing(error)\n                break\n",
        "                raise\n",
        (
            "tests/unit/triggers/test_watcher_listing.py::"
            "test_a_failed_list_page_is_charged_to_no_wait[404]",
        ),
    ),
    Mutant(
        "listing is not paused after a failed listing",
        "triggers/_watcher.py",
        "        self._list_paused_until = time.monotonic() + pause\n",
        "        self._list_paused_until = -math.inf\n",
        (
            "tests/unit/triggers/test_watcher_listing.py::"
            "test_listing_pauses_after_failures_doubling_and_a_good_page_resets_the_pause",
        ),
    ),
    Mutant(
        "the listing pause is not reset by a page that answers",
        "triggers/_watcher.py",
        "            self._list_failures = 0\n",
        "            pass\n",
        (
            "tests/unit/triggers/test_watcher_listing.py::"
            "test_listing_pauses_after_failures_doubling_and_a_good_page_resets_the_pause",
        ),
    ),
    Mutant(
        "the watcher pages on through pages that reach nothing older",
        "triggers/_watcher.py",
        "            if floor >= reached:",
        "            if False:",
        (
            "tests/unit/triggers/test_watcher_listing.py::test_pages_that_reach_no_older_batch_end_the_listing",
        ),
    ),
    Mutant(
        "the listing follows a cursor it followed before",
        "hooks/batch.py",
        "        elif cursor in self._followed:\n",
        "        elif False:\n",
        ("tests/unit/hooks/test_hook_listing.py::test_a_cursor_followed_before_ends_the_listing",),
    ),
    Mutant(
        "the listing has no page cap",
        "hooks/batch.py",
        "        elif self.pages_read >= self.max_pages:\n",
        "        elif False:\n",
        (
            "tests/unit/hooks/test_hook_listing.py::test_the_page_cap_ends_a_listing_whose_cursors_never_end",
        ),
    ),
    Mutant(
        "the listing sends a cursor that is not a batch id",
        "hooks/batch.py",
        "        elif not _is_batch_id(cursor):\n",
        "        elif False:\n",
        (
            "tests/unit/hooks/test_hook_listing.py::"
            "test_a_cursor_that_is_not_a_batch_id_ends_the_listing_without_an_error",
        ),
    ),
    Mutant(
        "a big list page is validated without letting the event loop run",
        "hooks/batch.py",
        "            if start:\n                await asyncio.sleep(0)",
        "            if False:\n                await asyncio.sleep(0)",
        (
            "tests/unit/hooks/test_hook_listing.py::"
            "test_a_big_page_is_validated_in_slices_with_the_loop_running_between",
        ),
    ),
    Mutant(
        "the event trigger takes a listing cut short by its cursor for complete",
        "triggers/events.py",
        "        return _by_end(ended), listing.complete\n",
        "        return _by_end(ended), listing.end != 'page cap'\n",
        (
            "tests/unit/triggers/test_event_listing.py::test_a_listing_ended_by_its_cursor_is_incomplete",
        ),
    ),
    Mutant(
        "the event trigger emits an ended batch again on every poll",
        "triggers/events.py",
        "                if entry.id in seen:\n",
        "                if False:\n",
        (
            "tests/unit/triggers/test_event_trigger.py::"
            "test_one_event_per_ended_batch_however_often_it_is_seen",
        ),
    ),
    Mutant(
        "the budget bursts a minute's worth at once",
        "_http/budget.py",
        "    return max(1, math.floor(per_minute / 60.0 * (1.0 - JITTER_ALLOWANCE_SECONDS)))\n",
        "    return max(1, math.floor(per_minute * (1.0 - JITTER_ALLOWANCE_SECONDS)))\n",
        (
            "tests/unit/_http/test_budget.py::"
            "test_under_a_seconds_worth_at_once_then_one_request_per_interval",
            "tests/unit/_http/test_budget_http.py::"
            "test_sync_threads_and_async_tasks_under_the_budget_receive_no_429",
        ),
    ),
    Mutant(
        "the budget holds nothing back for requests that reach the server late",
        "_http/budget.py",
        "    return max(1, math.floor(per_minute / 60.0 * (1.0 - JITTER_ALLOWANCE_SECONDS)))\n",
        "    return max(1, math.floor(per_minute / 60.0))\n",
        (
            "tests/unit/_http/test_budget.py::"
            "test_a_burst_that_reaches_the_server_late_finds_tokens_for_the_requests_after_it",
            "tests/unit/_http/test_budget.py::"
            "test_no_429_when_requests_reach_the_server_up_to_the_jitter_allowance_late",
        ),
    ),
    Mutant(
        "a rate the server stated is never raised again",
        "_http/budget.py",
        "                self._server_limit = limit\n",
        "                self._server_limit = min(limit, self._server_limit or limit)\n",
        ("tests/unit/_http/test_budget.py::test_the_limit_header_is_followed_down_and_back_up",),
    ),
    Mutant(
        "a rate the server stated goes above the configured maximum",
        "_http/budget.py",
        "        return self._configured if limit is None else min(self._configured, limit)\n",
        "        return self._configured if limit is None else limit\n",
        ("tests/unit/_http/test_budget.py::test_the_limit_header_is_followed_down_and_back_up",),
    ),
    Mutant(
        "a rate the server stated never lapses",
        "_http/budget.py",
        "        if self._server_limit is not None and self._server_limit_lapses <= now:\n",
        "        if False:\n",
        ("tests/unit/_http/test_budget.py::test_a_stated_limit_lapses_unless_restated",),
    ),
    Mutant(
        "a stated rate below one a minute is followed",
        "_http/budget.py",
        "        if limit is not None and limit < 1:\n",
        "        if False:\n",
        ("tests/unit/_http/test_budget.py::test_a_limit_that_cannot_be_followed_is_ignored",),
    ),
    Mutant(
        "queued requests sleep through a raised rate",
        "_http/budget.py",
        "                await sleep(min(wait, RECHECK_SECONDS))\n",
        "                await sleep(wait)\n",
        ("tests/unit/_http/test_budget.py::test_queued_requests_follow_a_raised_limit",),
    ),
    Mutant(
        "a cancelled wait keeps its turn in the budget",
        "_http/budget.py",
        "                self._abandoned.add(ticket)\n",
        "                pass\n",
        ("tests/unit/_http/test_budget.py::test_a_cancelled_wait_costs_the_others_nothing",),
    ),
    Mutant(
        "a 429's retry-after does not pause the connection",
        "_http/budget.py",
        "                self._pause(now, min(retry_after, MAX_PAUSE_SECONDS))\n",
        "                pass\n",
        (
            "tests/unit/_http/test_budget.py::test_a_pause_delays_the_next_send_by_retry_after",
            "tests/unit/_http/test_budget_http.py::"
            "test_one_429_pauses_every_queued_request_of_the_connection",
        ),
    ),
    Mutant(
        "a missing requests file is retried instead of failing at once",
        "request_set.py",
        '    except FileNotFoundError:\n        problem = "no such file"\n',
        "    except FileNotFoundError:\n        raise\n",
        (
            "tests/unit/test_request_set.py::test_a_string_that_is_no_request_set_fails_at_once_naming_it",
        ),
    ),
    Mutant(
        "a JSON array string is taken for a path",
        "request_set.py",
        '    if isinstance(source, str) and source.lstrip().startswith("["):\n',
        "    if False:\n",
        (
            "tests/unit/test_request_set.py::test_a_json_array_string_is_the_same_request_set_as_the_list",
        ),
    ),
    Mutant(
        "a transient fault of remote storage fails the task without retries",
        "request_set.py",
        "        if exc.errno not in _NO_SUCH_FILE or _is_remote(source):\n",
        "        if False:\n",
        (
            "tests/unit/test_request_set.py::test_a_transient_error_reading_remote_storage_stays_retryable",
        ),
    ),
    Mutant(
        "the provider description leaves out the operators",
        "provider_info.py",
        '            "Anthropic Message Batches for Apache Airflow: operators that submit '
        'batches and "\n',
        '            "Wait on Anthropic Message Batches from Airflow: hook, sensor, trigger. "\n',
        (
            "tests/distribution/test_install_docs.py::"
            "test_the_provider_description_names_the_operators_sensor_triggers_and_hook",
        ),
    ),
    Mutant(
        "a provider module imports a test tool",
        "testing/_ids.py",
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nimport pytest  # noqa: F401\n",
        (
            "tests/distribution/test_install_docs.py::"
            "test_importing_every_provider_module_loads_no_test_tooling",
        ),
    ),
    Mutant(
        "a results read skips a line repeated forever without limit",
        "results/lines.py",
        "        return self.blank_lines + self.duplicate_lines\n",
        "        return self.blank_lines\n",
        (
            "tests/unit/results/test_results_bounds.py::test_a_line_repeated_forever_ends_with_a_clear_error",
        ),
    ),
    Mutant(
        "a results read skips blank lines without limit",
        "results/lines.py",
        "        return self.blank_lines + self.duplicate_lines\n",
        "        return self.duplicate_lines\n",
        (
            "tests/unit/results/test_results_bounds.py::test_blank_lines_forever_end_with_a_clear_error",
        ),
    ),
    Mutant(
        "a results read accepts more distinct custom_ids than the batch has requests",
        "results/lines.py",
        "        if served_in is None and self.yielded >= self.expected:\n",
        "        if False:\n",
        (
            "tests/unit/results/test_result_models.py::"
            "test_cursor_skips_repeated_ids_and_refuses_more_ids_than_requests",
        ),
    ),
    Mutant(
        "a streamed body may drip bytes forever without a new line",
        "_http/body.py",
        "        elif now >= self._line_due:\n",
        "        elif False:\n",
        (
            "tests/unit/results/test_results_bounds.py::test_a_drip_that_never_completes_a_line_times_out",
        ),
    ),
    Mutant(
        "a streamed body is decoded whole, whatever it decompresses to",
        "_http/body.py",
        "            piece = self._zlib.decompress(pending, max_piece)\n",
        "            piece = self._zlib.decompress(pending)\n",
        (
            "tests/unit/results/test_results_bounds.py::test_decoding_never_makes_a_piece_longer_than_asked",
        ),
    ),
    Mutant(
        "streaming: progress does not reset the attempt count",
        "_http/send.py",
        "            self.attempt = 0\n",
        "            pass\n",
        ("tests/unit/results/test_results_bounds.py::test_progress_restarts_the_retry_count",),
    ),
    Mutant(
        "streaming: a body that keeps breaking after progress is resumed forever",
        "_http/send.py",
        "        if self.resumes < MAX_STREAM_RESUMES:\n",
        "        if True:\n",
        (
            "tests/unit/results/test_results_bounds.py::"
            "test_a_stream_that_keeps_breaking_after_progress_is_resumed_a_bounded_number_of_times",
        ),
    ),
    Mutant(
        "the manifest does not report the duplicate lines dropped",
        "results/manifest.py",
        '            "duplicate_lines_dropped": counts.duplicate_lines,\n',
        '            "duplicate_lines_dropped": 0,\n',
        ("tests/unit/results/test_results_bounds.py::test_the_manifest_counts_the_lines_dropped",),
    ),
    Mutant(
        "the event watermark follows an end in the future past the clock",
        "triggers/_event_window.py",
        "    newest = min(max(handled.values(), default=previous.horizon), now)\n",
        "    newest = max(handled.values(), default=previous.horizon)\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_an_end_in_the_future_never_moves_the_watermark_past_now",
        ),
    ),
    Mutant(
        "the event trigger trusts a stored horizon past its clock",
        "triggers/events.py",
        "        elif stored.horizon > _now():\n",
        "        elif False:\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_a_stored_watermark_past_now_gives_way_to_the_lookback_window",
        ),
    ),
    Mutant(
        "the event trigger uses an ended entry without ended_at",
        "triggers/_event_window.py",
        "    if batch.is_ended and batch.ended_at is None:\n",
        "    if False:\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_an_ended_entry_without_ended_at_is_skipped_and_the_batch_beside_it_reported",
        ),
    ),
    Mutant(
        "the event trigger uses an entry that ended before it was created",
        "triggers/_event_window.py",
        "    if batch.ended_at is not None and batch.ended_at < batch.created_at:\n",
        "    if False:\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_an_entry_that_ended_before_it_was_created_is_skipped",
        ),
    ),
    Mutant(
        "the event trigger uses an entry whose id is not a batch id",
        "triggers/_event_window.py",
        "        validate_batch_id(batch.id)\n",
        "        pass\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_an_entry_whose_id_is_not_a_batch_id_is_skipped",
        ),
    ),
    Mutant(
        "the event trigger uses impossible request counts",
        "triggers/_event_window.py",
        "    if any(isinstance(n, int) and not isinstance(n, bool) and n < 0"
        " for n in extra_counts):\n",
        "    if False:\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_impossible_request_counts_are_skipped_not_fatal_to_the_outcome_filter",
        ),
    ),
    Mutant(
        "one old entry anywhere on a page ends the event trigger's listing",
        "triggers/_event_window.py",
        "    passed_start = bool(usable) and usable[-1].created_at < start\n",
        "    passed_start = any(batch.created_at < start for batch in usable)\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_an_old_entry_out_of_order_does_not_end_the_listing",
        ),
    ),
    Mutant(
        "the event watermark forgets ids the list stopped showing",
        "triggers/_event_window.py",
        "    known = {**previous.ids, **handled}\n",
        "    known = dict(handled)\n",
        (
            "tests/unit/triggers/test_event_hostile_entries.py::"
            "test_a_batch_the_list_hides_for_a_while_is_not_reported_again_after_restarts",
        ),
    ),
    Mutant(
        "a lost create's listing ignores entries it could not read",
        "operators/_submission.py",
        "    if listing.skipped:\n",
        "    if False:\n",
        (
            "tests/unit/operators/test_submission.py::"
            "test_a_listing_that_may_have_missed_a_batch_is_ambiguous",
        ),
    ),
    Mutant(
        "a lost create's listing cut short by the pager counts as complete",
        "operators/_submission.py",
        "        if not listing.complete:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_submission.py::"
            "test_a_listing_that_may_have_missed_a_batch_is_ambiguous",
        ),
    ),
    Mutant(
        "a task's model, max_tokens and system are not filled into requests",
        "utils/request_options.py",
        "        if name not in filled and value is not None:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_the_task_s_model_max_tokens_and_system_fill_every_input_form",
        ),
    ),
    Mutant(
        "a task's values override a request's own",
        "utils/request_options.py",
        "        if name not in filled and value is not None:\n",
        "        if value is not None:\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_a_request_s_own_values_win_over_the_task_s_and_the_connection_s",
        ),
    ),
    Mutant(
        "the connection's default_model is ignored",
        "operators/batch.py",
        "            model = settings.default_model if model is None else model\n",
        "            model = model\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_the_connection_s_default_model_and_max_tokens_fill_what_the_task_leaves_unset",
        ),
    ),
    Mutant(
        "a request without a model fails without naming the task and the fix",
        "utils/request_options.py",
        "        if name not in filled:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_requests_without_a_model_fail_once_before_any_request_naming_the_task_and_fix",
        ),
    ),
    Mutant(
        "custom_id_field is not used",
        "utils/request_options.py",
        "        custom_id = str(value)\n",
        '        custom_id = f"record-{index}"\n',
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_records_map_through_a_prompt_template_and_a_custom_id_field",
        ),
    ),
    Mutant(
        "a record read without record options is taken for a request",
        "utils/request_options.py",
        '    if "custom_id" not in item and "params" not in item:\n',
        "    if False:\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_a_record_without_record_options_names_its_line_and_the_options",
        ),
    ),
    Mutant(
        "a policy error is a plain ValueError that does not name the task",
        "utils/policy.py",
        '        raise InvalidTaskOptionError(f"{task}: {error}") from None\n',
        "        raise\n",
        (
            "tests/unit/operators/test_request_defaults.py::"
            "test_policy_errors_name_the_task_and_no_retry_repeats_them",
        ),
    ),
    Mutant(
        "the submission log line repeats the batch id",
        "operators/batch.py",
        '        self.log.info("Batch %s (%s).", batch.progress_summary(), submission.how)\n',
        '        self.log.info("Batch %s (%s): %s", batch.id, submission.how, '
        "batch.progress_summary())\n",
        (
            "tests/unit/operators/test_request_defaults.py::test_the_submission_log_line_names_the_batch_once",
        ),
    ),
    Mutant(
        "a resent create's body does not start at its first byte",
        "request_set.py",
        "        self._spool.seek(0)\n",
        "        pass\n",
        (
            "tests/unit/operators/test_request_set_streaming.py::"
            "test_a_create_retried_after_429_and_529_sends_the_same_bytes",
        ),
    ),
    Mutant(
        "a create of a checked set builds its body in memory from the parsed requests",
        "hooks/batch.py",
        '        return ApiRequest("POST", url, None, idempotent=False, content=requests.body)\n',
        '        return ApiRequest("POST", url, None, {"requests": requests.requests}, '
        "idempotent=False)\n",
        (
            "tests/unit/operators/test_request_set_streaming.py::"
            "test_submitting_a_20_mb_file_grows_memory_by_a_few_mb",
        ),
    ),
    Mutant(
        "a streamed create body goes chunked, without its length",
        "_http/send.py",
        '        headers["content-length"] = str(request.content.length)\n',
        "        pass\n",
        (
            "tests/unit/operators/test_request_set_streaming.py::"
            "test_a_create_retried_after_429_and_529_sends_the_same_bytes",
        ),
    ),
    Mutant(
        "a file's requests are all kept in memory",
        "request_set.py",
        "        return _read_path(source, options), False, _parsed_encoder()\n",
        "        return _read_path(source, options), True, _parsed_encoder()\n",
        (
            "tests/unit/operators/test_request_set_streaming.py::"
            "test_submitting_a_20_mb_file_grows_memory_by_a_few_mb",
        ),
    ),
    Mutant(
        "orjson reads and writes floats that json writes in another form",
        "request_set.py",
        "        if not _has_other_floats(value):\n",
        "        if True:\n",
        (
            "tests/unit/operators/test_request_set_streaming.py::"
            "test_a_file_read_fast_gives_the_lists_body_and_the_fingerprint_before_streaming",
        ),
    ),
    Mutant(
        "costs leave out the batch discount",
        "cost/prices.py",
        "        return getattr(prices, kind) * self.batch_discount",
        "        return getattr(prices, kind) * 1",
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
        ),
    ),
    Mutant(
        "cost figures round half-up instead of half-even",
        "cost/batch_cost.py",
        "    return value.quantize(places, rounding=ROUND_HALF_EVEN)\n",
        '    return value.quantize(places, rounding="ROUND_HALF_UP")\n',
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
            "tests/unit/results/test_cost.py::test_the_manifest_rounds_each_figure_half_even_to_six_decimals",
        ),
    ),
    Mutant(
        "1-hour cache writes are priced as 5-minute writes",
        "cost/batch_cost.py",
        'usd(one_hour, "cache_write_1h")',
        'usd(one_hour, "cache_write_5m")',
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
        ),
    ),
    Mutant(
        "a model without a price gets no warning",
        "cost/batch_cost.py",
        "    if unpriced:\n        log.warning(\n",
        "    if False:\n        log.warning(\n",
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
        ),
    ),
    Mutant(
        "a batch with an unpriced model still reports a total",
        "cost/batch_cost.py",
        '        "total_usd": None if unpriced else priced_usd["total"],\n',
        '        "total_usd": priced_usd["total"],\n',
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
        ),
    ),
    Mutant(
        "a dated snapshot id is not priced as its model",
        "cost/prices.py",
        "        if suffix is not None and suffix.end() == len(model):\n",
        "        if False:\n",
        (
            "tests/unit/results/test_cost.py::test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total",
        ),
    ),
    Mutant(
        "price overrides lose to the shipped table",
        "cost/prices.py",
        "            models={**self.models, **overrides},\n",
        "            models={**overrides, **self.models},\n",
        (
            "tests/unit/results/test_cost.py::test_caller_prices_override_the_connection_which_overrides_the_shipped_table",
        ),
    ),
    Mutant(
        "a negative override price is accepted",
        "cost/prices.py",
        "    if number is None or not number.is_finite() or number < 0:\n",
        "    if number is None or not number.is_finite():\n",
        (
            "tests/unit/results/test_cost.py::test_a_bad_price_override_is_an_error_naming_the_field",
        ),
    ),
    Mutant(
        "write_results ignores the connection's prices extra",
        "results/writer.py",
        "price_table(settings.prices, overrides)",
        "price_table(overrides)",
        (
            "tests/unit/results/test_cost.py::test_write_results_puts_the_cost_in_the_manifest_and_ends_the_log_with_one_line",
        ),
    ),
    Mutant(
        "the operator submits without checking the spend cap",
        "operators/batch.py",
        "        self._check_spend(request_set.tally)\n",
        "",
        (
            "tests/unit/operators/test_operator_spend_guard.py::test_one_cent_over_the_cap_fails_before_any_request",
        ),
    ),
    Mutant(
        "the spend cap lets a bound one cent over through",
        "cost/guard.py",
        "    if bound.total_usd > cap:\n",
        "    if bound.total_usd > cap + Decimal('0.01'):\n",
        (
            "tests/unit/operators/test_operator_spend_guard.py::test_one_cent_over_the_cap_fails_before_any_request",
        ),
    ),
    Mutant(
        "the spend guard bounds output without max_tokens",
        "cost/guard.py",
        "Decimal(counts.max_tokens)",
        "Decimal(counts.requests)",
        (
            "tests/unit/operators/test_operator_spend_guard.py::test_the_bound_is_output_at_max_tokens_plus_input_at_one_token_per_byte",
        ),
    ),
    Mutant(
        "the spend guard prices cached input at the plain input price",
        "request_set.py",
        "        if b'\"cache_control\"' in encoded:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_operator_spend_guard.py::test_the_bound_is_output_at_max_tokens_plus_input_at_one_token_per_byte",
        ),
    ),
    Mutant(
        "a capped batch with an unpriced model is submitted",
        "cost/guard.py",
        "    if bound.unpriced:\n",
        "    if False:\n",
        (
            "tests/unit/operators/test_operator_spend_guard.py::test_a_model_without_a_price_fails_naming_it_and_how_to_add_one",
        ),
    ),
    Mutant(
        "a file's cost bound parses its requests back into memory",
        "request_set.py",
        "            tally=self._tally,\n",
        "            tally=None,\n",
        (
            "tests/unit/operators/test_operator_spend_guard.py::"
            "test_a_file_s_bound_comes_from_the_one_pass_not_the_requests_parsed_again",
        ),
    ),
    Mutant(
        "structured results: a fenced JSON block is not read as JSON",
        "results/structured.py",
        "    return rest\n",
        "    return text\n",
        (
            "tests/unit/results/test_structured_results.py::test_every_kind_of_answer_is_sorted_as_expected",
        ),
    ),
    Mutant(
        "structured results: several tool calls pass as one answer",
        "results/structured.py",
        "    if len(tool_calls) > 1:\n",
        "    if False:\n",
        (
            "tests/unit/results/test_structured_results.py::test_every_kind_of_answer_is_sorted_as_expected",
        ),
    ),
    Mutant(
        "structured results: NaN and Infinity pass as JSON",
        "results/structured.py",
        "_DECODER = json.JSONDecoder(parse_constant=_no_constant)",
        "_DECODER = json.JSONDecoder()",
        ("tests/unit/results/test_structured_results.py::test_nan_and_infinity_are_not_json",),
    ),
    Mutant(
        "structured results: a JSON schema error quotes a huge answer",
        "results/structured.py",
        "    if len(error.message) <= _SHORT_MESSAGE:\n",
        "    if True:\n",
        (
            "tests/unit/results/test_structured_results.py::test_every_kind_of_answer_is_sorted_as_expected",
        ),
    ),
    Mutant(
        "structured results: invalid answers written to parsed.jsonl",
        "results/writer.py",
        "                files[sorted_answer[0]].add(sorted_answer[1])\n",
        '                files["parsed"].add(sorted_answer[1])\n',
        (
            "tests/unit/results/test_structured_results.py::"
            "test_written_files_and_manifest_match_the_answers_served_by_the_fake",
        ),
    ),
    Mutant(
        "structured results: max_invalid_ratio never fails",
        "results/structured.py",
        "    if ratio <= max_invalid_ratio:\n",
        "    if True:\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_max_invalid_ratio_fails_past_it_and_passes_at_it",
        ),
    ),
    Mutant(
        "structured results: max_invalid_ratio fails at the ratio itself",
        "results/structured.py",
        "    if ratio <= max_invalid_ratio:\n",
        "    if ratio < max_invalid_ratio:\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_max_invalid_ratio_fails_past_it_and_passes_at_it",
        ),
    ),
    Mutant(
        "structured results: on_too_many_invalid='skip' fails the task",
        "results/structured.py",
        '    if on_too_many_invalid == "skip":\n',
        '    if on_too_many_invalid == "never":\n',
        (
            "tests/unit/results/test_structured_results.py::"
            "test_past_the_ratio_skip_skips_with_the_same_message_and_at_it_nothing_ends",
        ),
    ),
    Mutant(
        "MessageBatchResultsOperator ignores on_too_many_invalid",
        "operators/results.py",
        (
            "        check_invalid_answers("
            "manifest, self.max_invalid_ratio, self.on_too_many_invalid)\n"
        ),
        "        check_invalid_answers(manifest, self.max_invalid_ratio)\n",
        (
            "tests/unit/operators/test_results_operator.py::"
            "test_output_type_from_the_dag_file_validates_and_max_invalid_ratio_decides",
        ),
    ),
    Mutant(
        "MessageBatchOperator ignores results_on_too_many_invalid",
        "operators/batch.py",
        (
            "                manifest, self.results_max_invalid_ratio,"
            " self.results_on_too_many_invalid\n"
        ),
        "                manifest, self.results_max_invalid_ratio\n",
        (
            "tests/unit/operators/test_operator_structured.py::"
            "test_output_type_is_applied_and_the_ratio_fails_after_the_manifest_is_pushed",
        ),
    ),
    Mutant(
        "structured results: a rerun trusts a manifest of another output_type",
        "results/manifest.py",
        "        if problem is None and schema_sha256 is not None:\n",
        "        if False:\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_a_rerun_with_another_output_type_validates_again",
        ),
    ),
    Mutant(
        "MessageBatchOperator ignores results_max_invalid_ratio",
        "operators/batch.py",
        (
            "                manifest, self.results_max_invalid_ratio,"
            " self.results_on_too_many_invalid\n"
        ),
        "                manifest, None, self.results_on_too_many_invalid\n",
        (
            "tests/unit/operators/test_operator_structured.py::"
            "test_output_type_is_applied_and_the_ratio_fails_after_the_manifest_is_pushed",
        ),
    ),
    Mutant(
        "written results send no cost metric",
        "telemetry/metrics.py",
        '        count("cost_usd", usd, conn_id=conn_id, model=model or None)\n',
        "        pass\n",
        (
            "tests/unit/telemetry/test_metrics_statsd.py::"
            "test_a_dag_run_sends_batch_request_token_and_watcher_metrics",
        ),
    ),
    Mutant(
        "cache reads are not counted as tokens",
        "telemetry/metrics.py",
        '    "cache_read_input_tokens": "cache_read",\n',
        "",
        (
            "tests/unit/telemetry/test_metrics_statsd.py::"
            "test_a_dag_run_sends_batch_request_token_and_watcher_metrics",
        ),
    ),
    Mutant(
        "a created batch is not counted",
        "hooks/batch.py",
        "        batch = send(shared_sync_client(settings), settings, request, parse_batch)\n"
        "        metrics.batch_created(settings.conn_id, requests)\n",
        "        batch = send(shared_sync_client(settings), settings, request, parse_batch)\n",
        (
            "tests/unit/telemetry/test_metrics_statsd.py::"
            "test_a_dag_run_sends_batch_request_token_and_watcher_metrics",
        ),
    ),
    Mutant(
        "written results send no token metrics",
        "results/writer.py",
        "    metrics.results_written(settings.conn_id, manifest)\n",
        "",
        (
            "tests/unit/telemetry/test_metrics_statsd.py::"
            "test_a_dag_run_sends_batch_request_token_and_watcher_metrics",
        ),
    ),
    Mutant(
        "the watcher's waits gauge never returns to zero",
        "triggers/_watcher.py",
        "        finally:  # every wait is answered, or its loop is ending\n"
        '            metrics.gauge("watcher.waits", 0, conn_id=self.conn_id)\n',
        "        finally:  # every wait is answered, or its loop is ending\n            pass\n",
        (
            "tests/unit/telemetry/test_metrics_statsd.py::"
            "test_a_dag_run_sends_batch_request_token_and_watcher_metrics",
        ),
    ),
    Mutant(
        "a 429 is not counted as rate limited",
        "telemetry/metrics.py",
        "    if status_code == 429:\n",
        "    if status_code == 529:\n",
        (
            "tests/unit/telemetry/test_metrics_unit.py::"
            "test_api_responses_are_counted_by_class_and_429s_apart",
        ),
    ),
    Mutant(
        "a canceled batch is counted as ended by another status",
        "telemetry/metrics.py",
        "    if batch.cancel_initiated_at is not None:\n",
        "    if batch.cancel_initiated_at is None:\n",
        (
            "tests/unit/telemetry/test_metrics_unit.py::test_an_ended_batch_is_counted_by_how_it_ended",
        ),
    ),
    Mutant(
        "an unpriced total is counted as zero cost",
        "telemetry/metrics.py",
        '    return {"": float(total)} if _is_number(total) else {}\n',
        '    return {"": float(total or 0)}\n',
        (
            "tests/unit/telemetry/test_metrics_unit.py::"
            "test_cost_is_read_per_model_and_an_unpriced_model_is_left_out",
        ),
    ),
    Mutant(
        "a server's model name goes into a tag unsanitized",
        "telemetry/metrics.py",
        '        key: _UNSAFE_TAG_CHARS.sub("_", str(value))[:MAX_TAG_CHARS]\n',
        "        key: str(value)\n",
        ("tests/unit/telemetry/test_metrics_unit.py::test_tag_values_are_made_safe_and_bounded",),
    ),
    Mutant(
        "a failing metrics backend reaches the caller",
        "telemetry/metrics.py",
        "    except Exception as error:  # a metric is never worth failing or slowing a task for\n",
        "    except ImportError as error:\n",
        (
            "tests/unit/telemetry/test_metrics_unit.py::"
            "test_a_failing_metrics_backend_never_reaches_the_caller",
        ),
    ),
    Mutant(
        "the first sends in an event loop are made on the loop",
        "telemetry/metrics.py",
        "            if self.warm or not _in_event_loop():\n",
        "            if True:\n",
        (
            "tests/unit/telemetry/test_metrics_unit.py::"
            "test_first_sends_in_an_event_loop_are_made_off_the_loop_in_order",
        ),
    ),
    Mutant(
        "the operator reports no results prefix to OpenLineage",
        "operators/batch.py",
        "            self.record_lineage(manifest=manifest)\n",
        "",
        (
            "tests/unit/telemetry/test_lineage.py::"
            "test_a_dag_run_emits_the_requests_file_results_prefix_and_batch_facet",
        ),
    ),
    Mutant(
        "a dataset name keeps the URL's user part (a connection id or credentials)",
        "telemetry/lineage.py",
        '    bucket = parts.hostname or ""\n',
        "    bucket = parts.netloc\n",
        ("tests/unit/telemetry/test_lineage.py::test_dataset_names_follow_openlineage_naming",),
    ),
    Mutant(
        "the lineage module imports OpenLineage when the operators are imported",
        "telemetry/lineage.py",
        "import functools\n",
        "import functools\nimport openlineage.client\n",
        ("tests/unit/telemetry/test_lineage.py::test_the_operators_load_no_openlineage_module",),
    ),
    Mutant(
        "a submit-only operator waits anyway",
        "operators/batch.py",
        "        if not self.wait_for_completion:\n",
        "        if False:\n",
        (
            "tests/unit/operators/test_operator_submit_only.py::"
            "test_submit_only_returns_the_id_that_the_sensor_and_results_operator_take",
        ),
    ),
    Mutant(
        "results_path with a submit-only operator is accepted",
        "operators/batch.py",
        "    if not wait_for_completion and results_path:\n",
        "    if False:\n",
        (
            "tests/unit/operators/test_operator_submit_only.py::"
            "test_results_path_without_waiting_fails_at_parse",
        ),
    ),
    Mutant(
        "the event trigger's origin filter lets every batch through",
        "triggers/events.py",
        "                if ours is not None and entry.id not in ours:\n",
        "                if False:\n",
        (
            "tests/unit/testing/test_testing_events.py::"
            "test_an_event_driven_dag_runs_on_the_batches_this_deployment_submitted",
        ),
    ),
    Mutant(
        "a failed claim lookup drops the batch instead of failing the poll",
        "triggers/events.py",
        "            except Exception as error:  # whatever the Variables backend raises\n",
        "            except Exception as error:  # whatever the Variables backend raises\n"
        "                continue\n",
        (
            "tests/unit/testing/test_testing_events.py::"
            "test_a_failed_claim_lookup_fails_the_poll_and_drops_no_event",
        ),
    ),
    Mutant(
        "the event trigger serializes origin when it is the default",
        "triggers/events.py",
        'only_when_set = {} if self.origin == "any" else {"origin": self.origin}',
        'only_when_set = {"origin": self.origin}',
        (
            "tests/unit/testing/test_testing_events.py::"
            "test_origin_is_checked_and_serialized_only_when_set",
        ),
    ),
    Mutant(
        "events_from runs on past max_events",
        "testing/events.py",
        "        if max_events is not None and len(payloads) >= max_events:\n",
        "        if False:\n",
        (
            "tests/unit/testing/test_testing_events.py::"
            "test_events_from_returns_the_payload_of_each_ended_batch",
        ),
    ),
    Mutant(
        "run_dag_with_asset_events attaches no event to the run",
        "testing/events.py",
        "        _add_events(session, run, asset, extras)\n",
        "        pass\n",
        (
            "tests/unit/testing/test_testing_events.py::"
            "test_an_event_driven_dag_runs_on_the_batches_this_deployment_submitted",
        ),
    ),
    Mutant(
        "every JSON schema answer is decided by jsonschema",
        "results/structured.py",
        "        if is_valid is not None and is_valid(answer):\n",
        "        if False:\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_a_valid_answer_is_decided_without_jsonschema",
        ),
    ),
    Mutant(
        "a fractional multipleOf is decided by jsonschema-rs",
        "results/structured.py",
        "    if validator_name not in _COMPILED_DRAFTS or _has_fractional_multiple_of(schema):\n",
        "    if validator_name not in _COMPILED_DRAFTS:\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_a_json_schema_answer_is_valid_exactly_when_jsonschema_says_so",
        ),
    ),
    Mutant(
        "jsonschema fetches a remote $ref",
        "results/structured.py",
        "    validator = validator_class(schema, registry=registry)\n",
        "    validator = validator_class(schema)\n",
        (
            "tests/unit/results/test_structured_results.py::"
            "test_a_remote_ref_is_never_fetched_and_fails_naming_the_fix",
        ),
    ),
    Mutant(
        "the fake's answer hook is never asked",
        "testing/_routes.py",
        '            contents=None if hook is None else _hooked_answers(hook, body["requests"]),\n',
        "            contents=None,\n",
        (
            "tests/unit/testing/test_fake_api.py::"
            "test_the_answer_hook_answers_each_request_created_through_the_api",
            "tests/system/test_example_structured.py::"
            "test_answers_that_call_the_tool_are_loaded_as_rows",
        ),
    ),
    Mutant(
        "custom_ids seen are kept whole, not as hashes",
        "request_set.py",
        "        key = self._key(custom_id)\n",
        "        key = custom_id\n",
        (
            "tests/unit/test_request_set.py::"
            "test_custom_ids_cost_the_same_few_bytes_however_long_they_are",
        ),
    ),
    Mutant(
        "a custom_id whose hash was seen is taken for a repeat",
        "request_set.py",
        "                    return None  # another custom_id with the same hash: no repeat\n",
        "                    return -1\n",
        ("tests/unit/test_request_set.py::test_different_custom_ids_with_one_hash_are_no_repeat",),
    ),
    Mutant(
        "a repeat's earlier request is not looked up",
        "request_set.py",
        "                    return earlier\n",
        "                    return -1\n",
        ("tests/unit/test_request_set.py::test_a_repeat_in_a_file_names_its_first_line_s_request",),
    ),
    Mutant(
        "a split set's shards share one identity (a retry re-creates shards)",
        "operators/_shards.py",
        "            shard_identity = replace(identity, shard=index)\n",
        "            shard_identity = identity\n",
        (
            "tests/unit/operators/test_operator_shards.py::test_retry_after_sigkill_after_shard_two_of_three_creates_only_shard_three",
        ),
    ),
    Mutant(
        "a shard is cut one request past the byte limit",
        "request_set.py",
        "        return self.count < MAX_REQUESTS and grown <= MAX_BODY_BYTES\n",
        "        return self.count < MAX_REQUESTS and grown <= MAX_BODY_BYTES + 64\n",
        (
            "tests/unit/test_request_set_shards.py::test_shards_are_the_input_in_order_each_within_the_limits",
        ),
    ),
    Mutant(
        "custom_ids are checked per shard, not across the set",
        "request_set.py",
        "                current, kept = _Checked(encode, seen), []\n",
        "                current, kept = _Checked(encode, {}), []\n",
        ("tests/unit/test_request_set_shards.py::test_custom_ids_are_unique_across_shards",),
    ),
    Mutant(
        "on_kill cancels only one shard",
        "operators/batch.py",
        "        for batch_id in self._waiting_for_shards or single:\n",
        "        for batch_id in self._waiting_for_shards[:1] or single:\n",
        (
            "tests/unit/operators/test_operator_shards.py::test_on_kill_in_the_worker_cancels_every_shard",
        ),
    ),
    Mutant(
        "a shard's give-up on the deadline cancels only that shard",
        "operators/batch.py",
        '            note = cancel_running(self.hook, batch_ids, "cancel_on_timeout=True")\n',
        '            note = cancel_running(self.hook, [batch_id], "cancel_on_timeout=True")\n',
        (
            "tests/unit/operators/test_operator_shards.py::test_a_wait_past_its_deadline_cancels_every_shard",
        ),
    ),
    Mutant(
        "the split set's wait finishes before every shard ended",
        "operators/batch.py",
        "        if not running:\n            return self._finish_shards(batches, context)\n",
        "        if True:\n            return self._finish_shards(batches, context)\n",
        (
            "tests/unit/operators/test_operator_shards.py::test_a_split_set_waits_for_every_shard_and_writes_one_manifest",
        ),
    ),
    Mutant(
        "a deferred shard's kill cancels only its own batch",
        "triggers/batch.py",
        "        for batch_id in [self.batch_id, *self.cancel_with]:\n",
        "        for batch_id in [self.batch_id]:\n",
        (
            "tests/unit/operators/test_operator_trigger_kill.py::test_on_kill_cancels_the_other_shards_it_names",
        ),
    ),
    Mutant(
        "a split set is submitted without the spend guard",
        "operators/batch.py",
        "        self._check_spend(RequestTally.merged(shard.tally for shard in shards))\n",
        "        pass\n",
        (
            "tests/unit/operators/test_operator_shards.py::"
            "test_a_split_set_over_the_spend_cap_sends_nothing",
        ),
    ),
    Mutant(
        "a split set is accepted for submit-only",
        "operators/batch.py",
        "    if split_oversized and wait_for_completion is False:\n",
        "    if False:\n",
        (
            "tests/unit/operators/test_operator_shards.py::"
            "test_what_a_split_set_cannot_do_fails_at_dag_parse",
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
        "-o",
        f"timeout_grace={TEST_GRACE}",
        *tests,
    ]
    # A second guard, outside pytest: if the suite's time bound ever failed, the run still ends.
    outer = RUN_OVERHEAD + len(tests) * (TEST_TIMEOUT + TEST_GRACE)
    try:
        done = subprocess.run(
            command,
            env=environment(copy_root),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=outer,
        )
    except subprocess.TimeoutExpired as expired:
        output = [expired.stdout, expired.stderr]
        text = "".join(o.decode() if isinstance(o, bytes) else (o or "") for o in output)
        return HUNG, text + f"\nstill running after {outer} s: the tests' time bound failed"
    return done.returncode, done.stdout + done.stderr


def markdown_table() -> str:
    """The table of ``docs/reliability.md``: each mutant and the tests that kill it."""
    rows = ["| mutant | killed by |", "| --- | --- |"]
    for mutant in MUTANTS:
        tests = ", ".join(f"`{test.removeprefix('tests/')}`" for test in mutant.tests)
        rows.append(f"| {mutant.name.replace('|', '/')} | {tests} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only the mutants with these names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="mutants run at once (default: the CPU count, at least 2)",
    )
    parser.add_argument(
        "--table", action="store_true", help="print the docs/reliability.md table and exit"
    )
    args = parser.parse_args()
    if args.table:
        print(markdown_table(), end="")
        return 0
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

        def run_one(index: int) -> tuple[int, str]:
            copy_root = workdir / f"check{index}"  # already mutated above
            check_import_source(copy_root)
            return run_tests(copy_root, mutants[index].tests)

        # Each mutant runs in its own copy and its own pytest process (its own Airflow home and
        # ports), so several run at once; the tests mostly wait on servers.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for mutant, (code, output) in zip(
                mutants, pool.map(run_one, range(len(mutants))), strict=True
            ):
                if code == HUNG:
                    print(output[-5000:])
                    raise SystemExit(f"{mutant.name!r}: the tests outlived every time bound (hang)")
                if code == 1:
                    verdict = "killed"
                elif code == 0:
                    verdict = "SURVIVED"
                    survivors.append(mutant.name)
                else:
                    print(output)
                    raise SystemExit(f"{mutant.name!r}: pytest could not run (exit status {code})")
                print(f"{verdict:8} {mutant.name}", flush=True)
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
