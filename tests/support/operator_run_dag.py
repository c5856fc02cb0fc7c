"""Run one operator DAG with ``dag.test()`` in this process (for tests that signal it).

    python operator_run_dag.py DAG_ID CONF_JSON

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

if __name__ == "__main__":
    from operator_dag_runs import run_dag

    run, states, _ = run_dag(sys.argv[1], json.loads(sys.argv[2]))
    print(f"RUN-STATE {run.state} {json.dumps(states)}", flush=True)
