"""A task's model, max_tokens and system fill what requests lack (then the connection's
defaults); records map to requests through prompt_template / prompt_field / custom_id_field;
input errors no retry can fix fail the task once, naming it and the fix."""

from __future__ import annotations

import json
import string
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import API_KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operator_dag_runs import requests_for

from airflow_provider_batches._compat import AirflowFailException
from airflow_provider_batches.exceptions import (
    ConnectionConfigError,
    InvalidRequestSetError,
    InvalidTaskOptionError,
)
from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.request_set import build_request_set
from airflow_provider_batches.sensors.batch import MessageBatchSensor
from airflow_provider_batches.testing import FakeBatchesServer
from airflow_provider_batches.utils.request_options import (
    RequestOptions,
    complete_request,
)


def _jsonl(path: Path, items: list[Any]) -> str:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return str(path)


def _bare(count: int) -> list[dict[str, Any]]:
    """Requests with messages only: no model, max_tokens or system."""
    return [
        {"custom_id": f"req-{i}", "params": {"messages": [{"role": "user", "content": f"n{i}"}]}}
        for i in range(count)
    ]


def _params(operator: MessageBatchOperator) -> list[dict[str, Any]]:
    return [request["params"] for request in operator.request_set().requests]


# ---- item: model, max_tokens and system set once ---------------------------------------------


@pytest.mark.parametrize("form", ["prompts", "list", "jsonl", "json text"])
def test_the_task_s_model_max_tokens_and_system_fill_every_input_form(
    form: str, tmp_path: Path, fake_conn: str
) -> None:
    sources: dict[str, dict[str, Any]] = {
        "prompts": {"prompts": ["n0", "n1"]},
        "list": {"requests": _bare(2)},
        "jsonl": {"requests": _jsonl(tmp_path / "r.jsonl", _bare(2))},
        "json text": {"requests": json.dumps(_bare(2))},
    }
    operator = MessageBatchOperator(
        task_id="submit", model="claude-x", max_tokens=12, system="Be brief.", **sources[form]
    )
    for params in _params(operator):
        assert (params["model"], params["max_tokens"], params["system"]) == (
            "claude-x",
            12,
            "Be brief.",
        )


