"""Structured results: each succeeded answer (text JSON, a fenced JSON block, one tool call's
input) validated against a pydantic model, the equivalent JSON schema, or an import path to
one; valid rows in parsed.jsonl, invalid ones with a bounded error in invalid.jsonl, both
counted in the manifest; max_invalid_ratio failing or passing; bad output types refused before
any request."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structured_cases import (
    REVIEW_SCHEMA,
    SENTINEL,
    Case,
    NotAModel,
    Review,
    cases,
    text,
    tool_call,
)
from writer_cases import results_requests, served_lines

from airflow_provider_batches.exceptions import InvalidAnswersError, OutputTypeError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.results import parse_result_line
from airflow_provider_batches.results.structured import (
    MAX_ERROR_CHARS,
    AnswerSorter,
    check_invalid_answers,
    resolve_output_type,
)
from airflow_provider_batches.results.writer import write_results
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.utils.structured_options import check_structured_options

OUTPUT_TYPES = {
    "pydantic model": Review,
    "JSON schema": REVIEW_SCHEMA,
    "import path": "structured_cases:Review",
    "import path to a schema": "structured_cases.REVIEW_SCHEMA",
}
#: What an invalid row may hold besides its error: custom_id, reason, source, stop_reason.
ROW_OVERHEAD = 300


def _succeeded(custom_id: str, content: list[dict[str, Any]], stop: str = "end_turn") -> Any:
    message = {
        "id": "msg_1",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    line = {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    return parse_result_line(json.dumps(line).encode())


def _check_row(case: Case, custom_id: str, kind: str, raw: bytes, pydantic: bool) -> None:
    row = json.loads(raw)
    assert row["custom_id"] == custom_id
    assert (kind, case.kind) == (case.kind, kind), (case, row)
    if kind == "parsed":
        assert row == {"custom_id": custom_id, "output": case.expected_output(pydantic)}
    else:
        assert row["reason"] == case.value, row
        assert len(row["error"]) <= MAX_ERROR_CHARS
        assert len(raw) <= MAX_ERROR_CHARS * 3 + ROW_OVERHEAD  # JSON escaping at most
        assert SENTINEL not in raw.decode(), "the answer is never copied into its row"


@pytest.mark.parametrize("name", OUTPUT_TYPES)
@settings(max_examples=120, deadline=None)
@given(case=cases)
def test_every_kind_of_answer_is_sorted_as_expected(name: str, case: Case) -> None:
    sorter = AnswerSorter(resolve_output_type(OUTPUT_TYPES[name]))
    kind, raw = sorter.sort(_succeeded("req-1", case.content)) or ("none", b"")
    _check_row(case, "req-1", kind, raw, pydantic="schema" not in name.lower())
    assert (sorter.parsed, sorter.invalid) == ((1, 0) if kind == "parsed" else (0, 1))


@pytest.mark.parametrize("name", OUTPUT_TYPES)
@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(name: str, constant: str) -> None:
    """JSON has no NaN or Infinity; Python's json module reads them unless told not to."""
    sorter = AnswerSorter(resolve_output_type(OUTPUT_TYPES[name]))
    sorted_answer = sorter.sort(_succeeded("req-1", text(f'{{"title": "a", "stars": {constant}}}')))
    assert sorted_answer is not None
    kind, raw = sorted_answer
    assert kind == "invalid"
    assert json.loads(raw)["reason"] == "not_json"


def test_results_other_than_succeeded_are_not_answers() -> None:
    sorter = AnswerSorter(resolve_output_type(Review))
    for kind in ("canceled", "expired"):
        line = json.dumps({"custom_id": "x", "result": {"type": kind}}).encode()
        assert sorter.sort(parse_result_line(line)) is None
    assert sorter.summary()["parsed"] == sorter.summary()["invalid"] == 0


def test_a_cut_short_answer_says_so() -> None:
    sorter = AnswerSorter(resolve_output_type(Review))
    sorted_answer = sorter.sort(_succeeded("x", text('{"title": "a", "st'), stop="max_tokens"))
    assert sorted_answer is not None
    row = json.loads(sorted_answer[1])
    assert row["stop_reason"] == "max_tokens"
    assert "cut short" in row["error"]


