"""A backfill overlapping another run, under the real scheduler (LocalExecutor): the target lock
keeps them off one table at a time, and the one that waits names the holder.

`max_active_runs` does not stop a backfill from running beside other runs of the same DAG;
the per-target lock (maintenance.postgres.target_lock) is what does. This runs Airflow as
`make demo` does (`airflow standalone`: scheduler, DAG processor, API server, triggerer) on a
throwaway home, creates a backfill with `airflow backfill create` and triggers a run at the
same moment, and reads what each run did from the table's database.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support.standalone import cli, standalone, wait_until_finished

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scheduler(platform_db, tmp_path):
    platform_db.execute("DROP TABLE IF EXISTS overlap_probe; CREATE TABLE overlap_probe "
                        "(run_id text, outcome text, started timestamptz, ended timestamptz, why text)")
    with standalone(tmp_path / "airflow", ROOT / "tests" / "dags_overlap", ["overlap_probe"],
                    OVERLAP_DSN=platform_db.dsn) as (env, db):
        yield env, db


def test_a_backfill_and_a_run_at_the_same_moment_never_hold_one_table_at_once(scheduler, platform_db):
    env, db = scheduler
    # The backfill's runs (its to-date excluded) and a manual run, created one right after the
    # other: the scheduler starts them together (the DAG allows four active runs).
    cli(env, "backfill", "create", "--dag-id", "overlap_probe", "--from-date", "2026-11-02", "--to-date",
        "2026-11-04", "--max-active-runs", "3")
    cli(env, "dags", "trigger", "overlap_probe")
    runs = wait_until_finished(db, "overlap_probe", count=3, timeout=240)
    assert sorted(kind for _, kind, _ in runs if kind != "scheduled") == ["backfill", "backfill", "manual"]
    assert all(state == "success" for _, _, state in runs), runs
    rows = platform_db.execute("SELECT run_id, outcome, started, ended, why FROM overlap_probe ORDER BY started")
    held = [r for r in rows if r[1] == "held"]
    busy = [r for r in rows if r[1] == "busy"]
    assert len(rows) == len(runs) and held and busy, rows
    for before, after in itertools.pairwise(held):  # one holder at a time
        assert before[3] <= after[2], (before, after)
    holders = {r[0] for r in held}
    for _, _, _, _, why in busy:  # whoever waited named a run that held the table
        assert why.startswith("platform_db:public.overlap_probe is being maintained by maintenance overlap_probe ")
        # (its session's application_name, which PostgreSQL cuts at 63 characters)
        assert any(f"maintenance overlap_probe {h}"[:63] in why for h in holders), why
