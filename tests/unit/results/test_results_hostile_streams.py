"""Results reads against generated hostile streams: any mix of good, repeated, blank, foreign,
garbage, oversized and cut lines, error statuses, breaks and gzip, over several responses.

Whatever the server sends, a read ends after a bounded number of requests with either every
result of the batch once (each the first line served for its custom_id) or a clear provider
error; an overlong error only for a stream that was overlong; and ``write_results`` commits a
manifest only for a complete, correct set of lines. Streams a correct server could send (breaks
included, within the retry rules) are always read whole."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_results import KEY, Reply, ScriptedResults, line

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.send import MAX_STREAM_RESUMES
from airflow_provider_batches.exceptions import MessageBatchError
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results import MAX_SKIPPED_LINES, OverlongResultsError
from airflow_provider_batches.results.reader import iter_result_lines
from airflow_provider_batches.results.writer import write_results

MAX_LINE_BYTES = 4096
MAX_RETRIES = 2
ERROR_BODY = b'{"type":"error","error":{"type":"api_error","message":"scripted"}}'


@dataclass(frozen=True)
class Event:
    kind: str  # line, blank, garbage, huge
    index: int = 0
    variant: int = 0

    def raw(self) -> bytes:
        if self.kind == "line":
            return line(self.index, kind=("canceled", "expired")[self.variant])
        if self.kind == "blank":
            return b" " * self.variant
        if self.kind == "garbage":
            return b'{"custom_id": 1}'
        return line(self.index, pad=MAX_LINE_BYTES)


@dataclass(frozen=True)
class Response:
    status: int
    events: tuple[Event, ...] = ()
    end: str = "clean"
    cut: bool = False  # the body ends in the middle of a last line
    gzip: bool = False

    def reply(self) -> Reply:
        if self.status != 200:
            headers = {"retry-after": "0"} if self.status in (429, 503) else {}
            return Reply(status=self.status, headers=headers, body=lambda: [ERROR_BODY])
        pieces = [event.raw() + b"\n" for event in self.events]
        if self.cut:
            pieces.append(line(0)[:9])
        return Reply(
            body=lambda: tuple(pieces),
            end="break" if self.end == "break" else "clean",
            gzip=self.gzip,
        )


@st.composite
def _event(draw: st.DrawFn, total: int) -> Event:
    kind = draw(st.sampled_from(["line"] * 40 + ["blank"] * 8 + ["garbage", "huge"]))
    if kind == "line":
        # Mostly the batch's own ids; total and total + 1 are ids it does not have.
        index = draw(st.sampled_from([*range(total)] * 3 + [total, total + 1]))
        return Event("line", index, draw(st.integers(0, 1)))
    if kind == "blank":
        return Event("blank", 0, draw(st.integers(0, 3)))
    return Event(kind, draw(st.integers(0, total - 1)))


@st.composite
def hostile_scripts(draw: st.DrawFn) -> tuple[int, list[Response]]:
    total = draw(st.integers(1, 5))
    responses: list[Response] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 5)) == 0:
            responses.append(Response(draw(st.sampled_from([404, 429, 500, 503]))))
            continue
        # Often the batch's whole results, in some order, among whatever else comes.
        own = [Event("line", index) for index in draw(st.permutations(range(total)))]
        events = draw(st.lists(_event(total), max_size=4))
        if draw(st.integers(0, 2)):
            at = draw(st.integers(0, len(events)))
            events[at:at] = own[
                : draw(st.sampled_from([total, total, draw(st.integers(0, total))]))
            ]
        repeat = draw(st.sampled_from([1] * 8 + [2, 8]))  # 8: a body served over and over
        responses.append(
            Response(
                200,
                tuple(events * repeat),
                draw(st.sampled_from(["clean", "clean", "break"])),
                draw(st.booleans()),
                draw(st.booleans()),
            )
        )
    return total, responses


def _settings(server: ScriptedResults) -> ClientSettings:
    return ClientSettings(
        conn_id="hostile",
        base_url=server.base_url,
        api_key=KEY,
        timeout=5.0,
        max_retries=MAX_RETRIES,
        max_requests_per_minute=1_000_000,
    )


def _served(script: list[Response], requests: int) -> list[Response]:
    return [script[min(number, len(script) - 1)] for number in range(requests)]


def _first_lines(served: list[Response]) -> dict[str, bytes]:
    first: dict[str, bytes] = {}
    for response in served:
        for event in response.events:
            if event.kind in ("line", "huge"):
                first.setdefault(f"request-{event.index}", event.raw())
    return first


def _was_overlong(served: list[Response], total: int) -> bool:
    skipped = 0
    ids: set[int] = set()
    for response in served:
        in_response: set[int] = set()
        for event in response.events:
            if event.kind == "blank":
                skipped += 1
            elif event.kind == "line":
                skipped += event.index in in_response
                in_response.add(event.index)
                ids.add(event.index)
    return skipped > MAX_SKIPPED_LINES or len(ids) > total


def _check_outcome(
    script: list[Response],
    total: int,
    server: ScriptedResults,
    raws: list[bytes] | None,
    error: BaseException | None,
) -> None:
    # Bounded: each restart after progress, and each stall's retries, are capped.
    assert server.requests <= (MAX_STREAM_RESUMES + 1) * (MAX_RETRIES + 1)
    served = _served(script, server.requests)
    if error is not None:
        assert isinstance(error, MessageBatchError), repr(error)
        assert str(error).strip()
        assert KEY not in str(error)
        if isinstance(error, OverlongResultsError):
            assert _was_overlong(served, total)
        return
    assert raws is not None
    # A read that succeeded read every served response whole: none may have been overlong.
    assert not _was_overlong(served, total)
    first = _first_lines(served)
    ids = [_custom_id(raw) for raw in raws]
    assert len(ids) == len(set(ids)) == total
    # Every id served, none left out (a reader cannot tell the batch's own ids from others:
    # it knows only how many there are).
    assert set(ids) == set(first)
    for custom_id, raw in zip(ids, raws, strict=True):
        assert raw == first[custom_id]


def _custom_id(raw: bytes) -> str:
    value: Any = json.loads(raw)["custom_id"]
    return str(value)


def _batch(server: ScriptedResults, total: int) -> MessageBatch:
    return server.batch(total)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_scripts())
def test_a_read_ends_bounded_with_every_result_once_or_a_clear_error(
    script: tuple[int, list[Response]],
) -> None:
    total, responses = script
    with ScriptedResults([response.reply() for response in responses]) as server:
        raws: list[bytes] | None = None
        error: BaseException | None = None
        delays: list[float] = []
        try:
            raws = [
                item.raw
                for item in iter_result_lines(
                    _settings(server),
                    _batch(server, total),
                    max_line_bytes=MAX_LINE_BYTES,
                    sleep=delays.append,
                )
            ]
        except Exception as exc:
            error = exc
        _check_outcome(responses, total, server, raws, error)
        assert len(delays) == server.requests - 1  # one wait before each request sent again


class _Source:
    """What write_results needs of a hook, on the scripted server."""

    def __init__(self, server: ScriptedResults) -> None:
        self.settings = ClientSettings(
            conn_id="hostile-writer",
            base_url=server.base_url,
            api_key=KEY,
            timeout=5.0,
            max_retries=0,
            max_requests_per_minute=1_000_000,
        )

    def retrieve_batch(self, batch_id: str) -> MessageBatch:
        raise AssertionError("the batch is passed as retrieved")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(hostile_scripts())
def test_a_manifest_is_written_only_for_a_complete_correct_read(
    tmp_path: Path, script: tuple[int, list[Response]]
) -> None:
    total, responses = script
    root = tmp_path / uuid.uuid4().hex  # a fresh prefix per example: nothing to reuse
    with ScriptedResults([response.reply() for response in responses]) as server:
        error: BaseException | None = None
        manifest: dict[str, Any] | None = None
        try:
            manifest = write_results(
                _Source(server),
                _batch(server, total),
                f"file://{root}",
                max_line_bytes=MAX_LINE_BYTES,
            )
        except Exception as exc:
            error = exc
        stored = root / "msgbatch_scripted"
        if error is not None:
            assert not (stored / "manifest.json").exists()
            _check_outcome(responses, total, server, None, error)
            return
        assert manifest is not None
        raws = (stored / "results.jsonl").read_bytes().splitlines()
        _check_outcome(responses, total, server, raws, None)
        assert manifest["line_counts"]["total"] == total
        dropped = manifest["duplicate_lines_dropped"] + manifest["blank_lines_dropped"]
        assert dropped <= MAX_SKIPPED_LINES


@st.composite
def correct_scripts(draw: st.DrawFn) -> tuple[int, list[Response]]:
    """What a correct server may send: the batch's lines (in any order, the same each time),
    with transient statuses and breaks that the retry rules allow."""
    total = draw(st.integers(1, 12))
    order = draw(st.permutations(range(total)))
    lines = tuple(Event("line", index) for index in order)
    responses: list[Response] = []
    read = 0  # lines delivered so far
    resumes = 0
    failures = 0  # in the current stall: a failure after progress is the first of a new one
    while True:
        kind = draw(st.sampled_from(["ok", "status", "break", "cut"]))
        if failures == MAX_RETRIES or kind == "ok":
            responses.append(Response(200, lines, gzip=draw(st.booleans())))
            return total, responses
        if kind == "status":
            responses.append(Response(draw(st.sampled_from([429, 500, 503]))))
            failures += 1
            continue
        upto = draw(st.integers(0, total - 1))
        if resumes == MAX_STREAM_RESUMES:
            upto = min(upto, read)  # no restart left: this failure must count
        end = "break" if kind == "break" else "clean"
        responses.append(Response(200, lines[:upto], end=end, cut=kind == "cut"))
        if upto > read:
            read, resumes, failures = upto, resumes + 1, 1
        else:
            failures += 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(correct_scripts())
def test_what_a_correct_server_sends_is_read_whole(script: tuple[int, list[Response]]) -> None:
    total, responses = script
    with ScriptedResults([response.reply() for response in responses]) as server:
        lines = list(iter_result_lines(_settings(server), _batch(server, total), sleep=[].append))
    assert Counter(item.result.custom_id for item in lines) == Counter(
        f"request-{index}" for index in range(total)
    )
    assert server.requests == len(responses)


def test_the_scripts_reach_every_kind_of_ending() -> None:
    """The generator covers what the invariants are about (a guard against a vacuous test)."""
    kinds: set[str] = set()

    @settings(max_examples=150, deadline=None, database=None)
    @given(hostile_scripts())
    def collect(script: tuple[int, list[Response]]) -> None:
        for response in script[1]:
            kinds.add(str(response.status))
            kinds.update(event.kind for event in response.events)
            kinds.add(response.end)

    collect()
    assert {"200", "404", "line", "blank", "garbage", "huge", "break", "clean"} <= kinds
