"""One definition of a batch's total: every integer count, including categories the API adds
later. The model, the policies and the example DAG agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_batches.models import MessageBatch
from airflow_provider_batches.utils.policy import OutcomePolicy

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
KNOWN = ("processing", "succeeded", "errored", "canceled", "expired")
_COUNT = st.integers(min_value=0, max_value=100_000)
_NEW_CATEGORY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).filter(
    lambda name: name not in KNOWN
)


def _batch(counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msgbatch_total",
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": counts,
        "created_at": "2024-08-20T18:37:24Z",
        "expires_at": "2024-08-21T18:37:24Z",
        "ended_at": "2024-08-20T19:37:24Z",
        "cancel_initiated_at": None,
        "archived_at": None,
        "results_url": None,
    }


def _example_summarize() -> Any:
    from airflow_provider_batches._compat import dag_bag_class

    DagBag = dag_bag_class()

    bag = DagBag(dag_folder=str(EXAMPLES / "example_batch_deferrable.py"))
    return bag.dags["example_batch_deferrable"].get_task("summarize").python_callable


SUMMARIZE = None


@settings(max_examples=200, deadline=None)
@given(
    known=st.fixed_dictionaries({name: _COUNT for name in KNOWN}),
    extra=st.dictionaries(_NEW_CATEGORY, _COUNT, max_size=3),
)
def test_total_is_the_sum_of_every_count(known: dict[str, int], extra: dict[str, int]) -> None:
    global SUMMARIZE
    counts = {**known, **extra}
    batch = MessageBatch.model_validate(_batch(counts))
    assert batch.request_counts.total == sum(counts.values())
    assert batch.total_requests == sum(counts.values())
    if SUMMARIZE is None:
        SUMMARIZE = _example_summarize()
    assert SUMMARIZE(batch.to_xcom())["total"] == batch.total_requests
    # The policies' ratios divide by the same total.
    verdict = OutcomePolicy(max_errored_ratio=0.0).evaluate(batch)
    assert (verdict.action == "fail") is (known["errored"] > 0)
    if verdict.action == "fail":
        assert f"ended with {sum(counts.values())} requests" in verdict.reason
