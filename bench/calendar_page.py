"""The Maintenance calendar page with a year of ledger, against the floor of reading what it shows.

Starts its own PostgreSQL, writes a year of ledger (devtools.ledger_year: 43,800 actions,
findings, hourly metrics, incidents), then times, same data, same run:

1. floor: the plain reads any page showing the last 30 days would make, all rows fetched: the
   month's actions in full (every column), the window notices and approvals, the month's
   incidents;
2. the page: ``collect`` (the 90 days' windows with their notice and approval, 90 days of the
   maintenance DAGs' runs with the gate's outlook, overdue work, the latest 200 actions and the
   per-day counts, KPIs over 30 days and each of six months) and ``render`` (HTML with charts).

Prints the median of each over N rounds and the ratio.

    PYTHONPATH=plugins:. .venv/bin/python -m bench.calendar_page [rounds]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from maintenance.ledger.schema import ensure_schema
from maintenance.policy import load_policy
from maintenance.ui.calendar_data import collect
from maintenance.ui.calendar_html import render

from bench.scratch import scratch_postgres
from devtools import ledger_year


def schedules(now: datetime) -> dict[str, list[datetime]]:
    """The maintenance DAGs' runs over 90 days, as their timetables make them (UTC approximations
    are enough for the page's work)."""
    days = [now.replace(hour=5, minute=0, second=0, microsecond=0) + timedelta(days=n) for n in range(1, 91)]
    return {"maintenance_daily": days, "maintenance_weekly": [d + timedelta(hours=1) for d in days if d.weekday() < 5],
            "maintenance_monthly": [d + timedelta(hours=2) for d in days if d.weekday() == 6],
            "maintenance_kubernetes": [d + timedelta(hours=2) for d in days if d.weekday() == 6],
            "maintenance_calendar_sync": [d + timedelta(hours=h) for d in days for h in (2, 6)],
            "maintenance_rds": [d + timedelta(hours=2) for d in days]}


def floor(conn, now: datetime) -> None:
    since = now - timedelta(days=30)
    conn.execute("SELECT * FROM maintenance.actions WHERE started_at >= %s", (since,)).fetchall()
    conn.execute("SELECT * FROM maintenance.window_notices").fetchall()
    conn.execute("SELECT * FROM maintenance.window_approvals").fetchall()
    conn.execute("SELECT * FROM maintenance.incidents WHERE opened_at >= %s", (since,)).fetchall()


def main(rounds: int = 7) -> None:
    root, server = scratch_postgres("calendar")
    try:
        dsn = server.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            ensure_schema(conn, "maintenance")
            now = datetime.now(UTC)
            began = time.monotonic()
            actions = ledger_year.seed(conn, "maintenance", end=now)
            print(f"seeded {actions:,} actions (a year) in {time.monotonic() - began:.1f}s")
            policy, runs = load_policy(), schedules(now)
            timings = {"floor": [], "page": []}
            for _ in range(rounds):
                t = time.perf_counter()
                floor(conn, now)
                timings["floor"].append(time.perf_counter() - t)
                t = time.perf_counter()
                html = render(collect(policy, conn, now=now, schedules=runs, paused={}), policy, user="bench")
                timings["page"].append(time.perf_counter() - t)
        page, base = statistics.median(timings["page"]), statistics.median(timings["floor"])
        print(f"floor (the month's rows, fetched): {base * 1000:.0f} ms; page (collect + render, "
              f"{len(html):,} bytes): {page * 1000:.0f} ms; ratio {page / base:.1f}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
