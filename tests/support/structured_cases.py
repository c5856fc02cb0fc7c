"""Output types and answers for the structured-results tests: one shape as a pydantic model and
as the equivalent JSON schema, and content blocks of valid and invalid answers with what each
must become."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel, Field


class Review(BaseModel):
    title: str
    stars: int = Field(ge=1, le=5)
    tags: list[str] = []


REVIEW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "stars"],
}

#: A string that must never be copied from an answer into an invalid row.
SENTINEL = "SENTINEL-ANSWER-TEXT"


@dataclass(frozen=True)
class Case:
    """One succeeded answer: its content blocks, and ``expected`` ``("parsed", object)`` (the
    object the answer holds) or ``("invalid", reason)``."""

    content: list[dict[str, Any]]
    kind: str
    value: Any

    def expected_output(self, pydantic: bool) -> Any:
        """The ``output`` of its parsed row: pydantic fills in defaults, a schema keeps it."""
        if pydantic:
            return {"tags": [], **self.value}
        return self.value


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


def tool_call(value: Any, index: int = 0) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{index}", "name": "record_review", "input": value}


words = st.text(alphabet="abcdefghij XYZ-é", max_size=20)
valid_objects = st.builds(
    lambda title, stars, tags: {"title": title, "stars": stars, **tags},
    words,
    st.integers(1, 5),
    st.one_of(st.just({}), st.lists(words, max_size=3).map(lambda t: {"tags": t})),
)
invalid_objects = st.one_of(
    valid_objects.map(lambda o: {k: v for k, v in o.items() if k != "title"}),
    st.builds(lambda o, s: {**o, "stars": s}, valid_objects, st.integers(6, 10**6)),
    st.builds(lambda o, s: {**o, "stars": s}, valid_objects, st.integers(-(10**6), 0)),
    st.builds(lambda o: {**o, "stars": [o["stars"]]}, valid_objects),
    st.builds(lambda o: {**o, "title": None}, valid_objects),
    st.builds(lambda o: {**o, "tags": [1, 2]}, valid_objects),
    st.just([]),
    st.just("a string"),
)


def _valid_cases(obj: dict[str, Any]) -> st.SearchStrategy[Case]:
    dumped = json.dumps(obj)
    return st.sampled_from(
        [
            Case(text(dumped), "parsed", obj),
            Case(text(f"\n  {json.dumps(obj, indent=2)}\n"), "parsed", obj),
            Case(text(f"```json\n{dumped}\n```"), "parsed", obj),
            Case(text(f"```\n{dumped}\n```\n"), "parsed", obj),
            Case([tool_call(obj)], "parsed", obj),
            Case([*text(f"{SENTINEL} calling the tool."), tool_call(obj)], "parsed", obj),
        ]
    )


def _invalid_cases(obj: Any) -> st.SearchStrategy[Case]:
    dumped = json.dumps(obj)
    return st.sampled_from(
        [
            Case(text(dumped), "invalid", "validation"),
            Case([tool_call(obj)], "invalid", "validation"),
            Case(text(f"```json\n{dumped}\n```"), "invalid", "validation"),
        ]
    )


fixed_cases = st.sampled_from(
    [
        Case([], "invalid", "no_answer"),
        Case(text(""), "invalid", "no_answer"),
        Case(text(" \n\t"), "invalid", "no_answer"),
        Case([{"type": "thinking", "thinking": SENTINEL}], "invalid", "no_answer"),
        Case([{"type": "tool_use", "id": "t", "name": "n"}], "invalid", "no_answer"),
        Case(
            [tool_call({"title": "a", "stars": 1}), tool_call({"title": "b", "stars": 2}, 1)],
            "invalid",
            "several_tool_calls",
        ),
        Case(text(f"{SENTINEL}: " + json.dumps({"title": "a", "stars": 1})), "invalid", "not_json"),
        Case(text('{"title": "a", "stars": NaN}'), "invalid", "not_json"),
        Case(text('{"title": "a", "stars": 1'), "invalid", "not_json"),
        Case(
            text("```python\n{}\n```".replace("{}", '{"title": "a", "stars": 1}')),
            "invalid",
            "not_json",
        ),
        Case(text("[" * 100_000 + "]" * 100_000), "invalid", "not_json"),
        # Huge answers: the row holds a bounded error, never the answer.
        Case(text(SENTINEL * 20_000), "invalid", "not_json"),
        Case(text(json.dumps({"title": SENTINEL * 20_000, "stars": 9})), "invalid", "validation"),
        Case([tool_call({"title": [SENTINEL] * 20_000, "stars": 1})], "invalid", "validation"),
        Case(
            text(json.dumps({"title": "big " * 50_000, "stars": 3})),
            "parsed",
            {"title": "big " * 50_000, "stars": 3},
        ),
    ]
)

cases = st.one_of(
    valid_objects.flatmap(_valid_cases),
    invalid_objects.flatmap(_invalid_cases),
    fixed_cases,
)


class NotAModel:
    """A plain class: pydantic cannot build a validator for it."""

    def __init__(self, value: int) -> None:
        self.value = value
