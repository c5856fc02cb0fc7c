"""Run one DAG of tests/dags/telemetry_dags.py with ``dag.test()`` in this process, so that
Airflow's metrics and OpenLineage settings (from the environment) apply from the start.

    python telemetry_run_dag.py DAG_ID CONF_JSON

Prints ``RUN-STATE <state> <task states as JSON>``. Not collected by pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DAG_FILE = Path(__file__).parent.parent / "dags" / "telemetry_dags.py"

if __name__ == "__main__":
    from airflow.utils.session import create_session

    from airflow_provider_batches._compat import dag_bag_class

    bag = dag_bag_class()(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[sys.argv[1]].test(run_conf=json.loads(sys.argv[2]))
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}
    print(f"RUN-STATE {run.state} {json.dumps(states)}", flush=True)
