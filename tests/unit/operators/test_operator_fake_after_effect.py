"""The fake API's ``after_effect`` faults: the request takes effect, then its answer fails."""

from __future__ import annotations

import httpx
import pytest
from helpers import API_KEY

from airflow_provider_batches.testing import FakeBatchesServer, Fault

pytestmark = pytest.mark.matrix

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
BODY = {
    "requests": [
        {
            "custom_id": "a",
            "params": {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "x"}],
            },
        }
    ]
}


@pytest.mark.parametrize("after_effect", [True, False])
def test_a_failed_create_made_the_batch_only_with_after_effect(
    fake: FakeBatchesServer, after_effect: bool
) -> None:
    fake.inject_fault(Fault("status", status=500, method="POST", after_effect=after_effect))
    response = httpx.post(f"{fake.base_url}/v1/messages/batches", json=BODY, headers=HEADERS)
    assert response.status_code == 500
    assert fake.stats()["batches"] == (1 if after_effect else 0)


def test_a_dropped_cancel_with_after_effect_still_cancels(fake: FakeBatchesServer) -> None:
    batch = fake.create_batch(num_requests=1, ends_after=None)
    fake.inject_fault(Fault("drop", method="POST", after_effect=True))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{fake.base_url}/v1/messages/batches/{batch['id']}/cancel", headers=HEADERS)
    assert fake.get_batch(batch["id"])["cancel_initiated_at"] is not None


def test_after_effect_is_checked() -> None:
    with pytest.raises(ValueError, match="after_effect"):
        Fault("delay", delay=1, after_effect=True)
    with pytest.raises(ValueError, match="after_effect"):
        Fault.from_dict({"kind": "drop", "after_effect": "yes"})
    assert Fault.from_dict({"kind": "drop", "after_effect": True}).after_effect is True
    assert Fault("drop").to_dict()["after_effect"] is False
