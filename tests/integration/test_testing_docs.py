"""docs/testing.md names every option of the fake API: the server's constructor, create_batch,
every Fault field, every public method and property of the server and of the admin client,
every command-line option, and the event-testing helpers."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

from airflow_provider_batches.testing import FakeAdminClient, FakeBatchesServer, Fault
from airflow_provider_batches.testing import events as testing_events
from airflow_provider_batches.testing.__main__ import build_parser

DOC = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text(encoding="utf-8")


def _parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]  # type: ignore[arg-type]


def _public(cls: type) -> list[str]:
    return [name for name in vars(cls) if not name.startswith("_")]


def _cli_options() -> list[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    return [o for a in serve._actions for o in a.option_strings if o.startswith("--")]


KNOBS = sorted(
    {
        *(f"`{n}`" for n in _parameters(FakeBatchesServer.__init__)),
        *(f"`{n}`" for n in _parameters(FakeBatchesServer.create_batch)),
        *(f"`{n}`" for n in _parameters(FakeBatchesServer.set_rate_limit)),
        *(f"`{f.name}`" for f in dataclasses.fields(Fault)),
        *(f"`{n}`" for n in ("status", "delay", "drop", "reset", "truncated", "html", "body")),
        *(f"{n}" for n in _public(FakeBatchesServer) if n not in ("start", "close")),
        *(n for n in _public(FakeAdminClient)),
        *(f"`{o}`" for o in _cli_options() if o != "--help"),
        *testing_events.__all__,
    }
)


@pytest.mark.parametrize("knob", KNOBS)
def test_testing_doc_names_the_option(knob: str) -> None:
    assert knob in DOC, f"docs/testing.md does not document {knob}"
