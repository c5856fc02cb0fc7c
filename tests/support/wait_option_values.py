"""Bad and good values of the wait options the sensor and the operator share (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

_ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**9), 10**9)
)


def bad_values(interval: str) -> dict[str, st.SearchStrategy[Any]]:
    """The class of bad values for each option (numbers outside the allowed range, and
    non-numbers); ``interval`` is the sensor's ``poke_interval`` or the operator's
    ``poll_interval``."""
    return {
        interval: _ANY_NUMBER.filter(lambda v: not (0 < v < math.inf)),
        "timeout": _ANY_NUMBER.filter(lambda v: not (0 < v < math.inf)),
        "expiry_grace": _ANY_NUMBER.filter(lambda v: not (0 <= v < math.inf)),
        "error_tolerance": _ANY_NUMBER.filter(lambda v: math.isnan(v) or v < 0),
        "max_consecutive_errors": st.one_of(
            st.integers(max_value=0),
            st.floats(allow_nan=True, allow_infinity=True),
            st.booleans(),
            st.text(max_size=3),
        ),
    }


def good_values(interval: str) -> dict[str, st.SearchStrategy[Any]]:
    return {
        interval: st.floats(min_value=0.001, max_value=86400.0),
        "timeout": st.floats(min_value=0.001, max_value=30 * 86400.0),
        "expiry_grace": st.floats(min_value=0.0, max_value=86400.0),
        "error_tolerance": st.one_of(
            st.floats(min_value=0.0, max_value=86400.0), st.just(math.inf)
        ),
        "max_consecutive_errors": st.integers(min_value=1, max_value=10**6),
    }
