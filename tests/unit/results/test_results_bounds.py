"""A results server cannot make a read run long or grow: a line repeated forever, endless blank
lines, a drip of bytes, breaks after a little progress again and again, or a gzip bomb each end
the read with an error naming what was wrong, long before the server runs out of bytes; the
writer commits no manifest for them. What a read skips is counted in the manifest.

The scripted server stops by itself after ``CAP`` bytes, so a reader without these bounds still
ends (with the wrong error) and the test fails instead of hanging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scripted_results import (
    KEY,
    Reply,
    ScriptedResults,
    forever,
    line,
    lines_reply,
)

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches._http.body import BodyDecoder
from airflow_provider_batches._http.send import MAX_STREAM_RESUMES
from airflow_provider_batches.exceptions import APIConnectionError, APITimeoutError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.results import (
    MAX_SKIPPED_LINES,
    IncompleteResultsError,
    OverlongResultsError,
)
from airflow_provider_batches.results.reader import iter_result_lines
from airflow_provider_batches.results.writer import write_results

#: Bytes the scripted server sends at most; a bounded read stops far below.
CAP = 48 * 1024 * 1024


def _sync(hook: MessageBatchHook, batch: MessageBatch) -> list[Any]:
    return list(hook.iter_results(batch))


def _async(hook: MessageBatchHook, batch: MessageBatch) -> list[Any]:
    async def run() -> list[Any]:
        return [result async for result in hook.aiter_results(batch)]

    return asyncio.run(run())


READERS = pytest.mark.parametrize("read", [_sync, _async], ids=["sync", "async"])


@pytest.fixture
def hook_for(set_connection: Callable[..., None]) -> Callable[..., MessageBatchHook]:
    def make(server: ScriptedResults, **extras: Any) -> MessageBatchHook:
        extras.setdefault("max_retries", 0)
        set_connection("scripted", server.base_url, api_key=KEY, **extras)
        return MessageBatchHook("scripted")

    return make


def _settings(server: ScriptedResults, **kwargs: Any) -> ClientSettings:
    kwargs.setdefault("max_retries", 2)
    return ClientSettings(
        conn_id="scripted",
        base_url=server.base_url,
        api_key=KEY,
        max_requests_per_minute=1_000_000,
        **kwargs,
    )


@READERS
def test_a_line_repeated_forever_ends_with_a_clear_error(
    hook_for: Callable[..., MessageBatchHook], read: Callable[..., list[Any]]
) -> None:
    with ScriptedResults([forever((line(0, pad=1000) + b"\n") * 64)], CAP) as server:
        with pytest.raises(OverlongResultsError, match="lines repeating a custom_id") as info:
            read(hook_for(server), server.batch(2))
        assert f"more than the {MAX_SKIPPED_LINES} such lines" in str(info.value)
        assert server.requests == 1
        assert server.body_bytes_sent < CAP  # the reader stopped, not the server


@READERS
@pytest.mark.parametrize("blank", [b"\n", b" \t\r\n"], ids=["empty", "whitespace"])
def test_blank_lines_forever_end_with_a_clear_error(
    hook_for: Callable[..., MessageBatchHook], read: Callable[..., list[Any]], blank: bytes
) -> None:
    first = line(0) + b"\n"
    with ScriptedResults([Reply(body=lambda: _then_forever(first, blank * 4096))], CAP) as server:
        with pytest.raises(OverlongResultsError, match=r"have \d+ blank lines"):
            read(hook_for(server), server.batch(2))
        assert server.body_bytes_sent < CAP


def _then_forever(first: bytes, piece: bytes) -> Iterator[bytes]:
    yield first
    while True:
        yield piece


@READERS
def test_a_gzip_bomb_of_blank_lines_ends_with_a_clear_error(
    hook_for: Callable[..., MessageBatchHook], read: Callable[..., list[Any]]
) -> None:
    # 4 MiB of newlines compress to about 4 KiB: 256 KiB on the wire are 256 MiB of lines.
    bomb = forever(b"\n" * (4 << 20), gzip=True)
    with (
        ScriptedResults([bomb], 256 * 1024) as server,
        pytest.raises(OverlongResultsError, match="blank lines"),
    ):
        read(hook_for(server), server.batch(2))


def test_decoding_never_makes_a_piece_longer_than_asked() -> None:
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = compressor.compress(b"\n" * (32 << 20)) + compressor.flush()
    assert len(bomb) < 64 * 1024
    decoder = BodyDecoder("gzip")
    sizes = [len(piece) for piece in decoder.pieces(bomb, 65536)]
    assert max(sizes) <= 65536
    assert sum(sizes) + len(decoder.flush()) == 32 << 20


@READERS
def test_a_drip_that_never_completes_a_line_times_out(
    hook_for: Callable[..., MessageBatchHook], read: Callable[..., list[Any]]
) -> None:
    # One byte every 0.1 s: never a read timeout (0.5 s), never a line either.
    drip = Reply(body=lambda: iter(lambda: b"x", None), interval=0.1)
    with ScriptedResults([drip], max_body_bytes=60) as server:
        with pytest.raises(APITimeoutError, match=r"no new line for 0\.5 s"):
            read(hook_for(server, timeout=0.5), server.batch(2))
        assert server.body_bytes_sent < 60


def test_a_drip_of_whole_lines_is_not_a_stall(
    hook_for: Callable[..., MessageBatchHook],
) -> None:
    """Lines that keep coming, each well within the timeout, are read however long it takes."""
    raws = [line(index) for index in range(8)]
    with ScriptedResults([lines_reply(raws, interval=0.2)]) as server:
        results = _sync(hook_for(server, timeout=1.0), server.batch(8))
    assert sorted(r.custom_id for r in results) == sorted(f"request-{i}" for i in range(8))


def _one_more_line_then_break(total: int) -> list[Reply]:
    """The i-th response serves lines 0..i, then breaks: every response is progress."""
    return [
        lines_reply([line(index) for index in range(count)], end="break")
        for count in range(1, total + 1)
    ]


def test_a_stream_that_keeps_breaking_after_progress_is_resumed_a_bounded_number_of_times() -> None:
    with ScriptedResults(_one_more_line_then_break(50)) as server:
        delays: list[float] = []
        lines = iter_result_lines(_settings(server), server.batch(50), sleep=delays.append)
        with pytest.raises(APIConnectionError, match="resumed after progress 10 times"):
            list(lines)
        # Each of the first MAX_STREAM_RESUMES breaks restarts the retry count; the stall after
        # the last restart gets its max_retries (2) retries, and no more.
        assert server.requests == MAX_STREAM_RESUMES + 2
        assert len(delays) == server.requests - 1


def test_progress_restarts_the_retry_count() -> None:
    """Four breaks in a row, each after new lines, with max_retries=2: read whole."""
    replies = [*_one_more_line_then_break(4), lines_reply([line(i) for i in range(5)])]
    with ScriptedResults(replies) as server:
        lines = list(iter_result_lines(_settings(server), server.batch(5), sleep=[].append))
    assert sorted(item.result.custom_id for item in lines) == [f"request-{i}" for i in range(5)]
    assert server.requests == 5


def test_retry_after_is_honored_on_results() -> None:
    busy = Reply(status=503, headers={"retry-after": "7"}, body=lambda: [b'{"type":"error"}'])
    with ScriptedResults([busy, lines_reply([line(0), line(1)])]) as server:
        delays: list[float] = []
        lines = list(iter_result_lines(_settings(server), server.batch(2), sleep=delays.append))
    assert len(lines) == 2
    assert delays == [7.0]


def test_gzip_results_are_decoded() -> None:
    raws = [line(index, pad=3000) for index in range(40)]
    with ScriptedResults([lines_reply(raws, gzip=True)]) as server:
        lines = list(iter_result_lines(_settings(server), server.batch(40)))
    assert [item.raw for item in lines] == raws


def test_an_overlong_stream_leaves_no_manifest(
    hook_for: Callable[..., MessageBatchHook], tmp_path: Path
) -> None:
    with ScriptedResults([forever((line(0) + b"\n") * 64)], CAP) as server:
        with pytest.raises(OverlongResultsError):
            write_results(hook_for(server), server.batch(2), f"file://{tmp_path}")
        assert server.body_bytes_sent < CAP
    assert not (tmp_path / "msgbatch_scripted" / "manifest.json").exists()


def test_a_short_stream_leaves_no_manifest(
    hook_for: Callable[..., MessageBatchHook], tmp_path: Path
) -> None:
    with (
        ScriptedResults([lines_reply([line(0)])]) as server,
        pytest.raises(IncompleteResultsError, match="ended after 1 of the batch's 2 lines"),
    ):
        write_results(hook_for(server), server.batch(2), f"file://{tmp_path}")
    assert not (tmp_path / "msgbatch_scripted" / "manifest.json").exists()


def test_the_manifest_counts_the_lines_dropped(
    hook_for: Callable[..., MessageBatchHook], tmp_path: Path
) -> None:
    """results.jsonl keeps the first line of each custom_id as served; a repeat (even with
    other content) and blank lines are dropped and counted; a resume is counted, and the lines
    it reads again are neither written twice nor counted as dropped."""
    first = [line(0), b"", line(1), line(0, kind="expired"), b"  "]
    replies = [lines_reply(first, end="break"), lines_reply([line(1), line(0), line(2)])]
    with ScriptedResults(replies) as server:
        manifest = write_results(
            hook_for(server, max_retries=1), server.batch(3), f"file://{tmp_path}"
        )
    stored = (tmp_path / "msgbatch_scripted" / "results.jsonl").read_bytes()
    assert stored == line(0) + b"\n" + line(1) + b"\n" + line(2) + b"\n"
    assert manifest["duplicate_lines_dropped"] == 1
    assert manifest["blank_lines_dropped"] == 2
    assert manifest["resumes"] == 1
    assert manifest["line_counts"]["total"] == 3
    on_disk = json.loads((tmp_path / "msgbatch_scripted" / "manifest.json").read_bytes())
    assert on_disk["duplicate_lines_dropped"] == 1
