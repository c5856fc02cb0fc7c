"""Request-set checks, the JSONL reader, prompts and the fingerprint; all before any request."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY
from hypothesis import given, settings
from hypothesis import strategies as st
from operator_dag_runs import requests_for, run_dag

from airflow_provider_batches import request_set as rs
from airflow_provider_batches.exceptions import InvalidRequestSetError
from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.request_set import (
    CustomIdSet,
    build_request_set,
    canonical_json,
    requests_from_prompts,
)
from airflow_provider_batches.testing import FakeBatchesServer

pytestmark = pytest.mark.matrix

PARAMS = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _with(index: int, change: Callable[[dict[str, Any]], None], count: int = 4) -> list[Any]:
    requests = requests_for(count)
    change(requests[index])
    return requests


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda request: request["params"].pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda request: request["params"].__setitem__(key, value)


# (case id, requests, index of the first bad request, its custom_id, words in the message)
RULES: list[tuple[str, list[Any], int | None, Any, str]] = [
    ("empty", [], None, None, "no requests"),
    ("duplicate", _with(2, lambda r: r.update(custom_id="req-0")), 2, "req-0", "repeats"),
    ("id too long", _with(1, lambda r: r.update(custom_id="a" * 65)), 1, "a" * 65, "custom_id"),
    ("id empty", _with(3, lambda r: r.update(custom_id="")), 3, "", "custom_id"),
    ("id bad char", _with(0, lambda r: r.update(custom_id="a b")), 0, "a b", "custom_id"),
    ("id not str", _with(1, lambda r: r.update(custom_id=7)), 1, 7, "custom_id"),
    ("no model", _with(1, _drop("model")), 1, "req-1", "model"),
    ("no max_tokens", _with(2, _drop("max_tokens")), 2, "req-2", "max_tokens"),
    ("no messages", _with(3, _drop("messages")), 3, "req-3", "messages"),
    ("max_tokens 0", _with(0, _set("max_tokens", 0)), 0, "req-0", "max_tokens"),
    ("messages empty", _with(1, _set("messages", [])), 1, "req-1", "messages"),
    ("stream", _with(2, _set("stream", False)), 2, "req-2", "stream"),
    ("no params", _with(1, lambda r: r.pop("params")), 1, "req-1", "params"),
    ("not a dict", [*requests_for(2), "x"], 2, None, "not a"),
    ("nan", _with(1, _set("temperature", float("nan"))), 1, "req-1", "not JSON"),
]


@pytest.mark.parametrize(
    ("requests", "index", "custom_id", "words"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_each_rule_names_the_first_bad_request_before_any_request(
    fake: FakeBatchesServer,
    fake_conn: str,
    requests: list[Any],
    index: int | None,
    custom_id: Any,
    words: str,
) -> None:
    operator = MessageBatchOperator(task_id="submit", requests=requests, conn_id=fake_conn)
    with pytest.raises(InvalidRequestSetError) as info:
        operator.execute({})  # type: ignore[arg-type]
    error = info.value
    assert (error.index, error.custom_id) == (index, custom_id)
    assert words in str(error)
    if index is not None:
        assert f"Request {index} (custom_id {custom_id!r})" in str(error)
    assert fake.requests == []
    assert pickle.loads(pickle.dumps(error)).index == index


def test_request_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs, "MAX_REQUESTS", 3)
    build_request_set(requests_for(3))
    with pytest.raises(InvalidRequestSetError) as info:
        build_request_set(requests_for(5))
    assert (info.value.index, info.value.custom_id) == (3, "req-3")
    assert "limit of 3 requests" in str(info.value)


def test_body_size_limit_counts_the_encoded_body(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = requests_for(3)
    exact = len(json.dumps({"requests": requests}, separators=(",", ":")).encode())
    monkeypatch.setattr(rs, "MAX_BODY_BYTES", exact)
    assert build_request_set(requests).body_bytes == exact
    monkeypatch.setattr(rs, "MAX_BODY_BYTES", exact - 1)
    with pytest.raises(InvalidRequestSetError) as info:
        build_request_set(requests)
    assert (info.value.index, info.value.custom_id) == (2, "req-2")


@given(st.text(max_size=70))
def test_custom_id_rule_is_the_apis(custom_id: str) -> None:
    requests = requests_for(1)
    requests[0]["custom_id"] = custom_id
    valid = re.fullmatch(r"[A-Za-z0-9_-]{1,64}", custom_id, flags=re.ASCII) is not None
    if valid:
        assert build_request_set(requests).count == 1
    else:
        with pytest.raises(InvalidRequestSetError):
            build_request_set(requests)


def test_fingerprint_is_the_sha256_of_the_canonical_json() -> None:
    import hashlib

    requests = requests_for(3)
    built = build_request_set(requests)
    assert built.fingerprint == hashlib.sha256(canonical_json(requests).encode()).hexdigest()
    reordered = [{"params": r["params"], "custom_id": r["custom_id"]} for r in requests]
    assert build_request_set(reordered).fingerprint == built.fingerprint
    changed = requests_for(3)
    changed[1]["params"]["max_tokens"] = 9
    assert build_request_set(changed).fingerprint != built.fingerprint


def test_jsonl_path_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in requests_for(3)) + "\n\n")
    assert build_request_set(str(path)).requests == requests_for(3)
    assert build_request_set(path).fingerprint == build_request_set(requests_for(3)).fingerprint


def test_jsonl_lines_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs, "MAX_LINE_BYTES", 200)
    path = tmp_path / "r.jsonl"
    big = requests_for(2)
    big[1]["params"]["messages"][0]["content"] = "x" * 300
    path.write_text("\n".join(json.dumps(r) for r in big) + "\n")
    with pytest.raises(InvalidRequestSetError) as info:
        build_request_set(path)
    assert "line 2 (request 1) is longer than" in str(info.value)


def test_jsonl_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(requests_for(1)[0]) + "\n{not json\n")
    with pytest.raises(InvalidRequestSetError) as info:
        build_request_set(path)
    assert "line 2 (request 1) is not valid JSON" in str(info.value)


def test_reading_stops_at_the_first_bad_request(tmp_path: Path) -> None:
    def lines() -> Any:
        yield from requests_for(2)
        yield {"custom_id": "bad id"}
        raise AssertionError("read past the first bad request")

    with pytest.raises(InvalidRequestSetError):
        build_request_set(lines())


def test_object_storage_path(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in requests_for(2)) + "\n")
    assert build_request_set(ObjectStoragePath(f"file://{path}")).count == 2
    assert build_request_set(f"file://{path}").count == 2


def test_requests_from_prompts() -> None:
    built = requests_from_prompts(
        ["a", "b"], model="m", max_tokens=5, system="s", custom_id_prefix="p_", temperature=0
    )
    assert built == [
        {
            "custom_id": f"p_{i}",
            "params": {
                "temperature": 0,
                "model": "m",
                "max_tokens": 5,
                "system": "s",
                "messages": [{"role": "user", "content": text}],
            },
        }
        for i, text in enumerate(["a", "b"])
    ]
    assert build_request_set(built).count == 2
    keyed = requests_from_prompts({"x": "hi"}, model="m", max_tokens=1)
    assert keyed[0]["custom_id"] == "x"
    assert "system" not in keyed[0]["params"]
    with pytest.raises(InvalidRequestSetError):
        requests_from_prompts("one string", model="m", max_tokens=1)


def test_operator_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="either requests or prompts"):
        MessageBatchOperator(task_id="t")
    with pytest.raises(ValueError, match="either requests or prompts"):
        MessageBatchOperator(task_id="t", requests=[], prompts=["a"], model="m", max_tokens=1)
    # No model or max_tokens at parse is no error: the connection's defaults may set them.
    MessageBatchOperator(task_id="t", prompts=["a"])
    with pytest.raises(ValueError, match="max_errored"):
        MessageBatchOperator(task_id="t", requests=[], max_errored=-1)


def _try_number(run: Any, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return int(
            session.scalar(
                select(TaskInstance.try_number).where(
                    TaskInstance.dag_id == run.dag_id,
                    TaskInstance.run_id == run.run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        )


@pytest.mark.airflow_db
def test_a_list_rendered_as_text_fails_at_once_and_is_not_retried(
    airflow_db: object, set_connection: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """A pulled list rendered by a template (Python text, not JSON) used to be taken for a
    path; the FileNotFoundError was retried. It is invalid input: failed on the first try of
    three, the message naming what was given and how to pass a list, nothing sent."""
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        run, states, _ = run_dag("operator_rendered_list", {"requests": requests_for(2)})
        sent = list(fake.requests)
    assert states["submit"] == "failed"
    assert _try_number(run, "submit") == 1
    assert sent == []
    output = capfd.readouterr().out
    assert "InvalidRequestSetError" in output
    assert "[{'custom_id': 'req-0'" in output
    assert "render_template_as_native_obj" in output


@pytest.mark.airflow_db
def test_a_list_rendered_as_json_text_is_submitted(airflow_db: object, set_connection: Any) -> None:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as fake:
        set_connection("anthropic_default", fake.base_url, max_retries=1)
        _, states, xcoms = run_dag("operator_rendered_json", {"requests": requests_for(2)})
    assert states["submit"] == "success"
    assert xcoms[("submit", "return_value")]["request_counts"]["succeeded"] == 2


# (case id, requests given as a string, words in the message)
NOT_A_REQUEST_SET: list[tuple[str, str, str]] = [
    ("missing file", "/no/such/dir/requests.jsonl", "no such file"),
    ("missing relative file", "requests.jsonl", "no such file"),
    ("missing file url", "file:///no/such/requests.jsonl", "no such file"),
    ("directory", ".", "Is a directory"),
    ("name too long", "x" * 5000, "File name too long"),
    ("rendered python list", "[{'custom_id': 'a', 'params': {}}]", "not a JSON array"),
    ("rendered none", "None", "no such file"),
    ("json object", '{"custom_id": "a", "params": {}}', "JSON object or JSONL text"),
    ("jsonl text", '{"custom_id": "a"}\n{"custom_id": "b"}\n', "JSON object or JSONL text"),
    ("empty", "", "empty string"),
    ("blank", " \n ", "empty string"),
    ("line break", "a\nb", "line break"),
    ("nul", "a\x00b", "NUL"),
    ("unknown scheme", "nosuch://bucket/requests.jsonl", "cannot be read"),
]


@pytest.mark.parametrize(
    ("given", "words"), [c[1:] for c in NOT_A_REQUEST_SET], ids=[c[0] for c in NOT_A_REQUEST_SET]
)
def test_a_string_that_is_no_request_set_fails_at_once_naming_it(
    fake: FakeBatchesServer,
    fake_conn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
    words: str,
) -> None:
    """Invalid input, not a retryable error: an AirflowFailException naming what was given,
    before any request."""
    from airflow_provider_batches._compat import AirflowFailException

    monkeypatch.chdir(tmp_path)
    operator = MessageBatchOperator(task_id="submit", requests=given, conn_id=fake_conn)
    with pytest.raises(InvalidRequestSetError) as info:
        operator.execute({})  # type: ignore[arg-type]
    assert isinstance(info.value, AirflowFailException)
    message = str(info.value)
    assert words in message
    assert repr(given[:40])[1:-1] in message or given.strip() == ""
    assert len(message) < 1200, "a huge input is not repeated whole"
    assert fake.requests == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300).filter(lambda text: "://" not in text))
def test_any_string_naming_no_file_is_invalid_input(text: str) -> None:
    """Whatever a template renders (run where no file exists): InvalidRequestSetError, never a
    FileNotFoundError or another OSError that Airflow would retry."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as empty:
        previous = os.getcwd()
        os.chdir(empty)
        try:
            with pytest.raises(InvalidRequestSetError):
                build_request_set(text)
        finally:
            os.chdir(previous)