def test_a_request_s_own_values_win_over_the_task_s_and_the_connection_s(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    set_connection("own", fake.base_url, default_model="conn-model", default_max_tokens=99)
    requests = _bare(3)
    requests[0]["params"].update(model="own-model", max_tokens=5, system="own system")
    requests[1]["params"].update(max_tokens=6)
    operator = MessageBatchOperator(
        task_id="submit", requests=requests, conn_id="own", model="task-model", system="task"
    )
    got = [(p["model"], p["max_tokens"], p["system"]) for p in _params(operator)]
    assert got == [
        ("own-model", 5, "own system"),
        ("task-model", 6, "task"),
        ("task-model", 99, "task"),
    ]
    assert "model" not in requests[2]["params"], "the caller's requests are not changed"


def test_the_connection_s_default_model_and_max_tokens_fill_what_the_task_leaves_unset(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    set_connection("conn", fake.base_url, default_model="conn-model", default_max_tokens="77")
    operator = MessageBatchOperator(task_id="submit", prompts=["a", "b"], conn_id="conn")
    assert {(p["model"], p["max_tokens"]) for p in _params(operator)} == {("conn-model", 77)}
    operator = MessageBatchOperator(
        task_id="submit", prompts=["a"], conn_id="conn", model="task-model", max_tokens=3
    )
    assert [(p["model"], p["max_tokens"]) for p in _params(operator)] == [("task-model", 3)]


@pytest.mark.parametrize(
    ("extra", "value"),
    [
        ("default_model", ""),
        ("default_model", 7),
        ("default_model", "a\nb"),
        ("default_max_tokens", 0),
        ("default_max_tokens", 2.5),
        ("default_max_tokens", True),
        ("default_max_tokens", "many"),
    ],
)
def test_bad_default_extras_are_connection_errors_naming_the_extra(
    fake: FakeBatchesServer, set_connection: Any, extra: str, value: Any
) -> None:
    if value == "":
        set_connection("bad", fake.base_url, **{extra: value})
        operator = MessageBatchOperator(task_id="submit", prompts=["a"], conn_id="bad")
        with pytest.raises(InvalidRequestSetError, match="default_model"):
            operator.request_set()  # an empty extra is no default
        return
    set_connection("bad", fake.base_url, **{extra: value})
    operator = MessageBatchOperator(task_id="submit", prompts=["a"], conn_id="bad")
    with pytest.raises(ConnectionConfigError, match=extra):
        operator.request_set()


def test_the_task_s_values_are_templated_and_rendered_max_tokens_is_a_number() -> None:
    assert {"model", "max_tokens", "system"} <= set(MessageBatchOperator.template_fields)
    operator = MessageBatchOperator(
        task_id="submit",
        prompts=["a"],
        model="{{ var.value.model }}",
        max_tokens="{{ params.max_tokens }}",
    )
    operator.model, operator.max_tokens = "rendered-model", "256"
    assert _params(operator)[0]["max_tokens"] == 256
    operator.max_tokens = "lots"
    with pytest.raises(InvalidTaskOptionError, match=r"submit: max_tokens rendered to 'lots'"):
        operator.request_set()


def test_the_fingerprint_is_taken_after_the_defaults_are_applied() -> None:
    def options(model: str) -> RequestOptions:
        return RequestOptions(task="t", model=model, max_tokens=8)

    inline = build_request_set(requests_for(2))
    filled = build_request_set(_bare_with_messages_of(requests_for(2)), options("claude-test"))
    other = build_request_set(_bare_with_messages_of(requests_for(2)), options("other-model"))
    assert filled.requests == inline.requests
    assert filled.fingerprint == inline.fingerprint
    assert other.fingerprint != inline.fingerprint


def _bare_with_messages_of(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"custom_id": r["custom_id"], "params": {"messages": r["params"]["messages"]}}
        for r in requests
    ]


def test_requests_without_a_model_fail_once_before_any_request_naming_the_task_and_fix(
    fake: FakeBatchesServer, fake_conn: str
) -> None:
    operator = MessageBatchOperator(task_id="classify", requests=_bare(2), max_tokens=8)
    with pytest.raises(InvalidRequestSetError) as info:
        operator.execute({})  # type: ignore[arg-type]
    assert isinstance(info.value, AirflowFailException), "no retry can fix it"
    message = str(info.value)
    for words in ("classify", "model=", "default_model", "'anthropic_default'", "params.model"):
        assert words in message
    assert fake.requests == [], "nothing was sent"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"model": ""}, "model must be a model name"),
        ({"model": 3}, "model must be a model name"),
        ({"max_tokens": 0}, "max_tokens must be a whole number"),
        ({"max_tokens": True}, "max_tokens must be a whole number"),
        ({"system": 5}, "system must be a string"),
        ({"prompt_template": "{a}", "prompt_field": "a"}, "not both"),
        ({"prompt_template": "{a"}, "not a format string"),
        ({"prompt_template": "x {}"}, "not a record field"),
        ({"prompt_template": "x {a.b}"}, "not a record field"),
        ({"prompt_template": 3}, "prompt_template must be a string"),
        ({"prompt_field": ""}, "prompt_field must be"),
        ({"custom_id_field": "id"}, "also needs"),
    ],
)
def test_bad_input_options_fail_at_dag_parse_naming_the_task(
    kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidTaskOptionError, match=rf"classify: .*{words}"):
        MessageBatchOperator(task_id="classify", requests=_bare(1), **kwargs)
    with pytest.raises(InvalidTaskOptionError, match=f"classify \\(mapped\\): .*{words}"):
        MessageBatchOperator.partial(task_id="classify", **kwargs)


def test_record_options_with_prompts_fail_at_parse() -> None:
    with pytest.raises(InvalidTaskOptionError, match=r"submit: .*apply to records"):
        MessageBatchOperator(task_id="submit", prompts=["a"], prompt_field="review")


# ---- item: records in ------------------------------------------------------------------------


