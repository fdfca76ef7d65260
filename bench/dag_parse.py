"""Parse time of each DAG file against a bare `import airflow.sdk`, same run.

Each sample is a fresh interpreter (what the DAG processor pays on a cold parse):
the baseline imports airflow.sdk; the measured one imports airflow.sdk, then runs the
DAG file. Reported: median of N samples each, and the difference (the DAG's own cost).

    .venv/bin/python -m bench.dag_parse [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = "import sys, time; sys.path.insert(0, 'plugins'); t = time.perf_counter(); import airflow.sdk; "


def sample(extra: str) -> float:
    code = PRELUDE + extra + "print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"AIRFLOW_HOME": "/tmp/bench-airflow-home", "PATH": "/usr/bin:/bin"})
    return float(out.stdout.strip().splitlines()[-1])


def main(n: int = 5) -> list[dict]:
    files = sorted((ROOT / "dags").glob("*.py"))
    rows = []
    for _ in range(1):
        sample("")  # warm the OS page cache
    base = [sample("") for _ in range(n)]
    base_median = statistics.median(base)
    print(f"bare `import airflow.sdk`: median {base_median:.3f}s over {n}")
    print(f"{'DAG file':32} {'median s':>9} {'own cost s':>11} {'ratio':>6}")
    for path in files:
        runs = [sample(f"import runpy; runpy.run_path('dags/{path.name}'); ") for _ in range(n)]
        median = statistics.median(runs)
        rows.append({"file": path.name, "median": median, "own": median - base_median,
                     "ratio": median / base_median})
        print(f"{path.name:32} {median:9.3f} {median - base_median:11.3f} {median / base_median:6.2f}")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
