"""Loading settings on the event loop registers the key through Airflow's async masking path,
and a masking failure is reported once, without the key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from helpers import API_KEY, assert_no_secret_in_records

from airflow_provider_batches.hooks import batch as hook_module
from airflow_provider_batches.hooks.batch import MessageBatchHook
from airflow_provider_batches.testing import FakeBatchesServer


class SupervisorComms:
    """Stands in for the triggerer's channel to its supervisor (nothing real runs one here).

    Like the real channel without a greenback portal, its blocking ``send`` cannot be used
    from a running event loop; ``asend`` can.
    """

    def __init__(self) -> None:
        self.async_masks: list[str] = []
        self.blocking_sends_on_loop = 0

    def send(self, message: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.blocking_sends_on_loop += 1
        raise RuntimeError("blocking send from the event loop")

    async def asend(self, message: Any) -> None:
        assert type(message).__name__ == "MaskSecret"
        self.async_masks.append(message.value)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> SupervisorComms:
    from airflow.sdk.execution_time import task_runner

    channel = SupervisorComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)
    return channel


@pytest.fixture
def hook(fake: FakeBatchesServer, set_connection: Callable[..., None]) -> MessageBatchHook:
    # No extras, as these tests count every mask: the extras would add one (Airflow's
    # ``extra_dejson`` masks them itself).
    set_connection("async_mask", fake.base_url, max_requests_per_minute=None)
    return MessageBatchHook("async_mask")


@pytest.fixture(autouse=True)
def _fresh_failure_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook_module, "_mask_failure_reported", False, raising=False)


async def test_asettings_masks_through_the_async_path(
    hook: MessageBatchHook, comms: SupervisorComms
) -> None:
    from airflow.sdk.log import redact

    settings = await hook.asettings()
    assert settings.api_key == API_KEY
    assert comms.blocking_sends_on_loop == 0
    assert API_KEY in comms.async_masks
    assert API_KEY not in str(redact(f"key={API_KEY}"))


async def test_a_connection_with_extras_is_read_without_a_blocking_send(
    fake: FakeBatchesServer, set_connection: Callable[..., None], comms: SupervisorComms
) -> None:
    """Airflow's ``extra_dejson`` masks the extras with the blocking ``mask_secret``: the async
    path reads them through the async masking instead (``_compat.aconnection_extras``)."""
    set_connection("async_mask_extras", fake.base_url, max_retries=1, timeout=7)
    settings = await MessageBatchHook("async_mask_extras").asettings()
    assert (settings.max_retries, settings.timeout) == (1, 7.0)
    assert comms.blocking_sends_on_loop == 0
    assert API_KEY in comms.async_masks
    assert any(isinstance(value, dict) for value in comms.async_masks), "extras masked too"


def test_the_sync_path_still_masks_on_workers(
    hook: MessageBatchHook, comms: SupervisorComms, caplog: pytest.LogCaptureFixture
) -> None:
    assert hook.settings.api_key == API_KEY
    assert comms.blocking_sends_on_loop == 0
    assert not [r for r in caplog.records if "secrets masker" in r.getMessage()]


async def test_a_masking_failure_is_logged_once_without_the_key(
    fake: FakeBatchesServer,
    set_connection: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import airflow.sdk.log

    async def failing_amask(secret: Any, name: str | None = None) -> None:
        raise RuntimeError(f"masker unavailable for {secret}")

    monkeypatch.setattr(airflow.sdk.log, "amask_secret", failing_amask)
    caplog.set_level(logging.WARNING)
    for conn_id in ("mask_fail_a", "mask_fail_b"):
        set_connection(conn_id, fake.base_url, max_requests_per_minute=None)
        settings = await MessageBatchHook(conn_id).asettings()  # the wait goes on
        assert settings.api_key == API_KEY
    reports = [r for r in caplog.records if "secrets masker" in r.getMessage()]
    assert len(reports) == 1
    assert "RuntimeError" in reports[0].getMessage()
    assert_no_secret_in_records(caplog.records, API_KEY)


async def test_without_the_async_variant_the_sync_one_is_used(
    hook: MessageBatchHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older Airflow has no ``amask_secret``: outside a triggerer (no supervisor channel) the
    compat layer masks through the sync ``mask_secret``."""
    import airflow.sdk.log

    from airflow_provider_batches import _compat

    masked: list[str] = []
    monkeypatch.setattr(_compat, "_has_amask_secret", lambda: False)
    monkeypatch.setattr(
        airflow.sdk.log, "mask_secret", lambda secret, name=None: masked.append(secret)
    )
    await hook.asettings()
    assert masked == [API_KEY]