REVIEWS = [{"id": 7, "review": "great"}, {"id": "b-8", "review": "bad", "stars": 1}]


def test_records_map_through_a_prompt_template_and_a_custom_id_field(
    tmp_path: Path, fake_conn: str
) -> None:
    operator = MessageBatchOperator(
        task_id="submit",
        requests=_jsonl(tmp_path / "reviews.jsonl", REVIEWS),
        prompt_template="Classify: {review} ({id})",
        custom_id_field="id",
        model="m",
        max_tokens=4,
    )
    assert operator.request_set().requests == [
        {
            "custom_id": "7",
            "params": {
                "model": "m",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "Classify: great (7)"}],
            },
        },
        {
            "custom_id": "b-8",
            "params": {
                "model": "m",
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "Classify: bad (b-8)"}],
            },
        },
    ]


def test_records_map_through_a_prompt_field_with_numbered_custom_ids(fake_conn: str) -> None:
    operator = MessageBatchOperator(
        task_id="submit", requests=REVIEWS, prompt_field="review", model="m", max_tokens=4
    )
    requests = operator.request_set().requests
    assert [r["custom_id"] for r in requests] == ["record-0", "record-1"]
    assert [r["params"]["messages"][0]["content"] for r in requests] == ["great", "bad"]


@pytest.mark.parametrize(
    ("records", "options", "words"),
    [
        (
            [{"id": 1, "review": "a"}, {"id": 2}],
            {"prompt_template": "{review}"},
            "line 2 .*'review'",
        ),
        ([{"id": 1, "text": "a"}], {"prompt_field": "review"}, "line 1 .*'review' \\(prompt_field"),
        ([{"review": "a"}], {"prompt_field": "review", "custom_id_field": "id"}, "line 1 .*'id'"),
        (
            [{"id": "a b", "review": "a"}],
            {"prompt_field": "review", "custom_id_field": "id"},
            "line 1 .*no valid custom_id",
        ),
        (
            [{"id": None, "review": "a"}],
            {"prompt_field": "review", "custom_id_field": "id"},
            "line 1 .*strings or integers",
        ),
        ([{"id": 1, "review": 5}], {"prompt_field": "review"}, "line 1 .*type int"),
        ([{"id": 1, "review": " "}], {"prompt_field": "review"}, "line 1 .*empty prompt"),
        ([{"review": "a"}, [1, 2]], {"prompt_field": "review"}, "line 2 .*is a list"),
        (
            [{"id": 1, "review": "a"}, {"id": 1, "review": "b"}],
            {"prompt_field": "review", "custom_id_field": "id"},
            "repeats the custom_id",
        ),
    ],
)
def test_a_bad_record_is_an_error_naming_its_line_and_the_field(
    tmp_path: Path, fake_conn: str, records: list[Any], options: dict[str, Any], words: str
) -> None:
    operator = MessageBatchOperator(
        task_id="submit",
        requests=_jsonl(tmp_path / "records.jsonl", records),
        model="m",
        max_tokens=4,
        **options,
    )
    with pytest.raises(InvalidRequestSetError, match=f"submit: .*{words}|{words}"):
        operator.request_set()


def test_a_record_without_record_options_names_its_line_and_the_options(
    tmp_path: Path, fake_conn: str
) -> None:
    path = _jsonl(tmp_path / "mixed.jsonl", [*requests_for(1), {"id": 7, "review": "x"}])
    path_text = Path(path).read_text()
    Path(path).write_text(path_text.replace("\n", "\n\n", 1))  # the record is on line 3
    operator = MessageBatchOperator(task_id="submit", requests=path)
    with pytest.raises(InvalidRequestSetError) as info:
        operator.request_set()
    message = str(info.value)
    for words in (
        "submit",
        "line 3",
        "'id', 'review'",
        "prompt_template",
        "prompt_field",
        "custom_id_field",
    ):
        assert words in message
    assert info.value.index == 1


