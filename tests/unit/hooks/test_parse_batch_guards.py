"""The guards ``parse_batch`` applies to every 2xx body, each shown to reject what it must.

Each test feeds a body that is a valid message batch except for the one property its guard
checks, so removing that guard (and only that) lets the body through and fails the test.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import API_KEY

from airflow_provider_batches._http.send import ApiRequest
from airflow_provider_batches.exceptions import InvalidResponseError
from airflow_provider_batches.hooks.batch import MessageBatchHook, parse_batch
from airflow_provider_batches.testing import FakeBatchesServer, Fault

ASKED = "msgbatch_guardAsked"


def _batch(batch_id: str = ASKED, **extra: Any) -> dict[str, Any]:
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 2,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": "2024-08-20T18:37:24.100435Z",
        "expires_at": "2024-08-21T18:37:24.100435Z",
        "ended_at": "2024-08-20T19:37:24.100435Z",
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": f"https://api.anthropic.com/v1/messages/batches/{batch_id}/results",
        **extra,
    }


def _parse(body: dict[str, Any]) -> Any:
    response = httpx.Response(
        200, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    request = ApiRequest("GET", f"https://api.anthropic.com/v1/messages/batches/{ASKED}", ASKED)
    return parse_batch(response, request, API_KEY)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_the_guards_accept_a_plain_batch_of_the_id_asked() -> None:
    """The control: the bodies below differ from this one only in what their guard checks."""
    assert _parse(_batch()).id == ASKED
    assert _parse(_batch(note="x" * 100, deep=_nested(50))).id == ASKED


def test_a_2xx_body_describing_another_batch_is_rejected(
    fake: FakeBatchesServer, set_connection: Any
) -> None:
    with pytest.raises(InvalidResponseError, match="describes batch 'msgbatch_other'"):
        _parse(_batch("msgbatch_other"))
    # The same through the hook and the wire: the fake answers the asked id with another batch.
    set_connection("guards", fake.base_url, max_retries=0)
    asked = fake.create_batch(num_requests=1, ends_after=0)["id"]
    fake.inject_fault(Fault(kind="body", body=_batch("msgbatch_other"), batch_id=asked))
    with pytest.raises(InvalidResponseError, match="not the one asked") as raised:
        MessageBatchHook("guards").retrieve_batch(asked)
    assert raised.value.batch_id == asked
    assert fake.request_count(asked) == 1


def test_a_2xx_body_containing_the_api_key_is_rejected_without_showing_it() -> None:
    for body in (_batch(note=API_KEY), _batch(**{f"x-{API_KEY}": 1}), _batch(deep=[[API_KEY]])):
        with pytest.raises(InvalidResponseError, match="the body contains the API key") as raised:
            _parse(body)
        error = raised.value
        assert API_KEY not in str(error)
        assert API_KEY not in repr(error)
        assert API_KEY not in json.dumps(error.to_dict())


@pytest.mark.parametrize("depth", [256, 500, 900])
def test_a_batch_that_cannot_be_serialized_for_xcom_is_an_invalid_response(depth: int) -> None:
    """An unknown field nested ``depth`` levels deep validates (extra fields are kept), but
    pydantic cannot dump it: it must be refused here, not crash the trigger or the XCom push."""
    with pytest.raises(InvalidResponseError, match="cannot be serialized"):
        _parse(_batch(deep=_nested(depth)))
