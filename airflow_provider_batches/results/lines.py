"""From response chunks to checked, de-duplicated results lines; shared by both readers.

Nothing here does I/O: the sync and async readers feed chunks in and get lines out, so the two
differ only in how they send requests and sleep.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from airflow_provider_batches.results.errors import (
    IncompleteResultsError,
    InvalidResultLineError,
    ResultLineTooLargeError,
)
from airflow_provider_batches.results.models import BatchResult, parse_result_line

#: Default bound on one results line. A long answer with its JSON escaping stays far below it.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ResultLine:
    """One results line: the bytes as served (without the ending newline) and their parse."""

    raw: bytes
    result: BatchResult


class LineSplitter:
    """Cuts a byte stream into lines, holding at most ``max_line_bytes`` of an unfinished one."""

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            self._hold(chunk)
            return []
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if self._pending:
            lines[0] = b"".join(self._pending) + lines[0]
            self._pending.clear()
            self._pending_size = 0
        for line in lines:
            if len(line) > self._max:
                raise _too_large(len(line), self._max)
        self._hold(rest)
        return lines

    def finish(self) -> bytes:
        """What follows the last newline once the stream ended cleanly."""
        tail = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return tail

    def _hold(self, piece: bytes) -> None:
        if not piece:
            return
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size > self._max:
            raise _too_large(self._pending_size, self._max, unfinished=True)


def _too_large(size: int, limit: int, *, unfinished: bool = False) -> ResultLineTooLargeError:
    more = "more than " if unfinished else ""
    return ResultLineTooLargeError(
        f"A results line is {more}{size} bytes, over the limit of {limit} bytes "
        "(max_line_bytes). Raise max_line_bytes if the batch's answers are that long."
    )


@dataclass
class ResultsCursor:
    """What a read of one batch's results has yielded so far, across every (re)request.

    Results come in no guaranteed order, so a resumed read skips each ``custom_id`` already
    yielded. Each id is kept as a 16-byte digest: 100,000 ids cost a few MB whatever their length.
    """

    batch_id: str
    expected: int
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    yielded: int = 0
    duplicates: int = 0
    _seen: set[bytes] = field(default_factory=set, repr=False)
    _splitter: LineSplitter | None = field(default=None, repr=False)
    _line_number: int = 0

    def start_response(self) -> None:
        """A new response starts: drop any unfinished line of the previous one."""
        self._splitter = LineSplitter(self.max_line_bytes)
        self._line_number = 0

    def feed(self, chunk: bytes) -> list[ResultLine]:
        assert self._splitter is not None, "start_response() first"
        return self._accept(self._splitter.feed(chunk))

    def finish(self) -> list[ResultLine]:
        """The response ended cleanly: its last line may lack the newline.

        Such a last line that does not parse was cut short (a proxy ending the body early):
        it is dropped, and the read stays incomplete so that it is asked for again.
        """
        assert self._splitter is not None, "start_response() first"
        try:
            return self._accept([self._splitter.finish()])
        except InvalidResultLineError:
            return []

    @property
    def complete(self) -> bool:
        return len(self._seen) >= self.expected

    def _accept(self, raws: list[bytes]) -> list[ResultLine]:
        accepted: list[ResultLine] = []
        for raw in raws:
            self._line_number += 1
            if not raw.strip():
                continue
            result = parse_result_line(raw, self._line_number)
            key = hashlib.blake2b(result.custom_id.encode(), digest_size=16).digest()
            if key in self._seen:
                self.duplicates += 1
                continue
            if len(self._seen) >= self.expected:
                raise IncompleteResultsError(
                    f"The results of batch {self.batch_id} have more distinct custom_ids than "
                    f"the batch's {self.expected} requests; the results endpoint is not serving "
                    "this batch's results."
                )
            self._seen.add(key)
            self.yielded += 1
            accepted.append(ResultLine(raw, result))
        return accepted