_NAMES = st.sampled_from(["id", "review", "title", "x"])
_VALUES = st.one_of(
    st.text(max_size=8), st.integers(-5, 10**6), st.none(), st.booleans(), st.floats(0, 2)
)
_RECORDS = st.lists(
    st.one_of(st.dictionaries(_NAMES, _VALUES, max_size=4), st.integers(), st.lists(st.none())),
    min_size=1,
    max_size=6,
)
_TEMPLATES = st.lists(
    st.one_of(st.text(string.ascii_letters + " :", max_size=4), _NAMES.map("{{{}}}".format)),
    max_size=4,
).map("".join)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    records=_RECORDS,
    template=_TEMPLATES,
    use_field=st.booleans(),
    id_field=st.one_of(st.none(), _NAMES),
    model=st.one_of(st.none(), st.just("m")),
    max_tokens=st.one_of(st.none(), st.integers(1, 9)),
)
def test_a_record_becomes_a_valid_request_or_an_error_naming_its_line(
    tmp_path: Path,
    records: list[Any],
    template: str,
    use_field: bool,
    id_field: str | None,
    model: str | None,
    max_tokens: int | None,
) -> None:
    """Whatever the records, template and defaults: every request made passes the API's
    rules (those the fake enforces), or the error names the first bad record's line."""
    from airflow_provider_batches.testing._validation import validate_create

    options = RequestOptions(
        task="t",
        model=model,
        max_tokens=max_tokens,
        prompt_template=None if use_field else template,
        prompt_field="review" if use_field else None,
        custom_id_field=id_field,
    )
    source = _jsonl(tmp_path / "records.jsonl", records)  # the file is rewritten each example
    outcome: Any
    try:
        outcome = build_request_set(source, options)
    except InvalidRequestSetError as error:
        outcome = error
    if isinstance(outcome, InvalidRequestSetError):
        bad = outcome.index
        assert bad is not None
        assert 0 <= bad < len(records)
        assert f"line {bad + 1} " in str(outcome) or f"Request {bad} " in str(outcome), outcome
        for index in range(bad):  # every record before the bad one maps to a request
            complete_request(records[index], index + 1, options, index=index)
        return
    validate_create({"requests": outcome.requests})
    assert outcome.count == len(records)
    for record, request in zip(records, outcome.requests, strict=True):
        assert (request["params"]["model"], request["params"]["max_tokens"]) == (model, max_tokens)
        if id_field is not None:
            assert request["custom_id"] == str(record[id_field])


# ---- item: errors no retry can fix ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_errored": -1}, "max_errored must be a non-negative integer"),
        ({"max_expired_ratio": 2}, "max_expired_ratio must be a fraction"),
        ({"on_fully_canceled": "maybe"}, "on_fully_canceled must be"),
    ],
)
def test_policy_errors_name_the_task_and_no_retry_repeats_them(
    kwargs: dict[str, Any], words: str
) -> None:
    makers = [
        lambda: MessageBatchOperator(task_id="classify", requests=_bare(1), **kwargs),
        lambda: MessageBatchSensor(task_id="classify", batch_id="msgbatch_1", **kwargs),
        lambda: MessageBatchOperator.partial(task_id="classify", **kwargs),
        lambda: MessageBatchSensor.partial(task_id="classify", **kwargs),
    ]
    for make in makers:
        with pytest.raises(InvalidTaskOptionError, match=f"classify.*: {words}") as info:
            make()
        assert isinstance(info.value, AirflowFailException)
        assert isinstance(info.value, ValueError), "still a ValueError, as before"


def test_wait_option_errors_are_not_retried() -> None:
    with pytest.raises(AirflowFailException, match="wait: start_from_trigger=True needs"):
        MessageBatchSensor(
            task_id="wait", batch_id="msgbatch_1", deferrable=False, start_from_trigger=True
        )
    with pytest.raises(AirflowFailException, match="classify: poll_interval"):
        MessageBatchOperator(task_id="classify", requests=_bare(1), poll_interval=0)
    with pytest.raises(AirflowFailException, match="classify: pass either requests or prompts"):
        MessageBatchOperator(task_id="classify")


