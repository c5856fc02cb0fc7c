"""The price table: what a token of each kind costs, per model, at Message Batches prices.

The shipped table (``prices.json`` next to this module) holds Anthropic's standard list prices
in USD per million tokens, copied from Anthropic's own pages on its ``as_of`` date, and the
batch discount (a batch costs ``batch_discount`` times every price: input, output, cache writes
and cache reads). A connection extra ``prices`` or an operator's ``prices`` argument overrides
or extends it, model by model, in the same shape (see docs/cost.md).

A model id matches a row of the same name, or the row's name followed by a date snapshot
(``claude-sonnet-4-5-20250929`` is priced as ``claude-sonnet-4-5``); nothing else matches, so a
model the table does not name gets no price rather than a neighbour's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from airflow_provider_batches.exceptions import PriceTableError

#: The five prices of a row, in USD per million tokens (the columns of Anthropic's table).
PRICE_KINDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
MILLION = Decimal(1_000_000)
_SNAPSHOT_SUFFIX = re.compile(r"-[0-9]{8}")
_ROW_KEYS = frozenset({*PRICE_KINDS, "source"})
_SHOWN_CHARS = 100


@dataclass(frozen=True)
class ModelPrices:
    """One model's standard prices in USD per million tokens."""

    input: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    output: Decimal


@dataclass(frozen=True)
class PriceTable:
    """Prices by model id, the batch discount, and where and when the prices were read."""

    models: Mapping[str, ModelPrices]
    batch_discount: Decimal
    as_of: str
    source_url: str
    #: Models whose row came from a connection or operator override, not the shipped table.
    overridden: frozenset[str] = field(default_factory=frozenset)

    def lookup(self, model: str) -> tuple[str, ModelPrices] | None:
        """The row that prices ``model`` and its name, or ``None``."""
        if model in self.models:
            return model, self.models[model]
        suffix = _SNAPSHOT_SUFFIX.search(model)
        if suffix is not None and suffix.end() == len(model):
            base = model[: suffix.start()]
            if base in self.models:
                return base, self.models[base]
        return None

    def batch_price(self, prices: ModelPrices, kind: str) -> Decimal:
        """USD per million tokens of ``kind`` in a batch."""
        return getattr(prices, kind) * self.batch_discount  # type: ignore[no-any-return]

    def with_overrides(self, overrides: Mapping[str, ModelPrices]) -> PriceTable:
        """This table with ``overrides`` replacing or adding rows."""
        if not overrides:
            return self
        return PriceTable(
            models={**self.models, **overrides},
            batch_discount=self.batch_discount,
            as_of=self.as_of,
            source_url=self.source_url,
            overridden=self.overridden | frozenset(overrides),
        )


@lru_cache(maxsize=1)
def shipped_price_table() -> PriceTable:
    """The table shipped in the package (``cost/prices.json``)."""
    from importlib import resources

    data = json.loads(resources.files(__package__).joinpath("prices.json").read_bytes())
    return PriceTable(
        models=parse_price_rows(data["models"], "prices.json"),
        batch_discount=Decimal(data["batch_discount"]),
        as_of=data["as_of"],
        source_url=data["source_url"],
    )


def price_table(*overrides: Mapping[str, ModelPrices]) -> PriceTable:
    """The shipped table with each of ``overrides`` applied in turn (later ones win)."""
    table = shipped_price_table()
    for rows in overrides:
        table = table.with_overrides(rows)
    return table


def parse_price_rows(value: Any, where: str) -> dict[str, ModelPrices]:
    """``{model: {"input": .., "cache_write_5m": .., "cache_write_1h": .., "cache_read": ..,
    "output": ..}}`` (USD per million tokens, standard prices) as rows; a JSON string of it is
    read too. Raises :class:`PriceTableError` naming ``where`` and the bad field."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise PriceTableError(f"{where} is not JSON: {_shown(value)}.") from None
    if not isinstance(value, Mapping):
        raise PriceTableError(
            f"{where} must map model ids to their prices, such as "
            '{"claude-sonnet-4-5": {"input": 3, "cache_write_5m": 3.75, "cache_write_1h": 6, '
            f'"cache_read": 0.3, "output": 15}}}}; got {_shown(value)}.'
        )
    return {_model_id(where, model): _row(where, model, row) for model, row in value.items()}


def _model_id(where: str, model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise PriceTableError(f"{where}: {_shown(model)} is not a model id.")
    return model


def _row(where: str, model: str, row: Any) -> ModelPrices:
    if not isinstance(row, Mapping):
        raise PriceTableError(
            f"{where}[{model!r}] must be an object with {list(PRICE_KINDS)} in USD per million "
            f"tokens; got {_shown(row)}."
        )
    unknown = sorted(str(key) for key in set(row) - _ROW_KEYS)
    if unknown:
        raise PriceTableError(
            f"{where}[{model!r}] has unknown fields {unknown}: the fields are {list(PRICE_KINDS)}."
        )
    missing = [kind for kind in PRICE_KINDS if kind not in row]
    if missing:
        raise PriceTableError(
            f"{where}[{model!r}] lacks {missing}: give all of {list(PRICE_KINDS)} (USD per "
            "million tokens, the standard prices on Anthropic's pricing page); none is guessed."
        )
    return ModelPrices(**{kind: _price(where, model, kind, row[kind]) for kind in PRICE_KINDS})


def _price(where: str, model: str, kind: str, value: Any) -> Decimal:
    number: Decimal | None = None
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    elif isinstance(value, float) and math.isfinite(value):
        number = Decimal(repr(value))
    if number is None or not number.is_finite() or number < 0:
        raise PriceTableError(
            f"{where}[{model!r}].{kind} must be a finite non-negative number of USD per million "
            f'tokens, such as 3 or "0.30"; got {_shown(value)}.'
        )
    return number


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
