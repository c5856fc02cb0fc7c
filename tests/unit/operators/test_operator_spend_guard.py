"""The spend guard: the cost bound of a request set (output at max_tokens, input estimated from
its bytes), checked against max_cost_usd before any request reaches the API, in a real
``dag.test()`` run and in the operator's execute."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import API_KEY, DAGS_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.cost.guard import check_spend, spend_bound
from airflow_provider_batches.cost.prices import PRICE_KINDS, parse_price_rows, price_table
from airflow_provider_batches.exceptions import (
    PriceTableError,
    SpendLimitExceededError,
    UnpricedModelError,
)
from airflow_provider_batches.operators.batch import MessageBatchOperator
from airflow_provider_batches.testing import FakeBatchesServer

# $20 per million output tokens (a batch: $10), input free: $0.00001 per max_tokens.
TEST_PRICES = {"claude-test": {**dict.fromkeys(PRICE_KINDS, "0"), "output": "20"}}
CAP = 0.05


def _requests(max_tokens: list[int], model: str = "claude-test") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"req-{index}",
            "params": {
                "model": model,
                "max_tokens": tokens,
                "messages": [{"role": "user", "content": "hi"}],
            },
        }
        for index, tokens in enumerate(max_tokens)
    ]


def _operator(conn_id: str, requests: list[dict[str, Any]], **kwargs: Any) -> MessageBatchOperator:
    return MessageBatchOperator(
        task_id="submit", requests=requests, conn_id=conn_id, **{"prices": TEST_PRICES, **kwargs}
    )


# ---- the bound ----------------------------------------------------------------------------------


def test_the_bound_is_output_at_max_tokens_plus_input_at_one_token_per_byte() -> None:
    table = price_table()  # claude-sonnet-4-5 in a batch: input $1.50/M, output $7.50/M
    requests = _requests([1000, 3000], model="claude-sonnet-4-5-20250929")
    requests[1]["params"]["system"] = [
        {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    ]
    bound = spend_bound(requests, table)
    assert bound.output_usd == Decimal("0.03")  # 4,000 x 7.50 / 1e6
    plain = len(b'{"messages":[{"role":"user","content":"hi"}]}')  # 45 bytes
    cached = len(
        json.dumps(
            {
                "system": requests[1]["params"]["system"],
                "messages": requests[1]["params"]["messages"],
            },
            separators=(",", ":"),
        )
    )
    # The request using cache_control is priced at the 1-hour write price ($3/M in a batch).
    assert bound.input_usd == (Decimal(plain) * Decimal("1.5") + Decimal(cached) * 3) / 10**6
    assert bound.requests_by_model == {"claude-sonnet-4-5-20250929": 2}
    assert bound.unpriced == ()


@settings(max_examples=40, deadline=None)
@given(
    tokens=st.lists(st.integers(min_value=1, max_value=128_000), min_size=1, max_size=30),
    extra=st.integers(min_value=1, max_value=10_000),
    split=st.integers(min_value=0, max_value=30),
)
def test_the_bound_adds_up_over_requests_and_grows_with_max_tokens(
    tokens: list[int], extra: int, split: int
) -> None:
    table = price_table()
    requests = _requests(tokens, model="claude-opus-4-6")
    whole = spend_bound(requests, table)
    parts = spend_bound(requests[:split], table), spend_bound(requests[split:], table)
    assert whole.total_usd == parts[0].total_usd + parts[1].total_usd
    bigger = _requests([*tokens[:-1], tokens[-1] + extra], model="claude-opus-4-6")
    assert spend_bound(bigger, table).total_usd > whole.total_usd


# ---- before any request -------------------------------------------------------------------------


def test_one_cent_over_the_cap_fails_before_any_request(
    fake: FakeBatchesServer, fake_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = _operator(fake_conn, _requests([1500] * 4), max_cost_usd=CAP)  # $0.06
    with pytest.raises(SpendLimitExceededError) as info:
        operator.execute({})  # type: ignore[arg-type]
    message = str(info.value)
    assert "up to $0.06 ($0.06 output at max_tokens + $0.00 input estimate)" in message
    assert "max_cost_usd=$0.05" in message
    assert "top models: claude-test $0.06 (4 requests)" in message
    assert fake.request_count() == 0
    # The task log (Airflow's structured logger writes it to stdout here) shows the bound.
    assert "Cost bound of the batch: $0.06" in capsys.readouterr().out


def test_a_model_without_a_price_fails_naming_it_and_how_to_add_one(
    fake: FakeBatchesServer, fake_conn: str
) -> None:
    requests = [*_requests([10]), *_requests([10], model="claude-nameless")]
    requests[1]["custom_id"] = "other"
    operator = _operator(fake_conn, requests, max_cost_usd=100.0)
    with pytest.raises(UnpricedModelError) as info:
        operator.execute({})  # type: ignore[arg-type]
    assert "'claude-nameless'" in str(info.value)
    assert "prices" in str(info.value)
    assert "docs/cost.md" in str(info.value)
    assert fake.request_count() == 0


@pytest.mark.parametrize("cap", [None, 100.0])
def test_the_bound_is_logged_with_or_without_a_cap_and_under_it_nothing_is_raised(
    fake: FakeBatchesServer, fake_conn: str, capsys: pytest.CaptureFixture[str], cap: Any
) -> None:
    operator = _operator(fake_conn, _requests([1000] * 4), max_cost_usd=cap)  # $0.04
    operator._check_spend(operator.request_set().tally)
    assert "Cost bound of the batch: $0.04" in capsys.readouterr().out


def test_without_a_cap_an_unpriced_model_is_only_named_in_a_warning(
    fake: FakeBatchesServer, fake_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = _operator(fake_conn, _requests([10], model="claude-nameless"))
    operator._check_spend(operator.request_set().tally)
    out = capsys.readouterr().out
    assert "Cost bound of the batch: $0.00" in out
    assert "No price for claude-nameless: not in the bound." in out
    assert fake.request_count() == 0


def test_the_top_models_are_the_three_dearest() -> None:
    table = price_table(
        parse_price_rows(
            {f"m{i}": {**dict.fromkeys(PRICE_KINDS, 0), "output": 2 * i} for i in range(1, 5)},
            "test",
        )
    )
    requests = [r for i in range(1, 5) for r in _requests([1_000_000], model=f"m{i}")]
    for index, request in enumerate(requests):
        request["custom_id"] = f"r{index}"
    with pytest.raises(SpendLimitExceededError) as info:
        check_spend(spend_bound(requests, table), 1, table)
    assert "top models: m4 $4.00 (1 requests), m3 $3.00 (1 requests), m2 $2.00" in str(info.value)
    assert "m1 $" not in str(info.value)


@pytest.mark.parametrize("cap", [0, -1, float("nan"), float("inf"), True, "5"])
def test_a_bad_cap_fails_at_dag_parse(cap: Any) -> None:
    with pytest.raises(ValueError, match="max_cost_usd must be a positive number"):
        _operator("x", _requests([1]), max_cost_usd=cap)


def test_bad_prices_fail_at_dag_parse_naming_the_field() -> None:
    with pytest.raises(PriceTableError, match=r"submit: prices\['claude-test'\]\.output"):
        _operator(
            "x",
            _requests([1]),
            prices={"claude-test": {**TEST_PRICES["claude-test"], "output": "lots"}},
        )


# ---- in real Airflow ----------------------------------------------------------------------------


@pytest.fixture
def guard_fake(airflow_db: object, set_connection: Any) -> Iterator[FakeBatchesServer]:
    with FakeBatchesServer(api_key=API_KEY, processing_seconds=0.5) as server:
        set_connection("anthropic_default", server.base_url, max_retries=1)
        yield server


def _run(requests: list[dict[str, Any]]) -> str:
    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(DAGS_DIR / "operator_spend_guard.py"))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["operator_spend_guard"].test(run_conf={"requests": requests})
    from airflow.utils.session import create_session

    with create_session() as session:
        (submit,) = [ti for ti in run.get_task_instances(session=session) if ti.task_id == "submit"]
        return str(submit.state)


def _creates(fake: FakeBatchesServer) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.batch_id is None)


@pytest.mark.airflow_db
def test_in_a_dag_run_one_cent_under_the_cap_submits_and_one_cent_over_sends_nothing(
    guard_fake: FakeBatchesServer,
) -> None:
    assert _run(_requests([1500] * 4)) == "failed"  # $0.06
    assert guard_fake.request_count() == 0
    assert _run(_requests([1000] * 4)) == "success"  # $0.04
    assert _creates(guard_fake) == 1


def test_a_file_s_bound_comes_from_the_one_pass_not_the_requests_parsed_again(
    fake: FakeBatchesServer,
    fake_conn: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A request set read from a file keeps its requests on disk only: the bound is taken from
    what the check pass kept per model, never from the requests read back into memory."""
    from airflow_provider_batches.request_set import RequestSet

    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _requests([1000] * 4)))

    def parsed_again(self: RequestSet) -> list[dict[str, Any]]:
        raise AssertionError("the requests were parsed back into memory")

    operator = _operator(fake_conn, [], max_cost_usd=100.0)
    operator.requests = str(path)
    request_set = operator.request_set()
    monkeypatch.setattr(RequestSet, "requests", property(parsed_again))
    operator._check_spend(request_set.tally)
    assert "Cost bound of the batch: $0.04" in capsys.readouterr().out