def test_the_submission_log_line_names_the_batch_once(
    fake_conn: str,
    fake: FakeBatchesServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The line logged once the batch is submitted: the id once, then how and the counts.
    (The record store and the submission's bookkeeping are covered elsewhere; here the
    batch is created on the fake and ended at once.)"""
    from airflow_provider_batches.operators import _submission as submission
    from airflow_provider_batches.operators import _task_record as task_record

    class Store:
        def get(self) -> None:
            return None

    def submit(self: Any, request_set: Any, *, resubmit: bool) -> submission.Submission:
        batch = self.hook.create_batch(request_set.requests)
        fake.end_batch(batch.id)
        return submission.Submission(self.hook.retrieve_batch(batch.id), "created")

    monkeypatch.setattr(task_record, "record_store_for", lambda context, identity: Store())
    monkeypatch.setattr(submission.Submitter, "submit", submit)
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="submit", map_index=-1, try_number=1)
    operator = MessageBatchOperator(task_id="submit", requests=requests_for(1), deferrable=False)
    batch = operator.execute({"ti": ti})  # type: ignore[arg-type]
    output = capsys.readouterr().out  # the task logger writes through structlog
    lines = [line for line in output.splitlines() if "(created)" in line]
    assert lines, output
    assert lines[0].count(batch["id"]) == 1, lines[0]


# ---- DAG runs --------------------------------------------------------------------------------


@pytest.fixture
def dag_fake(airflow_db: object, set_connection: Any) -> Any:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as server:
        set_connection(
            "anthropic_default", server.base_url, max_retries=1, default_model="conn-model"
        )
        yield server


@pytest.mark.airflow_db
def test_a_dag_reads_records_with_a_template_and_the_connection_s_model(
    dag_fake: FakeBatchesServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dag.test(): records JSONL + prompt_template + custom_id_field, model from the
    connection; run again for the same logical date (a clear), it re-attaches: one create."""
    import operator_dag_runs
    from operator_dag_runs import DAGS_DIR, run_dag, use_variable_records

    from airflow_provider_batches.hooks.batch import MessageBatchHook

    # Variable records: dag.test() drops the run's task_state_store rows when it re-runs it.
    use_variable_records(monkeypatch)
    monkeypatch.setattr(operator_dag_runs, "DAG_FILE", DAGS_DIR / "request_defaults.py")
    path = _jsonl(tmp_path / "reviews.jsonl", REVIEWS)
    when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    _, states, xcoms = run_dag("records_from_connection", {"path": path}, logical_date=when)
    assert states == {"submit": "success"}, states
    batch = xcoms[("submit", "return_value")]
    assert batch["request_counts"]["succeeded"] == 2
    results = list(MessageBatchHook("anthropic_default").iter_results(batch["id"]))
    assert sorted(r.custom_id for r in results) == ["7", "b-8"]
    assert {r.result.message.model for r in results} == {"conn-model"}  # type: ignore[union-attr]

    _, states, again = run_dag("records_from_connection", {"path": path}, logical_date=when)
    assert states == {"submit": "success"}
    assert again[("submit", "return_value")]["id"] == batch["id"], "re-attached"
    creates = [r for r in dag_fake.requests if r.method == "POST" and r.batch_id is None]
    assert len(creates) == 1


@pytest.mark.airflow_db
def test_mapped_prompts_without_a_model_fail_each_mapped_task_once(
    dag_fake: FakeBatchesServer, set_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model on the task, its .partial() or the connection: each mapped task instance
    fails at its first try (no retry), before any request."""
    import operator_dag_runs
    from airflow.utils.session import create_session
    from operator_dag_runs import DAGS_DIR, run_dag

    set_connection("anthropic_default", dag_fake.base_url, max_retries=1)
    monkeypatch.setattr(operator_dag_runs, "DAG_FILE", DAGS_DIR / "request_defaults.py")
    run, _, _ = run_dag("mapped_prompts_no_model", {})
    with create_session() as session:
        tis = run.get_task_instances(session=session)
        got = sorted((ti.map_index, ti.state, ti.try_number) for ti in tis)
    assert got == [(0, "failed", 1), (1, "failed", 1)], got
    assert dag_fake.requests == []