def _write_case_batch(
    fake: FakeBatchesServer, hook: MessageBatchHook, answers: list[Case], output_type: Any
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from airflow.sdk import ObjectStoragePath

    batch = fake.create_batch(
        num_requests=len(answers) + 2,
        ends_after=0.0,
        outcomes={"succeeded": len(answers), "errored": 1, "expired": 1},
        contents=[case.content for case in answers],
    )
    base = ObjectStoragePath(f"file://{tempfile.mkdtemp(prefix='structured-')}")
    manifest = write_results(hook, batch["id"], base, output_type=output_type)
    return batch, manifest, base / batch["id"]


@pytest.mark.parametrize("name", ["pydantic model", "JSON schema"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answers=st.lists(cases, min_size=1, max_size=8))
def test_written_files_and_manifest_match_the_answers_served_by_the_fake(
    fake: FakeBatchesServer, fake_conn: str, name: str, answers: list[Case]
) -> None:
    """Over real HTTP: every succeeded line lands in exactly one of the two files, as its case
    says; the manifest's counts and file entries are those of the files written."""
    _, manifest, prefix = _write_case_batch(
        fake, MessageBatchHook(fake_conn), answers, OUTPUT_TYPES[name]
    )
    seen: dict[str, str] = {}
    for kind in ("parsed", "invalid"):
        data = (prefix / f"{kind}.jsonl").read_bytes()
        entry = manifest["files"][kind]
        assert (entry["bytes"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert entry["lines"] == len(data.splitlines()) == manifest["structured"][kind]
        for raw in data.splitlines():
            custom_id = json.loads(raw)["custom_id"]
            index = int(custom_id.removeprefix("request-"))
            _check_row(answers[index], custom_id, kind, raw, pydantic=name == "pydantic model")
            seen[custom_id] = kind
    assert sorted(seen) == sorted(f"request-{i}" for i in range(len(answers)))
    structured = manifest["structured"]
    invalid = [case for case in answers if case.kind == "invalid"]
    # invalid.jsonl was read in the order written: the order served.
    assert structured["invalid_custom_ids"] == [c for c, k in seen.items() if k == "invalid"]
    assert structured["invalid_ratio"] == len(invalid) / len(answers)
    assert sum(structured["invalid_by_reason"].values()) == len(invalid)
    assert json.loads((prefix / "manifest.json").read_bytes()) == manifest


def _mixed(valid: int, invalid: int) -> list[Case]:
    good = Case(text('{"title": "ok", "stars": 4}'), "parsed", {"title": "ok", "stars": 4})
    bad = Case([tool_call({"title": "bad", "stars": 0})], "invalid", "validation")
    return [good] * valid + [bad] * invalid


def test_max_invalid_ratio_fails_past_it_and_passes_at_it(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    hook = MessageBatchHook(fake_conn)
    batch = fake.create_batch(
        num_requests=4, ends_after=0.0, contents=[c.content for c in _mixed(3, 1)]
    )
    base = ObjectStoragePath(f"file://{tmp_path}")
    with pytest.raises(InvalidAnswersError, match=r"1 of 4 succeeded answers") as failed:
        write_results(hook, batch["id"], base, output_type=Review, max_invalid_ratio=0.24)
    assert "1 validation" in str(failed.value)
    assert failed.value.manifest["structured"]["invalid"] == 1
    on_disk = json.loads((tmp_path / batch["id"] / "manifest.json").read_bytes())
    assert on_disk == failed.value.manifest, "everything is written before the task fails"
    reads = results_requests(fake, batch["id"])
    with pytest.raises(InvalidAnswersError):  # a rerun trusting the manifest decides the same
        write_results(hook, batch["id"], base, output_type=Review, max_invalid_ratio=0.0)
    manifest = write_results(hook, batch["id"], base, output_type=Review, max_invalid_ratio=0.25)
    assert manifest == on_disk
    assert write_results(hook, batch["id"], base, output_type=Review) == on_disk  # None: report
    assert results_requests(fake, batch["id"]) == reads


def test_a_rerun_with_another_output_type_validates_again(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    hook = MessageBatchHook(fake_conn)
    batch = fake.create_batch(
        num_requests=3, ends_after=0.0, contents=[c.content for c in _mixed(2, 1)]
    )
    base = ObjectStoragePath(f"file://{tmp_path}")
    plain = write_results(hook, batch["id"], base)
    assert "structured" not in plain
    assert "parsed" not in plain["files"]
    first = write_results(hook, batch["id"], base, output_type=Review)
    assert results_requests(fake, batch["id"]) == 2
    assert write_results(hook, batch["id"], base, output_type="structured_cases:Review") == first
    assert results_requests(fake, batch["id"]) == 2  # the same type by import path: trusted
    lenient = {**REVIEW_SCHEMA, "properties": {"stars": {"type": "integer"}}}
    again = write_results(hook, batch["id"], base, output_type=lenient)
    assert results_requests(fake, batch["id"]) == 3
    assert (again["structured"]["parsed"], again["structured"]["invalid"]) == (3, 0)


@pytest.mark.parametrize(
    ("output_type", "message"),
    [
        ("no_such_module_here:Review", "does not import"),
        ("structured_cases:NoSuchName", "does not import"),
        ("structured_cases:SENTINEL", "names a str"),
        ({"type": 12}, "not a valid JSON schema"),
        (NotAModel, "not a class pydantic can validate"),
    ],
)
def test_an_output_type_that_cannot_validate_fails_before_any_request(
    fake: FakeBatchesServer, fake_conn: str, tmp_path: Path, output_type: Any, message: str
) -> None:
    from airflow.sdk import ObjectStoragePath

    batch = fake.create_batch(num_requests=2, ends_after=0.0)
    requests_before = len(fake.requests)
    with pytest.raises(OutputTypeError, match=message):
        write_results(
            MessageBatchHook(fake_conn),
            batch["id"],
            ObjectStoragePath(f"file://{tmp_path}"),
            output_type=output_type,
        )
    assert len(fake.requests) == requests_before
    assert not (tmp_path / batch["id"]).exists()


@pytest.mark.parametrize(
    ("output_type", "ratio", "action", "error", "message"),
    [
        (42, None, "fail", OutputTypeError, "must be a pydantic model class"),
        ("not a path", None, "fail", OutputTypeError, "is not an import path"),
        (Review, 1.5, "fail", ValueError, "from 0 to 1"),
        (Review, True, "fail", ValueError, "from 0 to 1"),
        (None, 0.1, "fail", ValueError, "needs an output_type"),
        (Review, 0.1, "ignore", ValueError, "must be 'fail' or 'skip', got 'ignore'"),
        (Review, None, "skip", ValueError, "'skip' needs max_invalid_ratio"),
    ],
)
def test_bad_options_are_refused_at_dag_parse(
    output_type: Any, ratio: Any, action: Any, error: type[Exception], message: str
) -> None:
    from airflow_provider_batches.operators.batch import MessageBatchOperator
    from airflow_provider_batches.operators.results import MessageBatchResultsOperator

    with pytest.raises(error, match=message):
        check_structured_options(output_type, ratio, on_too_many_invalid=action)
    with pytest.raises(error, match=message):
        MessageBatchResultsOperator(
            task_id="t",
            batch_id="msgbatch_1",
            results_path="file:///tmp/x",
            output_type=output_type,
            max_invalid_ratio=ratio,
            on_too_many_invalid=action,
        )
    with pytest.raises(error, match=message):
        MessageBatchOperator(
            task_id="t",
            prompts=["p"],
            model="m",
            max_tokens=5,
            results_path="file:///tmp/x",
            results_output_type=output_type,
            results_max_invalid_ratio=ratio,
            results_on_too_many_invalid=action,
        )


def test_past_the_ratio_skip_skips_with_the_same_message_and_at_it_nothing_ends() -> None:
    from airflow_provider_batches._compat import AirflowSkipException

    manifest = {
        "batch_id": "msgbatch_1",
        "structured": {
            "output_type": "m:Review",
            "parsed": 3,
            "invalid": 1,
            "invalid_by_reason": {"validation": 1},
        },
        "files": {"parsed": {"path": "p/parsed.jsonl"}, "invalid": {"path": "p/invalid.jsonl"}},
    }
    with pytest.raises(InvalidAnswersError) as failed:
        check_invalid_answers(manifest, 0.2)
    with pytest.raises(AirflowSkipException) as skipped:
        check_invalid_answers(manifest, 0.2, "skip")
    assert str(skipped.value) == f"Skipping (on_too_many_invalid='skip'): {failed.value}"
    assert "p/invalid.jsonl" in str(skipped.value)
    for action in ("fail", "skip"):
        check_invalid_answers(manifest, 0.25, action)  # at the ratio: neither fails nor skips
        check_invalid_answers(manifest, None, action)


def test_the_fake_serves_given_contents_and_refuses_others(fake: FakeBatchesServer) -> None:
    from airflow_provider_batches.testing import FakeAdminClient

    blocks = [[tool_call({"title": "a", "stars": 1})], text("{}")]
    batch = FakeAdminClient(fake.base_url).create_batch(
        num_requests=3, ends_after=0.0, contents=blocks
    )
    served = {
        json.loads(line)["custom_id"]: json.loads(line)["result"]["message"]["content"]
        for line in served_lines(batch)
    }
    assert served == {"request-0": blocks[0], "request-1": blocks[1], "request-2": blocks[0]}
    for bad in ("text", [], [{"type": "text", "text": "x"}], [["text"]]):
        with pytest.raises(ValueError, match="contents must be"):
            fake.create_batch(num_requests=1, contents=bad)


# ---- JSON schemas: jsonschema-rs decides validity first, jsonschema explains -------------------

#: Schemas whose keywords the two libraries could read differently: numbers (1.0 as an
#: integer, multipleOf on floats, big integers), regexes (``$`` before a trailing newline),
#: unique items, const and enum equality, drafts 4 to 2020-12, $defs and $ref, formats.
DIVERGENCE_SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": 0, "maximum": 2**64},
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "maximum": 5,
     "exclusiveMaximum": True},
    {"type": "number", "multipleOf": 0.1},
    {"type": "string", "pattern": "^[a-z]+$", "maxLength": 4},
    {"type": "string", "format": "email"},
    {"type": "array", "uniqueItems": True, "items": {"type": ["number", "boolean", "null"]}},
    {"const": {"k": [1, 2.0]}},
    {"enum": [1, "1", None, True, [0]]},
    {"$defs": {"leaf": {"type": "string", "minLength": 1}},
     "type": "object", "additionalProperties": {"$ref": "#/$defs/leaf"},
     "propertyNames": {"pattern": "^[a-z]*$"}, "maxProperties": 3},
    {"$schema": "http://json-schema.org/draft-07/schema#", "anyOf": [
        {"type": "string", "maxLength": 2}, {"type": "array", "items": {"type": "integer"}}]},
    {"$schema": "https://json-schema.org/draft/2019-09/schema", "type": "array",
     "contains": {"type": "integer"}, "minContains": 2},
    {"type": "string", "minLength": 2, "maxLength": 3},
    {"type": "number", "exclusiveMinimum": 0.1, "maximum": 1e300},
    {"prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "object", "properties": {"a": {"type": "integer"}},
     "unevaluatedProperties": False, "dependentRequired": {"a": ["b"]}},
    {"if": {"type": "integer"}, "then": {"minimum": 1}, "else": {"not": {"type": "null"}}},
    {"oneOf": [{"type": "integer"}, {"type": "number", "maximum": 2}]},
    {"type": "integer", "multipleOf": 3},
]  # fmt: skip

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.1, 0.3, 1.0, 2.0, 0.30000000000000004])
    | st.text("ab1@.\n-\U0001f600\u00e9", max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text("ab", max_size=2), inner, max_size=4)
    ),
    max_leaves=10,
)


