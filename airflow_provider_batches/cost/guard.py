"""The spend guard: an upper bound on what a request set can cost, computed before its create.

``spend_bound`` is one pass over the requests (dicts with ``params.model``,
``params.max_tokens``, ...), so it folds into any pass that reads them.

- Output: every request's ``max_tokens`` x its model's batch output price. A request never
  produces more output tokens (thinking included) than ``max_tokens``, so this side is a bound.
- Input: an estimate. The UTF-8 bytes of the request's ``system``, ``messages`` and ``tools``
  as compact JSON, counted as one token per byte (``INPUT_BYTES_PER_TOKEN``): text takes at least
  one byte per token, and the JSON quoting adds more, so this over-counts text; priced at the
  model's batch input price, or at its highest cache-write price when the request uses
  ``cache_control``. It does not see what the API adds (a tool-use system prompt, image tokens
  computed from pixels), so it is an estimate, not a guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from airflow_provider_batches.cost.batch_cost import rounded
from airflow_provider_batches.cost.prices import MILLION, PriceTable
from airflow_provider_batches.exceptions import SpendLimitExceededError, UnpricedModelError
from airflow_provider_batches.request_set import RequestTally

#: Bytes of request JSON counted as one input token (see the module's docstring).
INPUT_BYTES_PER_TOKEN = 1
TOP_MODELS = 3
_SHOWN_UNPRICED = 5


@dataclass(frozen=True)
class SpendBound:
    """What a request set can cost at most (output) plus its input estimate, in USD."""

    output_usd: Decimal
    input_usd: Decimal
    by_model: Mapping[str, Decimal]
    requests_by_model: Mapping[str, int]
    unpriced: tuple[str, ...] = field(default=())

    @property
    def total_usd(self) -> Decimal:
        return self.output_usd + self.input_usd

    def top_models(self, count: int = TOP_MODELS) -> list[tuple[str, Decimal]]:
        return sorted(self.by_model.items(), key=lambda item: (-item[1], item[0]))[:count]

    def describe(self, table: PriceTable) -> str:
        top = ", ".join(
            f"{model} {usd_text(usd)} ({self.requests_by_model[model]:,} requests)"
            for model, usd in self.top_models()
        )
        return (
            f"{usd_text(self.total_usd)} ({usd_text(self.output_usd)} output at max_tokens + "
            f"{usd_text(self.input_usd)} input estimate) at batch prices as of {table.as_of}; "
            f"top models: {top or 'none'}"
        )


def spend_bound(requests: Iterable[Mapping[str, Any]], table: PriceTable) -> SpendBound:
    """The cost bound of ``requests`` (checked requests: ``params`` with ``model`` and
    ``max_tokens``). Models without a price are listed in ``unpriced`` and add nothing."""
    tally = RequestTally()
    for request in requests:
        tally.add(request["params"])
    return tally_bound(tally, table)


def tally_bound(tally: RequestTally, table: PriceTable) -> SpendBound:
    """The cost bound of the requests ``tally`` summarizes (a request set keeps it from its
    one pass: :attr:`RequestSet.tally`)."""
    output = Decimal(0)
    input_side = Decimal(0)
    by_model: dict[str, Decimal] = {}
    unpriced: list[str] = []
    for model, counts in tally.models.items():
        found = table.lookup(model)
        if found is None:
            unpriced.append(model)
            continue
        prices = found[1]
        model_output = Decimal(counts.max_tokens) * table.batch_price(prices, "output") / MILLION
        cache_rate = max(
            table.batch_price(prices, kind)
            for kind in ("input", "cache_write_5m", "cache_write_1h")
        )
        model_input = (
            Decimal(counts.input_bytes // INPUT_BYTES_PER_TOKEN)
            * table.batch_price(prices, "input")
            + Decimal(counts.cached_input_bytes // INPUT_BYTES_PER_TOKEN) * cache_rate
        ) / MILLION
        output += model_output
        input_side += model_input
        by_model[model] = model_output + model_input
    requests_by_model = {model: counts.requests for model, counts in tally.models.items()}
    return SpendBound(output, input_side, by_model, requests_by_model, tuple(unpriced))


def check_spend(bound: SpendBound, max_cost_usd: float | Decimal, table: PriceTable) -> None:
    """Raise if the bound cannot be computed or is over ``max_cost_usd``."""
    if bound.unpriced:
        shown = ", ".join(repr(model) for model in bound.unpriced[:_SHOWN_UNPRICED])
        more = len(bound.unpriced) - _SHOWN_UNPRICED
        raise UnpricedModelError(
            f"max_cost_usd is set, but no price is known for {shown}"
            f"{f' and {more} more models' if more > 0 else ''}, so the batch's cost cannot be "
            "bounded; nothing was sent. Add the model's prices (USD per million tokens: input, "
            "cache_write_5m, cache_write_1h, cache_read, output) with the operator's prices "
            "argument or the connection extra 'prices' (see docs/cost.md)."
        )
    cap = Decimal(str(max_cost_usd))
    if bound.total_usd > cap:
        raise SpendLimitExceededError(
            f"The batch can cost up to {bound.describe(table)}: over max_cost_usd="
            f"{usd_text(cap)}. Nothing was sent. Lower max_tokens, split the requests, use a "
            "cheaper model, or raise max_cost_usd."
        )


def usd_text(value: Decimal) -> str:
    """Dollars to 6 decimals (half-even), trailing zeros past the cents dropped."""
    text = f"{rounded(value):,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"
