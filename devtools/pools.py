"""The Airflow pools the DAGs run in, as `airflow pools import` reads them.

The scheduler never runs a task whose pool does not exist, and the pools cap the load the
maintenance puts on each system. Create them wherever the DAGs run:

    PYTHONPATH=plugins python -m devtools.pools > pools.json && airflow pools import pools.json

(`make pools` does this for the Airflow home in $AIRFLOW_HOME, the demo's by default; the
compose stack's init service does it too.)
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from maintenance.dagkit import required_pools

    json.dump(required_pools(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
