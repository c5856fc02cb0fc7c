"""The manifest's cost: the shipped price table, exact dollars per model and in total for a
fixed results file, overrides from the connection and the caller, the rounding rule, the one
warning for a model without a price, and the log line; written by write_results against the fake.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.cost import batch_cost
from airflow_provider_batches.cost.batch_cost import (
    MAX_MODELS,
    OTHER_MODELS,
    ModelUsage,
    cost_section,
    exact_cost,
    summary_line,
)
from airflow_provider_batches.cost.prices import (
    PRICE_KINDS,
    ModelPrices,
    parse_price_rows,
    price_table,
    shipped_price_table,
)
from airflow_provider_batches.exceptions import ConnectionConfigError, PriceTableError
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.results.manifest import ManifestBuilder
from airflow_provider_batches.results.models import Usage, parse_result_line
from airflow_provider_batches.results.writer import write_results
from airflow_provider_batches.testing import FakeBatchesServer

SONNET = "claude-sonnet-4-5-20250929"  # priced as claude-sonnet-4-5: 3 / 3.75 / 6 / 0.30 / 15
HAIKU = "claude-haiku-4-5"  # 1 / 1.25 / 2 / 0.10 / 5
UNKNOWN = "claude-mystery-9"


def _succeeded(custom_id: str, model: str, **usage: Any) -> dict[str, Any]:
    message = {"id": f"msg_{custom_id}", "model": model, "content": [], "usage": usage}
    return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}


#: Every token kind, two priced models (one by its dated snapshot id), an unknown model, an
#: errored line; cache writes with and without the 5m/1h breakdown.
FIXED_RESULTS = [
    _succeeded(
        "a",
        SONNET,
        input_tokens=1000,
        output_tokens=2000,
        cache_creation_input_tokens=3000,
        cache_read_input_tokens=4000,
        cache_creation={"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000},
    ),
    _succeeded("b", SONNET, input_tokens=234567, output_tokens=12345),
    _succeeded(
        "c",
        HAIKU,
        input_tokens=7,
        output_tokens=3,
        cache_creation_input_tokens=11,
        cache_read_input_tokens=13,
    ),
    _succeeded("d", UNKNOWN, input_tokens=100, output_tokens=100),
    {
        "custom_id": "e",
        "result": {"type": "errored", "error": {"error": {"type": "invalid_request_error"}}},
    },
]


def _manifest_of(lines: list[dict[str, Any]], table: Any = None) -> dict[str, Any]:
    builder = ManifestBuilder()
    for index, line in enumerate(lines, 1):
        builder.add(parse_result_line(json.dumps(line).encode(), index))
    return {
        "line_counts": {**dict(builder.counts), "total": sum(builder.counts.values())},
        "usage": dict(builder.usage),
        "cost": cost_section(builder.model_usage, table or price_table()),
    }


# ---- the shipped table --------------------------------------------------------------------------


def test_the_shipped_table_names_its_anthropic_source_and_date_and_prices_batches_at_half() -> None:
    table = shipped_price_table()
    assert table.source_url.startswith("https://platform.claude.com/docs/")
    assert table.as_of == "2026-12-05"
    assert table.batch_discount == Decimal("0.5")
    data = json.loads(
        (Path(batch_cost.__file__).parent / "prices.json").read_text(encoding="utf-8")
    )
    for model, row in data["models"].items():
        assert row.get("source", data["source_url"]).startswith(
            ("https://platform.claude.com/", "https://docs.anthropic.com/")
        ), model
    # Spot checks against Anthropic's table (standard USD per million tokens).
    assert table.models["claude-sonnet-4-5"] == ModelPrices(
        Decimal(3), Decimal("3.75"), Decimal(6), Decimal("0.30"), Decimal(15)
    )
    assert table.batch_price(table.models["claude-opus-4-1"], "output") == Decimal("37.5")


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-sonnet-5-20260630", "claude-sonnet-5"),
        ("claude-sonnet-5-5x", None),
        ("claude-sonnet-4-5-latest", None),
        ("claude-sonnet-4", None),
        ("claude-haiku-5-5", None),
    ],
)
def test_a_model_is_priced_by_its_row_or_its_dated_snapshot_and_nothing_else(
    model: str, priced_as: str | None
) -> None:
    found = shipped_price_table().lookup(model)
    assert (None if found is None else found[0]) == priced_as


# ---- exact dollars ------------------------------------------------------------------------------


def test_a_fixed_results_file_costs_exact_dollars_per_model_and_in_total(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=batch_cost.__name__):
        manifest = _manifest_of(FIXED_RESULTS)
    cost = manifest["cost"]
    sonnet = cost["by_model"][SONNET]
    assert sonnet["priced_as"] == "claude-sonnet-4-5"
    assert sonnet["tokens"] == {
        "input_tokens": 235567,
        "output_tokens": 14345,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 4000,
        "cache_creation_1h_input_tokens": 1000,
    }
    # input 235,567 x $1.50/M = 0.3533505 -> 0.353350 (half-even: 0 is even)
    # output 14,345 x $7.50/M = 0.1075875 -> 0.107588 (half-even: 7 is odd)
    # cache writes 2,000 x $1.875/M (5m) + 1,000 x $3/M (1h) = 0.00675; reads 4,000 x $0.15/M
    assert sonnet["usd"] == {
        "input": 0.35335,
        "output": 0.107588,
        "cache_write": 0.00675,
        "cache_read": 0.0006,
        "total": 0.468288,
    }
    # Haiku: 7 x 0.5, 3 x 2.5, 11 x 0.625 (no breakdown: the 5-minute price), 13 x 0.05 per M.
    # The total is the exact sum 0.000018525 rounded (0.000019), not the sum of the rounded
    # parts (0.000020).
    assert cost["by_model"][HAIKU]["usd"] == {
        "input": 0.000004,
        "output": 0.000008,
        "cache_write": 0.000007,
        "cache_read": 0.000001,
        "total": 0.000019,
    }
    assert cost["by_model"][UNKNOWN] == {
        "priced_as": None,
        "tokens": {
            "input_tokens": 100,
            "output_tokens": 100,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation_1h_input_tokens": 0,
        },
        "usd": None,
    }
    assert cost["unpriced_models"] == [UNKNOWN]
    assert cost["total_usd"] is None
    assert cost["priced_usd"]["total"] == 0.468307  # 0.468306525, half-even
    assert cost["prices_as_of"] == "2026-12-05"
    assert cost["prices_source"] == shipped_price_table().source_url
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert UNKNOWN in warnings[0].getMessage()
    assert summary_line(manifest) == (
        "4 succeeded, 1 errored; 242.7 k input / 14.4 k output tokens; $0.47 at batch prices as "
        f"of 2026-12-05 (no price for {UNKNOWN}: not counted)"
    )


def test_with_every_model_priced_the_total_is_the_priced_total() -> None:
    manifest = _manifest_of(FIXED_RESULTS[:3])
    assert manifest["cost"]["total_usd"] == manifest["cost"]["priced_usd"]["total"] == 0.468307
    assert summary_line(manifest).endswith("; $0.47 at batch prices as of 2026-12-05")


@pytest.mark.parametrize(
    ("total", "shown"),
    [
        (0.005, "$0.00"),  # half-even: 0 is even
        (0.015, "$0.02"),  # half-even: 1 is odd
        (0.025, "$0.02"),
        (0.005001, "$0.01"),
        (11.374999, "$11.37"),
        (12345.675, "$12,345.68"),
    ],
)
def test_the_log_line_rounds_the_manifest_total_half_even_to_cents(
    total: float, shown: str
) -> None:
    manifest = {
        "line_counts": {"succeeded": 12480, "errored": 20, "expired": 3},
        "usage": {
            "input_tokens": 3_000_000,
            "cache_creation_input_tokens": 50_000,
            "cache_read_input_tokens": 60_000,
            "output_tokens": 900_000,
        },
        "cost": {
            "priced_usd": {"total": total},
            "prices_as_of": "2026-12-05",
            "unpriced_models": [],
        },
    }
    assert summary_line(manifest) == (
        f"12,480 succeeded, 20 errored, 3 expired; 3.1 M input / 900.0 k output tokens; {shown} "
        "at batch prices as of 2026-12-05"
    )


def test_the_manifest_rounds_each_figure_half_even_to_six_decimals() -> None:
    table = price_table({"m": ModelPrices(*(Decimal(1),) * 5)})
    # 1 token at $1/M x 0.5 = 0.0000005 -> 0.000000 (even); 3 tokens -> 0.0000015 -> 0.000002
    for tokens, expected in ((1, 0.0), (3, 0.000002), (5, 0.000002), (7, 0.000004)):
        usage = ModelUsage()
        usage.add("m", Usage(input_tokens=tokens))
        assert cost_section(usage, table)["by_model"]["m"]["usd"]["input"] == expected


# ---- overrides ----------------------------------------------------------------------------------


def test_caller_prices_override_the_connection_which_overrides_the_shipped_table() -> None:
    connection = parse_price_rows(
        {
            UNKNOWN: {
                "input": 2,
                "cache_write_5m": 0,
                "cache_write_1h": 0,
                "cache_read": 0,
                "output": "4",
            },
            "claude-haiku-4-5": {kind: "0" for kind in PRICE_KINDS},
        },
        "connection",
    )
    caller = parse_price_rows(
        json.dumps(
            {
                UNKNOWN: {
                    "input": 20,
                    "cache_write_5m": 0,
                    "cache_write_1h": 0,
                    "cache_read": 0,
                    "output": 40,
                }
            }
        ),
        "prices",
    )
    cost = _manifest_of(FIXED_RESULTS, price_table(connection, caller))["cost"]
    # 100 x $20/M x 0.5 + 100 x $40/M x 0.5
    assert cost["by_model"][UNKNOWN]["usd"]["total"] == 0.003
    assert cost["by_model"][HAIKU]["usd"]["total"] == 0.0
    assert cost["overridden_models"] == [HAIKU, UNKNOWN]
    assert cost["unpriced_models"] == []
    assert cost["total_usd"] == 0.471288  # 0.468288 + 0.003


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "is not JSON"),
        ([1, 2], "must map model ids"),
        ({"m": 3}, "must be an object"),
        ({"m": {"input": 1, "output": 1}}, "lacks ['cache_write_5m', 'cache_write_1h'"),
        ({"m": {**dict.fromkeys(PRICE_KINDS, 1), "inptu": 1}}, "unknown fields ['inptu']"),
        ({"m": {**dict.fromkeys(PRICE_KINDS, 1), "output": -1}}, "['m'].output must be"),
        ({"m": {**dict.fromkeys(PRICE_KINDS, 1), "cache_read": "NaN"}}, "['m'].cache_read"),
        ({"m": {**dict.fromkeys(PRICE_KINDS, 1), "input": True}}, "['m'].input must be"),
        ({"m": {**dict.fromkeys(PRICE_KINDS, 1), "input": float("inf")}}, "['m'].input"),
        ({"": dict.fromkeys(PRICE_KINDS, 1)}, "is not a model id"),
    ],
)
def test_a_bad_price_override_is_an_error_naming_the_field(value: Any, words: str) -> None:
    with pytest.raises(PriceTableError) as info:
        parse_price_rows(value, "prices")
    assert words in str(info.value)


def test_a_bad_prices_extra_is_a_connection_error_naming_the_extra(
    fake: FakeBatchesServer, set_connection: Callable[..., None]
) -> None:
    set_connection("priced", fake.base_url, prices={"m": {"input": 1}})
    with pytest.raises(ConnectionConfigError, match=r"Connection 'priced': extra 'prices'\['m'\]"):
        _ = MessageBatchHook("priced").settings


# ---- classes of input ---------------------------------------------------------------------------

_COUNTS = st.integers(min_value=0, max_value=10**12)
_TOKENS = st.fixed_dictionaries(
    {
        "input_tokens": _COUNTS,
        "output_tokens": _COUNTS,
        "cache_creation_input_tokens": _COUNTS,
        "cache_read_input_tokens": _COUNTS,
        "cache_creation_1h_input_tokens": _COUNTS,
    }
)


@settings(max_examples=60, deadline=None)
@given(first=_TOKENS, second=_TOKENS, model=st.sampled_from(sorted(shipped_price_table().models)))
def test_cost_is_additive_and_monotone_over_token_counts(
    first: dict[str, int], second: dict[str, int], model: str
) -> None:
    table = shipped_price_table()
    both = {name: first[name] + second[name] for name in first}
    # Additive only where each part's 1-hour writes fit in its own writes, as the API reports.
    for tokens in (first, second):
        tokens["cache_creation_1h_input_tokens"] = min(
            tokens["cache_creation_1h_input_tokens"], tokens["cache_creation_input_tokens"]
        )
    both["cache_creation_1h_input_tokens"] = (
        first["cache_creation_1h_input_tokens"] + second["cache_creation_1h_input_tokens"]
    )
    one, two, total = (exact_cost(t, model, table) for t in (first, second, both))
    for kind in total:
        assert total[kind] == one[kind] + two[kind]
        assert total[kind] >= max(one[kind], two[kind]) >= 0


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.sampled_from([SONNET, HAIKU, "claude-opus-4-6"]), _TOKENS), max_size=20
    )
)
def test_the_total_is_the_rounded_exact_sum_of_the_models(
    lines: list[tuple[str, dict[str, int]]],
) -> None:
    usage = ModelUsage()
    for model, tokens in lines:
        usage.add(
            model, Usage(**{k: v for k, v in tokens.items() if not k.endswith("1h_input_tokens")})
        )
    cost = cost_section(usage, shipped_price_table())
    exact = sum(
        (exact_cost(t, m, shipped_price_table())["total"] for m, t in usage.by_model.items()),
        Decimal(0),
    )
    assert Decimal(str(cost["total_usd"])) == batch_cost.rounded(exact)


def test_models_past_the_limit_are_pooled_and_left_unpriced() -> None:
    usage = ModelUsage()
    for index in range(MAX_MODELS + 5):
        usage.add(f"model-{index}", Usage(input_tokens=1))
    assert len(usage.by_model) == MAX_MODELS + 1
    assert usage.by_model[OTHER_MODELS]["input_tokens"] == 5


# ---- through write_results ----------------------------------------------------------------------


def test_write_results_puts_the_cost_in_the_manifest_and_ends_the_log_with_one_line(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    override = {kind: "2" for kind in PRICE_KINDS}
    set_connection("priced", fake.base_url, prices={UNKNOWN: override})
    models = [SONNET, HAIKU, UNKNOWN, "claude-unpriced-1"] * 3
    batch = fake.create_batch(num_requests=12, ends_after=0, models=models)
    with caplog.at_level(logging.INFO):
        manifest = write_results(
            MessageBatchHook("priced"),
            batch["id"],
            tmp_path.as_uri(),
            prices={HAIKU: {kind: 0 for kind in PRICE_KINDS}},
        )
    stored = json.loads((tmp_path / batch["id"] / "manifest.json").read_text())
    assert stored["cost"] == manifest["cost"]
    cost = manifest["cost"]
    assert set(cost["by_model"]) == {SONNET, HAIKU, UNKNOWN, "claude-unpriced-1"}
    assert cost["unpriced_models"] == ["claude-unpriced-1"]
    assert cost["overridden_models"] == [HAIKU, UNKNOWN]
    assert cost["by_model"][HAIKU]["usd"]["total"] == 0.0
    table = price_table(
        parse_price_rows({UNKNOWN: override}, "c"), parse_price_rows({HAIKU: override}, "c")
    )
    for model in (SONNET, UNKNOWN):
        entry = cost["by_model"][model]
        expected = exact_cost(entry["tokens"], model, table)["total"]
        assert Decimal(str(entry["usd"]["total"])) == batch_cost.rounded(expected)
    tokens = sum(e["tokens"]["output_tokens"] for e in cost["by_model"].values())
    assert tokens == manifest["usage"]["output_tokens"]
    ours = [r for r in caplog.records if r.name.startswith("airflow_provider_batches")]
    assert ours[-1].getMessage() == summary_line(manifest)
    assert "12 succeeded, 0 errored;" in ours[-1].getMessage()
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "claude-unpriced-1" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "manifest",
    [
        {},
        {"line_counts": {"succeeded": 2}, "usage": {"output_tokens": "x"}},
        {"line_counts": {"succeeded": 2}, "cost": {"priced_usd": {"total": "lots"}}},
        {"line_counts": {"succeeded": 2}, "cost": None},
    ],
)
def test_the_log_line_of_an_older_or_odd_manifest_leaves_out_what_it_lacks(
    manifest: dict[str, Any],
) -> None:
    line = summary_line(manifest)
    assert line.startswith(f"{manifest.get('line_counts', {}).get('succeeded', 0)} succeeded")
    assert "$" not in line