REQUESTS = st.lists(
    st.builds(
        lambda custom_id, content, max_tokens: {
            "custom_id": custom_id,
            "params": {
                "model": "claude-test",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": content}],
            },
        },
        st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        st.text(min_size=1, max_size=40),
        st.integers(1, 4096),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda request: request["custom_id"],
)


@settings(max_examples=60, deadline=None)
@given(REQUESTS, st.sampled_from([None, 0, 2]), st.booleans(), st.sampled_from(["", " ", "\n"]))
def test_a_json_array_string_is_the_same_request_set_as_the_list(
    requests: list[dict[str, Any]], indent: int | None, ascii_only: bool, padding: str
) -> None:
    """What '| tojson' (or any JSON encoder) renders is accepted, with the list's fingerprint."""
    text = padding + json.dumps(requests, indent=indent, ensure_ascii=ascii_only) + padding
    from_text = build_request_set(text)
    assert from_text.requests == requests
    assert from_text.fingerprint == build_request_set(requests).fingerprint


def test_object_storage_missing_object_is_invalid_input() -> None:
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    with pytest.raises(InvalidRequestSetError, match=r"no such file.*memory://"):
        build_request_set("memory://apb-tests/no-such-requests.jsonl")


@pytest.mark.filterwarnings("ignore:UPath 'apb-flaky' filesystem not explicitly implemented")
def test_a_transient_error_reading_remote_storage_stays_retryable() -> None:
    """A timeout or a dropped connection from object storage is raised as it is (not an
    AirflowFailException), so Airflow retries the task."""
    import fsspec
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    class FlakyFileSystem(MemoryFileSystem):
        protocol = "apb-flaky"
        root_marker = ""
        store: dict[str, Any] = {}
        pseudo_dirs = [""]
        errors: list[OSError] = []

        def _open(self, path: str, *args: Any, **kwargs: Any) -> Any:
            raise self.errors.pop(0)

    fsspec.register_implementation("apb-flaky", FlakyFileSystem, clobber=True)
    attach("apb-flaky", fs=FlakyFileSystem())
    FlakyFileSystem.errors = [
        TimeoutError("read timed out"),
        ConnectionResetError(104, "Connection reset by peer"),
        PermissionError(13, "Access Denied"),
    ]
    for expected in (TimeoutError, ConnectionResetError, PermissionError):
        with pytest.raises(expected) as info:
            build_request_set("apb-flaky://bucket/requests.jsonl")
        assert not isinstance(info.value, InvalidRequestSetError)


# ---- custom_ids seen: kept as hashes, repeats told apart by reading back --------------------


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=30),
    coarse=st.sampled_from([len, lambda _: 0, hash]),
)
def test_a_repeat_names_the_first_request_with_that_custom_id_whatever_hashes_meet(
    ids: list[str], coarse: Callable[[str], int]
) -> None:
    """Against a dict of every custom_id: the same first repeat, naming the same earlier
    request, even when the hashes of different custom_ids are all equal."""
    requests = [{"custom_id": custom_id} for custom_id in ids]
    seen = CustomIdSet(lambda: iter(requests), key=coarse)
    model: dict[str, int] = {}
    for index, custom_id in enumerate(ids):
        assert seen.earlier(index, custom_id) == model.get(custom_id)
        if custom_id in model:
            break
        model[custom_id] = index


