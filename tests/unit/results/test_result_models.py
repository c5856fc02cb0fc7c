"""Typed results lines: every result type, unknown types kept raw, hostile lines refused with
one clear error, and line splitting independent of how the bytes are chunked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.results import (
    BatchResult,
    CanceledResult,
    ErroredResult,
    ExpiredResult,
    InvalidResultLineError,
    OverlongResultsError,
    ResultLineTooLargeError,
    SucceededResult,
    UnknownResult,
    parse_result_line,
)
from airflow_provider_batches.results.lines import LineSplitter, ResultsCursor
from airflow_provider_batches.testing._results import ResultsSpec

pytestmark = pytest.mark.matrix

KINDS = ["succeeded", "errored", "canceled", "expired"]


def _line(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_every_result_type_of_the_fake_parses_typed() -> None:
    spec = ResultsSpec(batch_id="msgbatch_x", kinds=KINDS, error_types=["overloaded_error"])
    results = {r.custom_id: r for r in map(parse_result_line, spec.line_bytes_by_index())}
    succeeded = results["request-0"].result
    assert isinstance(succeeded, SucceededResult)
    assert succeeded.message.usage.service_tier == "batch"
    assert succeeded.message.usage.input_tokens == 10
    assert succeeded.message.text == "Fake response for request-0."
    errored = results["request-1"].result
    assert isinstance(errored, ErroredResult)
    assert errored.error.error.type == "overloaded_error"
    assert errored.error.request_id is not None
    assert isinstance(results["request-2"].result, CanceledResult)
    assert isinstance(results["request-3"].result, ExpiredResult)
    assert [results[f"request-{i}"].type for i in range(4)] == KINDS


def test_unknown_result_type_is_kept_raw() -> None:
    line = _line({"custom_id": "a", "result": {"type": "deferred", "until": 5, "x": [1]}})
    parsed = parse_result_line(line)
    assert isinstance(parsed.result, UnknownResult)
    assert parsed.type == "unknown"
    assert parsed.result.raw == {"type": "deferred", "until": 5, "x": [1]}


def test_new_fields_are_kept() -> None:
    line = _line(
        {
            "custom_id": "a",
            "shard": 3,
            "result": {
                "type": "succeeded",
                "message": {
                    "id": "msg_1",
                    "model": "m",
                    "content": [{"type": "thinking", "thinking": "..."}],
                    "usage": {"input_tokens": 1, "output_tokens": 2, "new_tokens": 7},
                    "container": None,
                },
            },
        }
    )
    parsed = parse_result_line(line)
    assert parsed.model_extra == {"shard": 3}
    assert isinstance(parsed.result, SucceededResult)
    assert parsed.result.message.usage.model_extra == {"new_tokens": 7}
    assert parsed.result.message.usage.cache_read_input_tokens is None
    assert parsed.result.message.text == ""


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'{"result": {"type": "canceled"}}',
        b'{"custom_id": "", "result": {"type": "canceled"}}',
        b'{"custom_id": 5, "result": {"type": "canceled"}}',
        b'{"custom_id": "a"}',
        b'{"custom_id": "a", "result": 7}',
        b'{"custom_id": "a", "result": {"type": "succeeded"}}',
        b'{"custom_id": "a", "result": {"type": "errored", "error": "boom"}}',
        b'{"custom_id": "a", "result": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_hostile_lines_raise_one_clear_error(line: bytes) -> None:
    with pytest.raises(InvalidResultLineError, match="is not a results line"):
        parse_result_line(line, 7)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_result = st.fixed_dictionaries(
    {"type": st.sampled_from([*KINDS, "brand_new", ""]) | st.text(max_size=5)},
    optional={
        "message": _json,
        "error": _json,
        "extra": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.builds(_line, st.dictionaries(st.text(max_size=10), _json)))
def test_any_bytes_parse_or_raise_invalid_line(line: bytes) -> None:
    try:
        parsed: BatchResult | str = parse_result_line(line)
    except InvalidResultLineError as error:
        parsed = str(error)
    assert isinstance(parsed, BatchResult) or "is not a results line" in parsed


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=70), _result)
def test_any_result_shape_is_typed_kept_or_refused(custom_id: str, result: dict[str, Any]) -> None:
    try:
        parsed = parse_result_line(_line({"custom_id": custom_id, "result": result}))
    except InvalidResultLineError:
        assert result["type"] in ("succeeded", "errored")
        return
    assert parsed.custom_id == custom_id
    if result["type"] in KINDS:
        assert parsed.type == result["type"]
    else:
        assert isinstance(parsed.result, UnknownResult)
        assert parsed.result.raw["type"] == result["type"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b), max_size=20),
    st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=10),
)
def test_line_splitting_ignores_chunk_boundaries(lines: list[bytes], cuts: list[int]) -> None:
    body = b"".join(line + b"\n" for line in lines)
    splitter = LineSplitter(max_line_bytes=64)
    out: list[bytes] = []
    position, index = 0, 0
    while position < len(body):
        size = cuts[index % len(cuts)]
        out += splitter.feed(body[position : position + size])
        position += size
        index += 1
    assert splitter.finish() == b""
    assert out == lines


def test_line_over_the_bound_is_refused_even_without_a_newline() -> None:
    splitter = LineSplitter(max_line_bytes=10)
    assert splitter.feed(b"0123456789\n") == [b"0123456789"]
    with pytest.raises(ResultLineTooLargeError, match="max_line_bytes"):
        splitter.feed(b"0123456789A\n")
    splitter = LineSplitter(max_line_bytes=10)
    splitter.feed(b"012345")
    with pytest.raises(ResultLineTooLargeError, match="more than 12 bytes"):
        splitter.feed(b"678901")


def test_cursor_skips_repeated_ids_and_refuses_more_ids_than_requests() -> None:
    cursor = ResultsCursor("msgbatch_x", expected=2)
    cursor.start()
    a = _line({"custom_id": "a", "result": {"type": "expired"}}) + b"\n"
    b = _line({"custom_id": "b", "result": {"type": "expired"}}) + b"\n"
    assert [line.result.custom_id for line in cursor.feed(a + a)] == ["a"]
    assert cursor.counts.duplicate_lines == 1
    assert cursor.missing() == "the results ended after 1 of the batch's 2 lines"
    cursor.start()  # a resume: "a" is read again, not a duplicate
    assert [line.result.custom_id for line in cursor.feed(a + b)] == ["b"]
    assert cursor.missing() is None
    assert (cursor.counts.duplicate_lines, cursor.counts.resumes) == (1, 1)
    with pytest.raises(OverlongResultsError, match="more distinct custom_ids"):
        cursor.feed(_line({"custom_id": "c", "result": {"type": "expired"}}) + b"\n")


def test_a_cut_last_line_at_a_clean_end_is_dropped_not_fatal() -> None:
    cursor = ResultsCursor("msgbatch_x", expected=2)
    cursor.start()
    first = _line({"custom_id": "a", "result": {"type": "expired"}})
    cursor.feed(first + b'\n{"custom_id": "b", "res')
    assert cursor.finish() == []
    assert cursor.missing() is not None