def _outcome(validator: Any, answer: Any) -> str:
    try:
        validator.validate(answer)
    except Exception as error:  # the module's own invalid-answer error carries a reason
        return str(getattr(error, "reason", type(error).__name__))
    return "valid"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=st.sampled_from(DIVERGENCE_SCHEMAS), answer=JSON_VALUES)
# jsonschema fails a quotient that overflows; jsonschema-rs accepts it.
@example(schema={"type": "number", "multipleOf": 0.1}, answer=1.7976931348623163e307)
def test_a_json_schema_answer_is_valid_exactly_when_jsonschema_says_so(
    schema: dict[str, Any], answer: Any
) -> None:
    """The compiled check only ever lets through what jsonschema itself accepts, and what it
    refuses jsonschema decides again: the outcome is jsonschema's, whatever the two disagree on
    (jsonschema's ``$`` also matches before a trailing newline, for one)."""
    import jsonschema

    reference = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )(schema)
    expected = "valid" if reference.is_valid(answer) else "validation"
    assert _outcome(resolve_output_type(schema), answer) == expected


def test_a_valid_answer_is_decided_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema (pure Python, about 60 µs an answer) explains invalid answers only."""
    import jsonschema

    explained: list[Any] = []
    original = jsonschema.Draft202012Validator.iter_errors

    def counting(self: Any, instance: Any, *args: Any, **kwargs: Any) -> Any:
        explained.append(instance)
        return original(self, instance, *args, **kwargs)

    monkeypatch.setattr(jsonschema.Draft202012Validator, "iter_errors", counting)
    validator = resolve_output_type(Review.model_json_schema())
    explained.clear()  # resolving checked the schema itself against the draft's metaschema
    for stars in range(1, 6):
        validator.validate({"title": "t", "stars": stars})
    assert explained == []
    assert _outcome(validator, {"title": "t", "stars": 9}) == "validation"
    assert explained == [{"title": "t", "stars": 9}]


def test_a_remote_ref_is_never_fetched_and_fails_naming_the_fix(fake: FakeBatchesServer) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": f"{fake.base_url}/review.json"}}}
    validator = resolve_output_type(schema)
    assert _outcome(validator, {"b": 1}) == "valid"  # the $ref is not needed for this answer
    with pytest.raises(OutputTypeError, match=r"cannot resolve.*put what they name under"):
        validator.validate({"a": 1})
    assert fake.request_count() == 0
