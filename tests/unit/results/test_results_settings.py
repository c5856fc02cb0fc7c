"""The connection extra ``results_hosts``: parsed, checked, and never a warning."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from airflow_provider_batches._connection.settings import ClientSettings
from airflow_provider_batches.exceptions import ConnectionConfigError


class _Conn:
    def __init__(self, **extra: Any) -> None:
        self.conn_id = "c"
        self.host = "https://api.anthropic.com"
        self.schema = None
        self.port = None
        self.password = "sk-ant-settings-key"
        self.extra_dejson = extra


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ([], ()),
        (["Results.Example.com", "127.0.0.1:8081"], ("results.example.com", "127.0.0.1:8081")),
        ("a.example, b.example:443", ("a.example", "b.example:443")),
    ],
)
def test_results_hosts_parse(value: Any, expected: tuple[str, ...]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = ClientSettings.from_connection(_Conn(results_hosts=value))
    assert settings.results_hosts == expected


@pytest.mark.parametrize(
    "value", [5, [1], ["https://x.example"], ["x.example/path"], ["a b"], [""], ["u@x.example"]]
)
def test_results_hosts_refuse_what_is_not_a_host(value: Any) -> None:
    with pytest.raises(ConnectionConfigError, match="results_hosts"):
        ClientSettings.from_connection(_Conn(results_hosts=value))