def test_different_custom_ids_with_one_hash_are_no_repeat() -> None:
    requests = [{"custom_id": custom_id} for custom_id in ("a", "b", "c", "a")]
    seen = CustomIdSet(lambda: iter(requests), key=lambda _: 0)
    assert [seen.earlier(i, r["custom_id"]) for i, r in enumerate(requests)] == [
        None,
        None,
        None,
        0,
    ]


def test_a_repeat_whose_source_cannot_be_read_back_still_fails_without_an_index() -> None:
    def gone() -> list[Any]:
        raise OSError("the file is gone")

    seen = CustomIdSet(gone, key=lambda _: 0)
    assert seen.earlier(0, "a") is None
    assert seen.earlier(1, "b") == -1
    requests = [{"custom_id": f"r{i}", "params": PARAMS} for i in (0, 1, 1)]
    shorter = CustomIdSet(lambda: requests[:1])  # read back, the source ends too soon
    assert [shorter.earlier(i, r["custom_id"]) for i, r in enumerate(requests)] == [None, None, -1]


def test_a_repeat_in_a_file_names_its_first_line_s_request(tmp_path: Path) -> None:
    lines = [{"custom_id": f"r{i}", "params": PARAMS} for i in range(5)]
    lines.append({"custom_id": "r2", "params": PARAMS})
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(InvalidRequestSetError, match=r"Request 5 .*'r2'.* of request 2:"):
        build_request_set(str(path))
    with pytest.raises(InvalidRequestSetError, match=r"Request 5 .*'r2'.* of request 2:"):
        rs.build_request_shards(path)


def test_custom_ids_cost_the_same_few_bytes_however_long_they_are() -> None:
    """100,000 custom_ids of the longest form (64 characters) are kept in under 100 bytes each
    (as strings in a dict they took about 180)."""
    import tracemalloc

    seen = CustomIdSet(list)
    tracemalloc.start()
    try:
        for index in range(100_000):
            assert seen.earlier(index, f"{index:064d}") is None
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept / 100_000 < 100, kept
