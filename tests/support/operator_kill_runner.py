"""Run one operator DAG with ``dag.test()`` and SIGKILL this process right after the create.

    python operator_kill_runner.py DAG_ID CONF_JSON LOGICAL_DATE CRASH_POINT [MAX_REQUESTS]

``CRASH_POINT`` is ``after_record`` (the create answered and the record was written: the
worker dies at once) or ``before_record`` (the create answered, the worker dies before it can
write the batch id), optionally ``:N`` for the N-th create (a shard of a split set).
``MAX_REQUESTS`` lowers the requests-per-batch limit in this process (small shards).
Records live in Variables (``operator_dag_runs.use_variable_records``)
so the test's re-run of the same logical date, in its own process, is the retry of this task
instance. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def main(
    dag_id: str,
    conf: dict[str, Any],
    logical_date: datetime,
    crash_point: str,
    max_requests: int | None = None,
) -> None:
    from operator_dag_runs import run_dag, use_variable_records

    from airflow_provider_batches import request_set
    from airflow_provider_batches.operators._submission import Submitter

    use_variable_records()
    if max_requests is not None:
        request_set.MAX_REQUESTS = max_requests
    original = Submitter.record_created
    point, _, nth = crash_point.partition(":")
    creates = [0]

    def record_then_die(self: Submitter, *args: Any) -> None:
        creates[0] += 1
        if point == "after_record" or creates[0] < int(nth or 1):
            original(self, *args)
        if creates[0] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)

    Submitter.record_created = record_then_die  # type: ignore[method-assign]
    run_dag(dag_id, conf, logical_date=logical_date)
    raise SystemExit("the run finished: the kill never happened")


if __name__ == "__main__":
    main(
        sys.argv[1],
        json.loads(sys.argv[2]),
        datetime.fromisoformat(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]) if len(sys.argv) > 5 else None,
    )
