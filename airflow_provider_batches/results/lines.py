"""From a results body's bytes to checked, de-duplicated results lines, with bounds.

Nothing here does I/O: the transport's streaming mode (sync and async alike) feeds decoded
pieces of each response in and gets lines out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from airflow_provider_batches.exceptions import (
    InvalidResultLineError,
    OverlongResultsError,
    ResultLineTooLargeError,
)
from airflow_provider_batches.results.models import BatchResult, parse_result_line

#: Default bound on one results line. A long answer with its JSON escaping stays far below it.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
#: Lines one read may skip that are not results of their own: blank lines, and lines repeating a
#: ``custom_id`` served earlier in the same response. A correct results file has none.
MAX_SKIPPED_LINES = 10


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
class ReadCounts:
    """What one read of a batch's results skipped; reported in the manifest.

    ``duplicate_lines``: lines whose ``custom_id`` was already served earlier in the same
    response (the first line of each id is kept); ``blank_lines``: lines of whitespace only;
    ``resumes``: responses after the first, asked for after a break (their lines already read
    are skipped, and counted in neither).
    """

    duplicate_lines: int = 0
    blank_lines: int = 0
    resumes: int = 0

    @property
    def skipped_lines(self) -> int:
        return self.blank_lines + self.duplicate_lines


class ResultsCursor:
    """One read of a batch's results, across every (re)request: the transport's
    :class:`~airflow_provider_batches._http.body.StreamedBody` for results lines.

    Results come in no guaranteed order, so a resumed read skips each ``custom_id`` already
    yielded. Each id is kept as a 16-byte digest: 100,000 ids cost a few MB whatever their
    length. A stream that sends more than the batch's results ends the read with
    :class:`OverlongResultsError`: more distinct ``custom_id``s than the batch has requests, or
    more than :data:`MAX_SKIPPED_LINES` blank or repeated lines in all.
    """

    def __init__(
        self,
        batch_id: str,
        expected: int,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        counts: ReadCounts | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.expected = expected
        self.max_line_bytes = max_line_bytes
        self.counts = ReadCounts() if counts is None else counts
        self.yielded = 0
        #: Digest of each custom_id -> number of the response that served it last.
        self._seen: dict[bytes, int] = {}
        self._response = 0
        self._splitter = LineSplitter(max_line_bytes)
        self._line_number = 0

    @property
    def lines_read(self) -> int:
        return self._line_number

    def start(self) -> None:
        """A new response starts: drop any unfinished line of the previous one."""
        self._response += 1
        if self._response > 1:
            self.counts.resumes += 1
        self._splitter = LineSplitter(self.max_line_bytes)
        self._line_number = 0

    def feed(self, piece: bytes) -> list[ResultLine]:
        return self._accept(self._splitter.feed(piece))

    def finish(self) -> list[ResultLine]:
        """The response ended cleanly: its last line may lack the newline.

        Such a last line that does not parse was cut short (a proxy ending the body early):
        it is dropped, and the read stays incomplete so that it is asked for again.
        """
        tail = self._splitter.finish()
        if not tail:
            return []  # the body ended with its last newline, as it should
        try:
            return self._accept([tail])
        except InvalidResultLineError:
            return []

    def missing(self) -> str | None:
        if self.yielded >= self.expected:
            return None
        return f"the results ended after {self.yielded} of the batch's {self.expected} lines"

    def _accept(self, raws: list[bytes]) -> list[ResultLine]:
        accepted: list[ResultLine] = []
        for raw in raws:
            self._line_number += 1
            if not raw.strip():
                self.counts.blank_lines += 1
            else:
                line = self._first_of_its_id(raw)
                if line is not None:
                    accepted.append(line)
            if self.counts.skipped_lines > MAX_SKIPPED_LINES:
                raise self._overlong()
        return accepted

    def _first_of_its_id(self, raw: bytes) -> ResultLine | None:
        """The line, unless its custom_id was served before (counted if in this response)."""
        result = parse_result_line(raw, self._line_number)
        key = hashlib.blake2b(result.custom_id.encode(), digest_size=16).digest()
        served_in = self._seen.get(key)
        if served_in == self._response:
            self.counts.duplicate_lines += 1
            return None
        if served_in is None and self.yielded >= self.expected:
            raise OverlongResultsError(
                f"The results of batch {self.batch_id} have more distinct custom_ids than "
                f"the batch's {self.expected} requests; the results endpoint is not serving "
                "this batch's results."
            )
        self._seen[key] = self._response
        if served_in is not None:
            return None  # read again after a resume: yielded already
        self.yielded += 1
        return ResultLine(raw, result)

    def _overlong(self) -> OverlongResultsError:
        counts = self.counts
        return OverlongResultsError(
            f"The results of batch {self.batch_id} have {counts.blank_lines} blank lines and "
            f"{counts.duplicate_lines} lines repeating a custom_id earlier in the same "
            f"response, more than the {MAX_SKIPPED_LINES} such lines a read allows (a results "
            "file has one line per request): the results endpoint is not serving this batch's "
            "results as it should. Try again later; if it persists, report it with the batch id."
        )


def line_bound(max_line_bytes: int | None) -> int:
    """The bound on one line: ``max_line_bytes``, checked, or the default."""
    if max_line_bytes is None:
        return DEFAULT_MAX_LINE_BYTES
    if type(max_line_bytes) is not int or max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be a positive integer, got {max_line_bytes!r}.")
    return max_line_bytes
