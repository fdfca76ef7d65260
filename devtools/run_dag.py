"""One DAG run in-process, as `airflow dags test` does it, for `make dags-test`.

    python -m devtools.run_dag DAG_ID YYYY-MM-DD [CONF_JSON [MARK_SUCCESS_PATTERN]]

MARK_SUCCESS_PATTERN: tasks whose id matches are marked done, not run (dag.test's own option).

Airflow 3.3's `dags test` fails after the run on DAGs with a deadline alert (it reads the
alert's stored form as an id); deadlines are the scheduler's business, so this leaves them
out and otherwise runs the DAG exactly as `dags test` does. Exits 0 when the run succeeded.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo


def main(argv: list[str]) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.settings import DAGS_FOLDER
    from maintenance.policy import load_policy

    dag_id, day = argv[0], argv[1]
    conf = json.loads(argv[2]) if len(argv) > 2 else None
    pattern = argv[3] if len(argv) > 3 else None
    bag = DagBag(dag_folder=DAGS_FOLDER)
    if dag_id not in bag.dags:
        print(f"no DAG {dag_id!r} in {DAGS_FOLDER}: {', '.join(sorted(bag.dags))}", file=sys.stderr)
        return 2
    dag = bag.dags[dag_id]
    dag.deadline = None
    # The date is the policy's local midnight, as the scheduler's daily run would have it.
    logical = datetime.fromisoformat(day)
    if logical.tzinfo is None:
        logical = logical.replace(tzinfo=ZoneInfo(load_policy().timezone))
    run = dag.test(logical_date=logical, run_conf=conf, mark_success_pattern=pattern)
    print(f"{dag_id} {run.run_id}: {run.state}")
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
