"""What an ended batch cost: tokens summed per model, priced at batch prices, and one log line.

Rounding rule: every figure is computed exactly in ``Decimal`` (tokens x USD per million
tokens x batch discount / 1,000,000), summed exactly, then rounded once, half-even, to 6
decimals in the manifest (so a model's ``total`` is the rounded exact sum, not the sum of its
rounded parts). The log line shows the manifest's total rounded half-even to cents.

Cache writes: the 1-hour part the usage reports (``cache_creation.ephemeral_1h_input_tokens``)
is priced at the 1-hour write price, the rest of ``cache_creation_input_tokens`` at the
5-minute (default) price.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from airflow_provider_batches.cost.prices import MILLION, PriceTable

log = logging.getLogger(__name__)

#: Token counts kept per model: the usage fields, and the 1-hour part of the cache writes.
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cache_creation_1h_input_tokens",
)
#: The cost kinds of the manifest, and the total.
COST_KINDS = ("input", "output", "cache_write", "cache_read")
MANIFEST_PLACES = Decimal("0.000001")
LOG_PLACES = Decimal("0.01")
#: Distinct model ids counted one by one; results of any further model are pooled (unpriced),
#: so a server sending a new model name on every line cannot grow the manifest without bound.
MAX_MODELS = 100
OTHER_MODELS = "(other models)"
_MAX_MODEL_CHARS = 200


class ModelUsage:
    """Token counts of succeeded results, summed per model id."""

    def __init__(self) -> None:
        self.by_model: dict[str, dict[str, int]] = {}

    def add(self, model: str, usage: Any) -> None:
        key = model[:_MAX_MODEL_CHARS]
        if key not in self.by_model and len(self.by_model) >= MAX_MODELS:
            key = OTHER_MODELS
        sums = self.by_model.setdefault(key, dict.fromkeys(TOKEN_FIELDS, 0))
        for name in TOKEN_FIELDS[:4]:
            sums[name] += getattr(usage, name) or 0
        breakdown = getattr(usage, "cache_creation", None)
        if breakdown is not None:
            sums["cache_creation_1h_input_tokens"] += breakdown.ephemeral_1h_input_tokens or 0


def exact_cost(tokens: Mapping[str, int], model: str, table: PriceTable) -> dict[str, Decimal]:
    """Unrounded USD by kind (and ``total``) of one model's tokens; raises ``KeyError`` for a
    model the table does not price."""
    found = table.lookup(model)
    if found is None:
        raise KeyError(model)
    _, prices = found
    written = tokens["cache_creation_input_tokens"]
    one_hour = min(tokens["cache_creation_1h_input_tokens"], written)

    def usd(count: int, kind: str) -> Decimal:
        return Decimal(count) * table.batch_price(prices, kind) / MILLION

    cost = {
        "input": usd(tokens["input_tokens"], "input"),
        "output": usd(tokens["output_tokens"], "output"),
        "cache_write": usd(written - one_hour, "cache_write_5m") + usd(one_hour, "cache_write_1h"),
        "cache_read": usd(tokens["cache_read_input_tokens"], "cache_read"),
    }
    cost["total"] = sum(cost.values(), Decimal(0))
    return cost


def rounded(value: Decimal, places: Decimal = MANIFEST_PLACES) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


def cost_section(usage: ModelUsage, table: PriceTable) -> dict[str, Any]:
    """The manifest's ``cost``: per model and in total. A model without a price gets
    ``usd: null``, makes ``total_usd`` null (``priced_usd`` still sums the others) and is named
    in one warning."""
    by_model: dict[str, Any] = {}
    priced = dict.fromkeys((*COST_KINDS, "total"), Decimal(0))
    unpriced: list[str] = []
    for model, tokens in sorted(usage.by_model.items()):
        found = None if model == OTHER_MODELS else table.lookup(model)
        entry: dict[str, Any] = {"priced_as": None if found is None else found[0]}
        entry["tokens"] = dict(tokens)
        if found is None:
            unpriced.append(model)
            entry["usd"] = None
        else:
            cost = exact_cost(tokens, model, table)
            for kind, value in cost.items():
                priced[kind] += value
            entry["usd"] = {kind: float(rounded(value)) for kind, value in cost.items()}
        by_model[model] = entry
    if unpriced:
        log.warning(
            "No price for %s: their cost is left out (null). Add a price with the connection "
            "extra 'prices' or the operator's prices argument (see docs/cost.md).",
            ", ".join(repr(model) for model in unpriced),
        )
    priced_usd = {kind: float(rounded(value)) for kind, value in priced.items()}
    return {
        "currency": "USD",
        "prices": "batch",
        "prices_as_of": table.as_of,
        "prices_source": table.source_url,
        "batch_discount": float(table.batch_discount),
        "overridden_models": sorted(table.overridden),
        "rounding": "exact decimal sums, each rounded half-even to 6 decimals",
        "by_model": by_model,
        "unpriced_models": unpriced,
        "priced_usd": priced_usd,
        "total_usd": None if unpriced else priced_usd["total"],
    }


def summary_line(manifest: Mapping[str, Any]) -> str:
    """One line a person reads: results by type, tokens, and what they cost. Tolerates a
    manifest from an older release (no ``cost``) or with fields missing."""
    counts = _numbers(manifest.get("line_counts"))
    shown = [
        f"{counts.get(kind, 0):,} {kind}"
        for kind in ("succeeded", "errored", "canceled", "expired", "unknown")
        if counts.get(kind) or kind in ("succeeded", "errored")
    ]
    usage = _numbers(manifest.get("usage"))
    input_tokens = sum(
        usage.get(name, 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    line = (
        f"{', '.join(shown)}; {_tokens(input_tokens)} input / "
        f"{_tokens(usage.get('output_tokens', 0))} output tokens"
    )
    cost = manifest.get("cost")
    try:
        total = Decimal(str(cost["priced_usd"]["total"]))  # type: ignore[index]
        as_of = str(cost["prices_as_of"])  # type: ignore[index]
        unpriced = [str(model) for model in cost["unpriced_models"]]  # type: ignore[index]
    except (TypeError, KeyError, ArithmeticError):
        return line
    line += f"; ${rounded(total, LOG_PLACES):,} at batch prices as of {as_of}"
    if unpriced:
        line += f" (no price for {', '.join(unpriced)}: not counted)"
    return line


def _numbers(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _tokens(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:,.1f} M"
    if count >= 1_000:
        return f"{count / 1_000:.1f} k"
    return str(count)
