"""Render a report from a ledger into a folder (docs/sample-report/ shows one from the demo).

    PYTHONPATH=plugins .venv/bin/python -m devtools.sample_report DSN OUT_DIR [days]
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import psycopg
from maintenance import clock
from maintenance.policy import load_policy
from maintenance.reports.data import collect
from maintenance.reports.render import render


def main(dsn: str, out: str, days: int = 7) -> None:
    policy = load_policy()
    end = clock.now()
    start = end - timedelta(days=days)
    with psycopg.connect(dsn, autocommit=True) as conn:
        data = collect(conn, policy.ledger.schema_name, "weekly", start, end, now=end,
                       targets=policy.reports.kpi_targets)
    rendered = render(data, tz=policy.tz, targets=policy.reports.kpi_targets, dag_id="maintenance_weekly",
                      run_id="sample", generated=end)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(rendered.html)  # self-contained: the charts are embedded
    print(f"{folder / 'index.html'}: {len(rendered.files)} charts, {len(data.recommendations)} recommendations")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 7)
