"""Archiving against a real PostgreSQL: exact moves, refusals, verification, faults, the DAG."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from maintenance import clock
from maintenance.archive import tables
from maintenance.archive.mover import ArchiveMismatch, choose_check, hashable_by_type, move_rows
from maintenance.archive.plan import cutoff_for, months_before
from maintenance.errors import InputError
from maintenance.policy import load_policy
from maintenance.policy.model import ArchiveBatching
from psycopg import sql

from tests.support.airflow_runs import run_dag

ROOT = Path(__file__).resolve().parents[1]
NY = ZoneInfo("America/New_York")
BATCHING = ArchiveBatching(initial_rows=300, min_rows=50, max_rows=2000, target_ms=50)


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 12, 6), 6, date(2026, 6, 6)),
    (date(2026, 8, 31), 6, date(2026, 2, 28)),
    (date(2028, 8, 31), 6, date(2028, 2, 29)),  # leap year
    (date(2026, 3, 15), 6, date(2025, 9, 15)),  # across the year
    (date(2026, 1, 31), 1, date(2025, 12, 31)),
])
def test_months_before(day, months, expected):
    assert months_before(day, months) == expected


def test_cutoff_is_local_midnight_of_the_date():
    assert cutoff_for(date(2026, 12, 6), 6, NY) == datetime(2026, 6, 6, 4, tzinfo=UTC)  # EDT in June


def fill(db, table: str, rows: int, old_fraction: float = 0.5) -> None:
    """``rows`` sessions, the first ``old_fraction`` of them a year old, the rest from this month."""
    db.execute(sql.SQL("""
        INSERT INTO {} (student_id, career_id, created_at, ended_at, duration_s, payload)
        SELECT g %% 97, g %% 40,
               CASE WHEN g <= %s THEN timestamptz '2025-11-01' + g * interval '1 second'
                    ELSE timestamptz '2026-11-20' + g * interval '1 second' END,
               NULL, g, jsonb_build_object('g', g)
        FROM generate_series(1, %s) g""").format(sql.Identifier(*table.split("."))),
        (int(rows * old_fraction), rows))


@pytest.fixture
def db(platform_db):
    platform_db.script("""
        TRUNCATE learning_sessions RESTART IDENTITY;
        DROP TABLE IF EXISTS learning_sessions_archive, original""")
    return platform_db


def move(db, source="public.learning_sessions", archive="public.learning_sessions_archive",
         cutoff=datetime(2026, 6, 1, tzinfo=UTC), **kwargs):
    with db.connect() as conn:
        conn.execute("SET lock_timeout = '200ms'")
        src = tables.describe(conn, source, field="source")
        arc = tables.ensure_archive(conn, src, archive, field="archive")
        return move_rows(conn, src, arc, "created_at", cutoff, batching=kwargs.pop("batching", BATCHING),
                         max_rows=kwargs.pop("max_rows", 10**9), **kwargs)


def count(db, table) -> int:
    return db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split("."))))[0][0]


def test_moves_exactly_the_old_rows_into_an_archive_made_like_the_source(db):
    fill(db, "public.learning_sessions", 10_000)
    result = move(db)
    assert result.rows == 5000 and result.batches > 1
    assert count(db, "public.learning_sessions") == 5000
    assert db.execute("SELECT min(created_at) >= '2026-06-01' FROM learning_sessions")[0][0]
    archived = db.execute("SELECT count(*), max(created_at) < '2026-06-01' FROM learning_sessions_archive")
    assert archived == [(5000, True)]
    # Same columns and types, and the source's primary key.
    shape = ("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
             "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
    assert db.execute(shape, ("learning_sessions_archive",)) == db.execute(shape, ("learning_sessions",))
    assert db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
                      "'learning_sessions_archive'::regclass AND contype = 'p'") == [("PRIMARY KEY (id)",)]
    assert move(db).rows == 0  # a second run moves nothing


def test_batches_adapt_toward_the_target_lock_time(db):
    fill(db, "public.learning_sessions", 30_000, old_fraction=1.0)
    result = move(db)
    assert result.rows == 30_000
    assert len(set(result.batch_sizes)) > 1  # sizes moved toward the 50 ms target
    assert all(BATCHING.min_rows <= n <= BATCHING.max_rows for n in result.batch_sizes)


def test_a_pause_after_each_batch_paces_the_move(db):
    fill(db, "public.learning_sessions", 4000)
    pauses = []
    paced = ArchiveBatching(initial_rows=500, min_rows=500, max_rows=500, target_ms=50, pause_ms=20)
    result = move(db, batching=paced, sleep=pauses.append)
    assert result.rows == 2000 and result.batches == 4
    assert pauses == [0.02] * 3  # after each batch but the last


def test_the_row_cap_stops_the_run_and_the_next_continues(db):
    fill(db, "public.learning_sessions", 4000)
    first = move(db, max_rows=1500)
    assert first.rows == 1500 and "cap of 1,500 rows" in first.stopped
    assert move(db).rows == 500


def test_each_batch_reads_a_bounded_stretch_of_keys_and_the_walk_ends_at_the_last_old_row(db):
    # Keys 1-10,000: one row in ten a year old; keys 10,001-20,000: all recent.
    fill(db, "public.learning_sessions", 20_000, old_fraction=0.5)
    db.execute("UPDATE learning_sessions SET created_at = created_at + interval '1 year' "
               "WHERE id <= 10000 AND id % 10 <> 0")
    fixed = ArchiveBatching(initial_rows=500, min_rows=500, max_rows=500, target_ms=50)
    result = move(db, batching=fixed)
    assert result.rows == 1000 and count(db, "public.learning_sessions_archive") == 1000
    # Sparse old rows do not make a batch search further: 500 keys a batch, 50 of them old.
    # And the walk stops at key 10,000, the last old row, instead of reading the recent tail.
    assert result.batches == 20
    assert not db.execute("SELECT count(*) FROM learning_sessions WHERE created_at < '2026-06-01'")[0][0]


def test_a_table_without_a_usable_key_is_refused_naming_the_field(db):
    db.execute("CREATE TABLE IF NOT EXISTS keyless (v int, created_at timestamptz)")
    with db.connect() as conn, pytest.raises(InputError, match=r"^archive\.tables\[0\]\.source: public.keyless "
                                                                r"has no primary key or unique key"):
        tables.describe(conn, "public.keyless", field="archive.tables[0].source")


def test_a_unique_key_over_not_null_columns_serves_when_there_is_no_primary_key(db):
    db.execute("CREATE TABLE IF NOT EXISTS uniq (a int NOT NULL, b text NOT NULL, created_at timestamptz, "
               "UNIQUE (a, b))")
    with db.connect() as conn:
        assert tables.describe(conn, "public.uniq", field="f").key == ("a", "b")


def sessions_with_archive_trigger(db, rows: int, name: str, body: str) -> None:
    """``rows`` sessions, their archive made, and a row trigger on the archive running ``body``."""
    fill(db, "public.learning_sessions", rows)
    with db.connect() as conn:
        src = tables.describe(conn, "public.learning_sessions", field="s")
        tables.ensure_archive(conn, src, "public.learning_sessions_archive", field="a")
    db.script(f"""
        CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$;
        CREATE TRIGGER {name} BEFORE INSERT ON learning_sessions_archive FOR EACH ROW EXECUTE FUNCTION {name}()""")


def test_a_mismatch_between_what_left_and_what_arrived_rolls_back_and_stops(db):
    # A trigger on the archive that changes rows as they arrive: what arrived is not what left.
    sessions_with_archive_trigger(db, 2000, "tamper", "NEW.duration_s := -1; RETURN NEW;")
    with pytest.raises(ArchiveMismatch, match="the batch was rolled back"):
        move(db)
    assert count(db, "public.learning_sessions") == 2000
    assert count(db, "public.learning_sessions_archive") == 0


def test_the_checksum_covers_keys_only_where_the_archive_cannot_change_a_row(db):
    fill(db, "public.learning_sessions", 10)
    with db.connect() as conn:
        src = tables.describe(conn, "public.learning_sessions", field="s")
        arc = tables.ensure_archive(conn, src, "public.learning_sessions_archive", field="a")
        assert choose_check(conn, src, arc).columns == ("id",)  # made like the source: rows arrive as they left
        conn.execute("ALTER TABLE learning_sessions_archive ALTER COLUMN duration_s TYPE numeric(6, 1)")
        assert choose_check(conn, src, arc).columns == src.columns  # a conversion could change values
        conn.execute("ALTER TABLE learning_sessions_archive ALTER COLUMN duration_s TYPE integer")
        conn.execute("CREATE RULE noop AS ON INSERT TO learning_sessions_archive DO ALSO NOTIFY archive")
        assert choose_check(conn, src, arc).columns == src.columns  # a rule could


def test_a_batch_past_its_time_limit_is_cancelled_and_retried_smaller(db):
    # A slow archive: every arriving row costs 2 ms, so 300 rows would hold their locks 600 ms.
    sessions_with_archive_trigger(db, 400, "slow", "PERFORM pg_sleep(0.002); RETURN NEW;")
    quick = ArchiveBatching(initial_rows=300, min_rows=10, max_rows=300, target_ms=40, max_batch_ms=150)
    result = move(db, batching=quick)
    assert result.rows == 200 and result.batch_timeouts >= 1
    assert result.longest_batch_ms < 300  # the limit plus the commit; nothing held its locks 600 ms
    assert count(db, "public.learning_sessions") == 200 and count(db, "public.learning_sessions_archive") == 200


def test_rows_a_writer_holds_are_skipped_not_waited_for(db):
    fill(db, "public.learning_sessions", 3000)
    with db.connect() as writer:
        writer.execute("BEGIN")
        writer.execute("UPDATE learning_sessions SET duration_s = 0 WHERE id = 42")
        started = time.perf_counter()
        result = move(db)
        assert time.perf_counter() - started < 10
        writer.execute("COMMIT")
    assert result.rows == 1499
    assert db.execute("SELECT id FROM learning_sessions WHERE created_at < '2026-06-01'") == [(42,)]
    assert move(db).rows == 1  # the next run takes it


def test_the_move_pauses_while_the_platform_is_busy(db):
    fill(db, "public.learning_sessions", 1000)
    answers = iter(["60,000 active users (> 50,000)", "60,000 active users (> 50,000)"])
    slept = []
    result = move(db, should_pause=lambda: next(answers, None), pause_seconds=30, sleep=slept.append)
    assert result.rows == 500 and result.paused_seconds == 60 and slept[:2] == [30, 30]


def test_odd_identifiers(db):
    db.script('''
        CREATE SCHEMA IF NOT EXISTS "Arch ""ive""";
        CREATE TABLE IF NOT EXISTS "Arch ""ive"""."Mixed Case" (
            "Id" bigint PRIMARY KEY, "created at" timestamptz NOT NULL, "select" text)''')
    db.execute('INSERT INTO "Arch ""ive"""."Mixed Case" SELECT g, timestamptz \'2025-01-01\' + g * interval \'1 day\', '
               "'x' FROM generate_series(1, 600) g")
    with db.connect() as conn:
        src = tables.describe(conn, 'Arch "ive".Mixed Case', field="s")
        arc = tables.ensure_archive(conn, src, 'Arch "ive".Mixed Case old', field="a")
        result = move_rows(conn, src, arc, "created at", datetime(2026, 1, 1, tzinfo=UTC), batching=BATCHING,
                           max_rows=10**9)
    assert result.rows == 364  # 2025-01-02 .. 2025-12-31
    assert db.execute('SELECT count(*) FROM "Arch ""ive"""."Mixed Case old"')[0][0] == 364


# --- faults ---------------------------------------------------------------------------------------

def union_equals_original(db) -> None:
    diff = db.execute("""
        SELECT (SELECT count(*) FROM ((SELECT * FROM learning_sessions UNION ALL
                                       SELECT * FROM learning_sessions_archive)
                                      EXCEPT ALL SELECT * FROM original) a),
               (SELECT count(*) FROM (SELECT * FROM original EXCEPT ALL
                                      (SELECT * FROM learning_sessions UNION ALL
                                       SELECT * FROM learning_sessions_archive)) b)""")
    assert diff == [(0, 0)], "the union of source and archive differs from the original data"


def start_worker(db) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.archive_worker", db.dsn, "public.learning_sessions",
         "public.learning_sessions_archive", "created_at", "2026-06-01T00:00:00+00:00"],
        env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def test_killed_and_disconnected_at_random_points_no_row_is_lost_or_duplicated(db):
    fill(db, "public.learning_sessions", 100_000, old_fraction=0.8)
    db.execute("CREATE TABLE original AS SELECT * FROM learning_sessions")
    rng = random.Random(7)
    faults = ["kill"] * 20 + ["disconnect"] * 10
    rng.shuffle(faults)
    interrupted = 0
    for fault in faults:
        worker = start_worker(db)
        pid = int(worker.stdout.readline())
        time.sleep(rng.uniform(0.02, 0.3))
        if fault == "kill":
            worker.send_signal(signal.SIGKILL)
        else:
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.wait(timeout=30)
        interrupted += worker.returncode != 0
        union_equals_original(db)
    assert interrupted >= 25  # the faults really landed during the move
    worker = start_worker(db)
    worker.stdout.readline()
    assert worker.wait(timeout=120) == 0
    union_equals_original(db)
    assert db.execute("SELECT count(*) FROM learning_sessions WHERE created_at < '2026-06-01'") == [(0,)]
    assert count(db, "public.learning_sessions_archive") == 80_000


def test_a_killed_try_is_closed_by_the_next_with_exactly_what_it_moved(db):
    """The ledger tells the truth after a kill: each try's action counts, inside each batch's own
    transaction, the rows it moved; the next try closes a killed one as interrupted. Every row in
    the archive is accounted for by exactly one try."""
    import json

    fill(db, "public.learning_sessions", 80_000, old_fraction=0.8)
    db.execute("CREATE TABLE original AS SELECT * FROM learning_sessions")
    rng = random.Random(11)
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    args = [sys.executable, "-m", "tests.support.archive_worker", db.dsn, "public.learning_sessions",
            "public.learning_sessions_archive", "created_at", "2026-06-01T00:00:00+00:00"]
    closed_before, killed = [], []
    for try_number in range(1, 6):
        worker = subprocess.Popen([*args, str(try_number)], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        worker.stdout.readline()  # its backend pid
        closed_before.append([c["try_number"] for c in json.loads(worker.stdout.readline())])
        time.sleep(rng.uniform(0.1, 0.4))
        worker.send_signal(signal.SIGKILL)
        killed.append(worker.wait(timeout=30) != 0)  # else it had finished before the kill
        union_equals_original(db)
    last = subprocess.run([*args, "6"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
    closed_before.append([c["try_number"] for c in json.loads(last.stdout.splitlines()[1])])
    assert sum(killed) >= 3  # the kills landed during the move
    # Each try closed the one before it when that one was killed, naming what it had moved.
    assert closed_before == [[]] + [[t] if killed[t - 1] else [] for t in range(1, 6)]
    outcomes = dict(db.execute("SELECT try_number, outcome FROM maintenance.task_runs WHERE run_id = 'fault-run'"))
    assert outcomes == {t: "interrupted" if killed[t - 1] else "done" for t in range(1, 6)} | {6: "done"}
    actions = db.execute("SELECT try_number, outcome, rows_affected FROM maintenance.actions "
                         "WHERE run_id = 'fault-run' ORDER BY 1")
    assert [a[1] for a in actions] == ["interrupted" if k else "applied" for k in killed] + ["applied"]
    assert sum(a[2] for a, k in zip(actions, killed, strict=False) if k) > 0  # killed after moving rows
    # Exactly: every row in the archive is counted by one try, none twice, none missed.
    assert sum(a[2] for a in actions) == count(db, "public.learning_sessions_archive") == 64_000
    union_equals_original(db)


# --- through the monthly DAG ----------------------------------------------------------------------

@pytest.fixture
def monthly(db, airflow_db, slack, monkeypatch):
    window = datetime(2026, 12, 6, 3, tzinfo=NY)
    monkeypatch.setattr(clock, "now", lambda: window.astimezone(UTC))
    db.execute("TRUNCATE pathiq_metrics RESTART IDENTITY")
    return window


ONLY_ARCHIVE = r"^((plan_)?debloat|monthly_report|security_audit|compliance|update_review)$"


def test_monthly_dry_run_reports_the_plan_and_moves_nothing(db, monthly):
    fill(db, "public.learning_sessions", 2000)
    result = run_dag("maintenance_monthly", monthly, {"dry_run": True}, mark_success_pattern=ONLY_ARCHIVE)
    assert result.states["archive"] == "success", result.states
    plan = {p["source"]: p for p in result.xcom("archive")["plan"]}
    sessions = plan["public.learning_sessions"]
    assert sessions["rows"] == 1000 and sessions["bytes"] > 0 and sessions["batches"] >= 1
    assert sessions["cutoff"] == "2026-06-06T00:00:00-04:00"
    assert count(db, "public.learning_sessions") == 2000
    assert not tables.exists(db.connect(), "public.learning_sessions_archive")


def test_the_dry_run_estimates_at_the_rate_the_last_move_measured(db, monthly):
    # Before any move, the policy's guess; after a move of enough rows, that move's own rate.
    batching = load_policy().archive.batching
    fill(db, "public.learning_sessions", 40_000)  # 20,000 a year old, 20,000 from this month
    first = run_dag("maintenance_monthly", monthly, {"dry_run": True}, mark_success_pattern=ONLY_ARCHIVE)
    guessed = {p["source"]: p for p in first.xcom("archive")["plan"]}["public.learning_sessions"]
    assert "archive.expected_rows_per_second: no move of this table measured yet" in guessed["estimate_basis"]
    assert guessed["estimated_seconds"] == 20_000 / 20_000
    moved = run_dag("maintenance_monthly", monthly, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    (rate,) = [m["rows_per_second"] for m in moved.xcom("archive")["moved"]
               if m["source"] == "public.learning_sessions"]
    # A year later this month's rows are old too.
    later = run_dag("maintenance_monthly", datetime(2027, 6, 30, 6, tzinfo=UTC), {"dry_run": True},
                    mark_success_pattern=ONLY_ARCHIVE)
    measured = {p["source"]: p for p in later.xcom("archive")["plan"]}["public.learning_sessions"]
    assert measured["rows"] == 20_000
    assert measured["estimate_basis"].startswith(f"{rate:,.0f} rows/s, measured by the move of 2026-")
    assert abs(measured["estimated_seconds"] - 20_000 / rate) < 0.1
    per_batch = max(batching.min_rows, min(batching.max_rows, int(rate * batching.target_ms / 1000)))
    assert measured["batches"] == -(-20_000 // per_batch)


def test_monthly_archive_and_a_backfill_of_the_same_date_moves_nothing_more(db, monthly):
    fill(db, "public.learning_sessions", 4000)
    db.execute("""INSERT INTO pathiq_metrics (student_id, metric, value, "timestamp")
                  SELECT g, 'focus', g, timestamptz '2025-12-01' + g * interval '1 hour'
                  FROM generate_series(1, 9000) g""")
    first = run_dag("maintenance_monthly", monthly, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    assert first.states["archive"] == "success", first.states
    moved = {m["source"]: m["rows"] for m in first.xcom("archive")["moved"]}
    # 2025-12-01 + 9000 h runs to 2026-12-08; rows before 2026-06-06 local midnight moved.
    old_metrics = db.execute("SELECT count(*) FROM pathiq_metrics_archive")[0][0]
    assert moved == {"public.learning_sessions": 2000, "public.pathiq_metrics": old_metrics}
    assert 4000 < old_metrics < 4500
    again = run_dag("maintenance_monthly", monthly, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    assert {m["source"]: m["rows"] for m in again.xcom("archive")["moved"]} == {
        "public.learning_sessions": 0, "public.pathiq_metrics": 0}
    rows = db.execute("SELECT target, rows_affected FROM maintenance.actions WHERE run_id = %s AND system = 'archive' "
                      "ORDER BY target", (first.run.run_id,))
    assert rows == [("platform_db:public.learning_sessions", 2000), ("platform_db:public.pathiq_metrics", old_metrics)]


def test_a_bad_archive_date_is_refused_naming_the_field(db, monthly):
    """The form's date format refuses it when the run is triggered (Airflow validates each field's
    schema); a run that carries it anyway fails its first task, before anything moves."""
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamValidationError
    from maintenance.form import RunForm, archive_as_of_field

    with pytest.raises(ParamValidationError):
        Param("next tuesday", **archive_as_of_field().schema).resolve()
    assert Param("2026-11-01", **archive_as_of_field().schema).resolve() == "2026-11-01"
    with pytest.raises(InputError, match=r"^archive_as_of: expected a date as YYYY-MM-DD, got 'next tuesday'$"):
        RunForm.of({"params": {"archive_as_of": "next tuesday"}})


def test_a_table_another_actor_is_archiving_is_left_alone_with_the_holder_named(db, monthly, tmp_path, monkeypatch,
                                                                               slack):
    """A backfill beside the scheduled run: the second actor on a table waits its budget, then
    leaves the table to the first, naming it; the other tables still move."""
    import psycopg
    from maintenance.postgres.target_lock import target_lock

    from tests.conftest import use_policy

    use_policy(tmp_path, monkeypatch, postgres=load_policy().postgres.model_dump() | {
        "safety": load_policy().postgres.safety.model_dump() | {"target_lock_wait_s": 1}})
    fill(db, "public.learning_sessions", 2000)
    db.execute("DROP TABLE IF EXISTS pathiq_metrics_archive")  # other tests' archived ids would collide
    db.execute("""INSERT INTO pathiq_metrics (student_id, metric, value, "timestamp")
                  SELECT g, 'focus', g, timestamptz '2025-12-01' + g * interval '1 hour'
                  FROM generate_series(1, 100) g""")
    with psycopg.connect(db.dsn, autocommit=True) as other, target_lock(
            other, "platform_db:public.learning_sessions", holder="maintenance maintenance_monthly backfill__x archive",
            wait_s=0):
        result = run_dag("maintenance_monthly", monthly, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    assert result.states["archive"] == "success", result.states
    summary = result.xcom("archive")
    assert [m["source"] for m in summary["moved"]] == ["public.pathiq_metrics"]
    (busy,) = summary["busy"]
    assert busy.startswith("platform_db:public.learning_sessions is being maintained by maintenance "
                           "maintenance_monthly backfill__x archive (pid ")
    assert count(db, "public.learning_sessions") == 2000  # untouched
    assert "is being maintained by maintenance maintenance_monthly backfill__x archive" in [
        m["text"] for m in slack.messages("#ops-maintenance") if "*maintenance_monthly* run" in m["text"]][-1]


def test_an_archive_date_later_than_the_run_is_refused_before_anything_moves(db, monthly):
    fill(db, "public.learning_sessions", 2000)
    result = run_dag("maintenance_monthly", monthly, {"dry_run": False, "archive_as_of": "2099-01-01"},
                     mark_success_pattern=ONLY_ARCHIVE)
    assert result.states["archive"] == "failed"
    assert count(db, "public.learning_sessions") == 2000
    error = db.execute("SELECT summary->>'error' FROM maintenance.task_runs WHERE run_id = %s AND task_id = 'archive'",
                       (result.run.run_id,))
    assert error == [("InputError: archive_as_of: 2099-01-01 is later than the run's date 2026-12-06; archiving as "
                      "of a future date would move rows younger than the policy's age",)]


def test_an_unknown_table_in_the_form_fails_the_archive_naming_it(db, monthly):
    fill(db, "public.learning_sessions", 2000)
    result = run_dag("maintenance_monthly", monthly, {"dry_run": False, "tables": ["learning_sesions"]},
                     mark_success_pattern=ONLY_ARCHIVE)
    assert result.states["archive"] == "failed"
    assert count(db, "public.learning_sessions") == 2000
    error = db.execute("SELECT summary->>'error' FROM maintenance.task_runs WHERE run_id = %s AND task_id = 'archive'",
                       (result.run.run_id,))[0][0]
    assert "'learning_sesions' is not a table of platform_db" in error
    assert "(did you mean public.learning_sessions?)" in error
    narrowed = run_dag("maintenance_monthly", monthly, {"dry_run": True, "tables": ["Learning_Sessions"]},
                       mark_success_pattern=ONLY_ARCHIVE)
    assert [p["source"] for p in narrowed.xcom("archive")["plan"]] == ["public.learning_sessions"]


def test_rows_with_types_that_have_no_hash_function_are_checked_as_text(db):
    """json and point have no hash function: the check falls back to hashing each row's text."""
    db.script("""
        CREATE TABLE IF NOT EXISTS shapes (id int PRIMARY KEY, created_at timestamptz NOT NULL, doc json, at point);
        INSERT INTO shapes SELECT g, timestamptz '2025-01-01' + g * interval '1 hour', '{"a": 1}', point(g, g)
        FROM generate_series(1, 500) g ON CONFLICT DO NOTHING""")
    with db.connect() as conn:
        src = tables.describe(conn, "public.shapes", field="s")
        arc = tables.ensure_archive(conn, src, "public.shapes_old", field="a")
        assert not hashable_by_type(conn, src)
        result = move_rows(conn, src, arc, "created_at", datetime(2025, 1, 10, tzinfo=UTC), batching=BATCHING,
                           max_rows=10**9)
        assert result.rows == 8 * 24 + 23
        sessions = tables.describe(conn, "public.learning_sessions", field="s")
    fill(db, "public.learning_sessions", 10)
    with db.connect() as conn:
        assert hashable_by_type(conn, sessions)


# --- partitioned tables ---------------------------------------------------------------------------

@pytest.fixture
def partitioned(platform_db, airflow_db, slack, tmp_path, monkeypatch):
    """events: monthly range partitions from 2025-11 to 2026-12 plus a default one, 100 rows a day."""
    from tests.conftest import use_policy

    db = platform_db
    db.script("""
        DROP TABLE IF EXISTS events, events_archive, events_original CASCADE;
        CREATE TABLE events (id bigint, at timestamptz NOT NULL, kind text, PRIMARY KEY (id, at))
            PARTITION BY RANGE (at);
        CREATE TABLE events_default PARTITION OF events DEFAULT""")
    month = date(2025, 11, 1)
    while month <= date(2026, 12, 1):
        following = months_before(month, -1)
        db.execute(sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM (%s) TO (%s)").format(
            sql.Identifier(f"events_{month:%Y_%m}")).as_string(None).replace("%s", "'{}'").format(month, following))
        month = following
    db.execute("""INSERT INTO events SELECT g, timestamptz '2025-11-01 00:00+00' + g * interval '864 seconds', 'x'
                  FROM generate_series(0, 100 * 420) g""")
    db.execute("INSERT INTO events VALUES (-1, '2020-01-01', 'ancient'), (-2, '2031-01-01', 'future')")
    db.execute("CREATE TABLE events_original AS SELECT * FROM events")
    use_policy(tmp_path, monkeypatch, archive={"tables": [{"source": "public.events", "time_column": "at",
                                                           "age_months": 6}]})
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 6, 8, tzinfo=UTC))
    return db


def children(db, parent) -> list[str]:
    return [r[0] for r in db.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                     "WHERE i.inhparent = %s::regclass ORDER BY 1", (parent,))]


def events_union_is_original(db) -> None:
    diff = db.execute("""
        SELECT (SELECT count(*) FROM ((SELECT * FROM events UNION ALL SELECT * FROM events_archive)
                                      EXCEPT ALL SELECT * FROM events_original) a),
               (SELECT count(*) FROM (SELECT * FROM events_original EXCEPT ALL
                                      (SELECT * FROM events UNION ALL SELECT * FROM events_archive)) b)""")
    assert diff == [(0, 0)]


def test_old_partitions_change_tables_whole_and_the_straddling_one_moves_in_batches(partitioned):
    db = partitioned
    others = r"^((plan_)?debloat|monthly_report|security_audit|compliance)$"
    first = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": False},
                    mark_success_pattern=others)
    assert first.states["archive"] == "success", first.states
    (moved,) = first.xcom("archive")["moved"]
    attached = [p["partition"] for p in moved["partitions"]["attached"]]
    # Cutoff 2026-06-06: November 2025 to May 2026 are wholly older, so they change tables whole.
    assert attached == [f"public.events_{m}" for m in ("2025_11", "2025_12", "2026_01", "2026_02", "2026_03",
                                                       "2026_04", "2026_05")]
    assert all(p["detach"] == "plain" for p in moved["partitions"]["attached"])  # a default partition exists
    assert set(attached) <= {f"public.{c}" for c in children(db, "events_archive")}
    # June straddles the cutoff: its first five days, and the ancient row of the default, moved in batches.
    straddling = db.execute("SELECT count(*) FROM events_original WHERE at >= '2026-06-01' AND at < %s",
                            (datetime(2026, 6, 6, 4, tzinfo=UTC),))[0][0]  # local midnight, EDT
    assert moved["rows"] == straddling + 1
    assert "events_2026_06_archive" in children(db, "events_archive")
    assert db.execute("SELECT min(at) FROM events WHERE kind = 'x'")[0][0] >= datetime(2026, 6, 6, 4, tzinfo=UTC)
    events_union_is_original(db)

    # A month later, June is wholly old but its range is already in the archive: batches, then
    # the emptied partition is dropped.
    second = run_dag("maintenance_monthly", datetime(2027, 1, 3, 7, tzinfo=UTC), {"dry_run": False},
                     mark_success_pattern=others)
    (moved,) = second.xcom("archive")["moved"]
    assert moved["partitions"]["dropped"] == ["public.events_2026_06"]
    assert "events_2026_06" not in children(db, "events")
    events_union_is_original(db)
    again = run_dag("maintenance_monthly", datetime(2027, 1, 3, 7, tzinfo=UTC), {"dry_run": False},
                    mark_success_pattern=others)
    (moved,) = again.xcom("archive")["moved"]
    assert moved["rows"] == 0 and moved["partitions"]["attached"] == []


def test_a_back_dated_row_committed_during_the_drop_sends_the_partition_back(partitioned, monkeypatch):
    """The emptiness that decides the drop is read under the drop's own lock, after the detach:
    a row that arrives between the first look and the detach keeps the partition."""
    from maintenance.archive import partitions

    db = partitioned
    db.execute("DELETE FROM events WHERE at >= '2026-03-01' AND at < '2026-04-01'")
    real_detach = partitions._detach

    def detach_after_a_late_insert(conn, source, part):
        db.execute("INSERT INTO events VALUES (-7, '2026-03-15 12:00+00', 'late')")  # another session commits
        return real_detach(conn, source, part)

    monkeypatch.setattr(partitions, "_detach", detach_after_a_late_insert)
    with db.connect() as conn:
        source = tables.describe(conn, "public.events", field="s")
        (march,) = [p for p in partitions.partitions(conn, source) if p.name == "events_2026_03"]
        assert partitions.drop_if_empty(conn, source, march) is False
    assert "events_2026_03" in children(db, "events")  # attached back, with its bound
    assert db.execute("SELECT id, kind FROM events WHERE at >= '2026-03-01' AND at < '2026-04-01'") == [
        (-7, "late")]
    assert db.execute("SELECT obj_description('public.events_2026_03'::regclass, 'pg_class')") == [(None,)]


def test_an_interrupted_concurrent_detach_is_finished_and_the_partition_lands(partitioned):
    """DETACH ... CONCURRENTLY cancelled in its wait leaves the partition 'detach pending' (its rows
    hidden from the source): the next run finalizes it and finishes the move it belonged to."""
    import threading

    from maintenance.archive import partitions

    db = partitioned
    db.execute("DROP TABLE events_default")  # CONCURRENTLY needs no default partition...
    db.execute("DELETE FROM events_original WHERE id IN (-1, -2)")  # ...so its two rows are gone by design
    with db.connect() as conn:
        source = tables.describe(conn, "public.events", field="s")
        (december,) = [p for p in partitions.partitions(conn, source) if p.name == "events_2025_12"]
        partitions._mark(conn, december, {"from": "public.events", "to": "public.events_archive",
                                          "bound": december.bound})
    holder = db.connect()
    holder.autocommit = False
    holder.execute("SELECT count(*) FROM events")  # an open transaction the detach must wait for
    try:
        with db.connect() as conn:
            conn.execute("SET statement_timeout = '1s'")
            with pytest.raises(Exception, match=r"statement timeout|canceling"):
                conn.execute("ALTER TABLE events DETACH PARTITION events_2025_12 CONCURRENTLY")
    finally:
        threading.Thread(target=holder.close).start()
    assert db.execute("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'events_2025_12'::regclass") == [
        (True,)]
    hidden = db.execute("SELECT count(*) FROM events_2025_12")[0][0]
    result = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": False},
                     mark_success_pattern=r"^((plan_)?debloat|monthly_report|security_audit|compliance)$")
    assert result.states["archive"] == "success", result.states
    (moved,) = result.xcom("archive")["moved"]
    recovered = {r["partition"]: r for r in moved["partitions"]["recovered"]}
    assert recovered["public.events_2025_12"]["finalized"] is True
    assert recovered["public.events_2025_12"]["outcome"].startswith("attached to public.events_archive")
    assert "events_2025_12" in children(db, "events_archive")
    assert db.execute("SELECT count(*) FROM events_archive WHERE at >= '2025-12-01' AND at < '2026-01-01'") == [
        (hidden,)]
    events_union_is_original(db)


def test_a_partition_left_between_the_tables_by_a_kill_is_attached_where_it_was_going(partitioned):
    from maintenance.archive import partitions

    db = partitioned
    with db.connect() as conn:
        source = tables.describe(conn, "public.events", field="s")
        partitions.ensure_partitioned_archive(conn, source, sql.Identifier("public", "events_archive"), "at")
        (january,) = [p for p in partitions.partitions(conn, source) if p.name == "events_2026_01"]
        partitions._mark(conn, january, {"from": "public.events", "to": "public.events_archive",
                                         "bound": january.bound})
        partitions._detach(conn, source, january)  # ...and the run is killed before the attach
    assert "events_2026_01" not in children(db, "events")
    result = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": False},
                     mark_success_pattern=r"^((plan_)?debloat|monthly_report|security_audit|compliance)$")
    assert result.states["archive"] == "success", result.states
    (moved,) = result.xcom("archive")["moved"]
    assert moved["partitions"]["recovered"] == [
        {"partition": "public.events_2026_01", "outcome": "attached to public.events_archive, as the interrupted "
                                                          "run meant to"}]
    assert "events_2026_01" in children(db, "events_archive")
    events_union_is_original(db)


def test_partition_planning_creates_the_next_months_and_proposes_for_large_tables(partitioned, tmp_path,
                                                                                  monkeypatch):
    from tests.conftest import use_policy

    db = partitioned
    use_policy(tmp_path, monkeypatch, base=Path(os.environ["MAINTENANCE_POLICY_FILE"]),
               archive={"partitioning": {"min_table_bytes": 1, "create_ahead_months": 3}})
    db.execute("DELETE FROM events WHERE at >= '2031-01-01'")  # the default partition must not hold 2027 rows
    others = r"^((plan_)?debloat|monthly_report|security_audit|compliance|archive)$"
    dry = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": True},
                  mark_success_pattern=others)
    assert dry.xcom("partition_planning")["planned"] == ["public.events 2027-01", "public.events 2027-02",
                                                         "public.events 2027-03"]
    assert "events_2027_01" not in children(db, "events")
    result = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": False},
                     mark_success_pattern=others)
    summary = result.xcom("partition_planning")
    assert summary["created"] == ["public.events_2027_01", "public.events_2027_02", "public.events_2027_03"]
    assert {"events_2027_01", "events_2027_02", "events_2027_03"} <= set(children(db, "events"))
    proposals = {p["table"]: p for p in summary["proposals"]}
    assert proposals["public.learning_sessions"]["time_column"] == "created_at"  # the indexed time column
    again = run_dag("maintenance_monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), {"dry_run": False},
                    mark_success_pattern=others)
    assert again.xcom("partition_planning")["created"] == []


# --- the export to S3 -------------------------------------------------------------------------------

EXPORT_BUCKET = "pathfinity-archive"


@pytest.fixture
def exporting(db, monthly, s3, tmp_path, monkeypatch):
    """The monthly DAG with both tables exported to S3; sessions a year old, metrics hourly over a year."""
    from tests.conftest import empty_bucket, use_policy

    empty_bucket(s3, EXPORT_BUCKET)
    db.execute("DROP TABLE IF EXISTS pathiq_metrics_archive")
    export = {"bucket": EXPORT_BUCKET, "prefix": "archive/"}
    use_policy(tmp_path, monkeypatch, archive={"tables": [
        {"conn_id": "platform_db", "source": "public.learning_sessions", "time_column": "created_at", "export": export},
        {"conn_id": "platform_db", "source": "public.pathiq_metrics", "time_column": "timestamp", "export": export}]})
    return monthly


def stored_objects(s3) -> dict[str, str]:
    try:
        listed = s3.list_objects_v2(Bucket=EXPORT_BUCKET).get("Contents", [])
    except s3.exceptions.NoSuchBucket:
        return {}
    return {o["Key"]: o["ETag"] for o in listed}


def exported_rows(s3, key: str) -> list[dict]:
    import csv
    import gzip
    import io

    body = s3.get_object(Bucket=EXPORT_BUCKET, Key=key)["Body"].read()
    return list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))


def test_full_months_of_the_archive_go_to_s3_checked_and_a_rerun_exports_nothing(db, s3, exporting):
    import hashlib
    import json

    fill(db, "public.learning_sessions", 2000)  # 1,000 rows at 2025-11-01 00:00 UTC (October in New York)
    db.execute("""INSERT INTO pathiq_metrics (student_id, metric, value, "timestamp")
                  SELECT g, 'focus', g, timestamptz '2025-12-01 05:00+00' + g * interval '1 hour'
                  FROM generate_series(0, 8999) g""")
    dry = run_dag("maintenance_monthly", exporting, {"dry_run": True}, mark_success_pattern=ONLY_ARCHIVE)
    assert [e["note"] for e in dry.xcom("archive")["exports"]] == [
        "no archive table yet: its months are exported after the first move"] * 2
    assert stored_objects(s3) == {}

    first = run_dag("maintenance_monthly", exporting, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    assert first.states["archive"] == "success", first.states
    exports = {e["source"]: e["months"] for e in first.xcom("archive")["exports"]}
    # The cutoff is 2026-06-06: June is not a full month before it, so metrics export December to May.
    assert [m["month"] for m in exports["public.pathiq_metrics"]] == [
        "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
    assert [(m["month"], m["rows"], m["status"]) for m in exports["public.learning_sessions"]] == [
        ("2025-10", 1000, "exported")]
    objects = stored_objects(s3)
    assert len(objects) == 2 * 7  # each month's object and its manifest
    for months in exports.values():
        for month in months:
            body = s3.get_object(Bucket=EXPORT_BUCKET, Key=month["key"])["Body"].read()
            manifest = json.loads(s3.get_object(Bucket=EXPORT_BUCKET, Key=month["key"] + ".manifest.json")
                                  ["Body"].read())
            assert manifest["sha256"] == hashlib.sha256(body).hexdigest() == month["sha256"]
            assert manifest["rows"] == month["rows"]
    january = exported_rows(s3, "archive/public.pathiq_metrics_archive/2026-01.csv.gz")
    in_archive = db.execute("""SELECT id FROM pathiq_metrics_archive WHERE "timestamp" >= '2026-01-01 00:00-05'
                               AND "timestamp" < '2026-02-01 00:00-05' ORDER BY id""")
    assert [int(r["id"]) for r in january] == [r[0] for r in in_archive] and len(january) == 31 * 24
    assert set(january[0]) == {"id", "student_id", "metric", "value", "timestamp"}
    recorded = db.execute("SELECT count(*), sum(rows_affected) FROM maintenance.actions WHERE run_id = %s "
                          "AND action = 'export_month' AND outcome = 'applied'", (first.run.run_id,))
    assert recorded == [(7, 1000 + sum(m["rows"] for m in exports["public.pathiq_metrics"]))]

    again = run_dag("maintenance_monthly", exporting, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    assert {m["status"] for e in again.xcom("archive")["exports"] for m in e["months"]} == {"unchanged"}
    assert stored_objects(s3) == objects  # not one object rewritten


def test_an_export_another_run_holds_is_left_to_it_and_the_holder_named(db, s3, exporting, tmp_path, monkeypatch):
    """Two runs at once (a backfill beside the scheduled run): the second leaves the table's months
    to the first, names it, and writes nothing; once the first lets go the months go out."""
    import os

    import yaml
    from maintenance.s3lock import s3_lock

    policy = yaml.safe_load(open(os.environ["MAINTENANCE_POLICY_FILE"]).read())
    policy["postgres"]["safety"]["target_lock_wait_s"] = 0.5
    path = tmp_path / "quick-wait.yaml"
    path.write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("MAINTENANCE_POLICY_FILE", str(path))
    fill(db, "public.learning_sessions", 2000)
    s3.create_bucket(Bucket=EXPORT_BUCKET)
    holder = "maintenance maintenance_monthly backfill__2026-11-01 archive"
    with s3_lock(s3, EXPORT_BUCKET, "archive export archive/public.learning_sessions_archive", holder=holder,
                 hold_s=600, wait_s=0):
        run = run_dag("maintenance_monthly", exporting, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
        assert run.states["archive"] == "success", run.states
        exports = {e["source"]: e for e in run.xcom("archive")["exports"]}
        assert exports["public.learning_sessions"]["months"] == []
        assert exports["public.learning_sessions"]["busy"].startswith(
            f"archive export archive/public.learning_sessions_archive is being maintained by {holder} (until ")
        assert [k for k in stored_objects(s3) if not k.startswith("maintenance-locks/")] == [
            k for k in stored_objects(s3) if k.startswith("archive/public.pathiq_metrics_archive/")]
    again = run_dag("maintenance_monthly", exporting, {"dry_run": False}, mark_success_pattern=ONLY_ARCHIVE)
    sessions = next(e for e in again.xcom("archive")["exports"] if e["source"] == "public.learning_sessions")
    assert [(m["month"], m["status"]) for m in sessions["months"]] == [("2025-10", "exported")]
    assert not any(k.startswith("maintenance-locks/") for k in stored_objects(s3))


def test_an_export_that_reads_back_wrong_fails_and_leaves_the_month_unexported(db, s3, monkeypatch):
    from tests.conftest import empty_bucket

    empty_bucket(s3, EXPORT_BUCKET)
    from maintenance import s3files
    from maintenance.archive import export

    fill(db, "public.learning_sessions", 600)
    move(db)
    s3files.ensure_bucket(s3, EXPORT_BUCKET)
    empty_bucket_keys = stored_objects(s3)
    with db.connect() as conn:
        archive = tables.describe(conn, "public.learning_sessions_archive", field="archive")
        cutoff = datetime(2026, 6, 1, tzinfo=NY)
        (month,) = export.plan(conn, s3, archive, "created_at", cutoff, NY, bucket=EXPORT_BUCKET, prefix="a/")
        assert (month.month, month.rows, month.status) == ("2025-10", 300, "due")
        real_upload = s3files.upload

        def truncating_upload(client, path, bucket, key, **kwargs):  # what a torn upload would leave
            path.write_bytes(path.read_bytes()[:-40])
            real_upload(client, path, bucket, key, **kwargs)

        monkeypatch.setattr(s3files, "upload", truncating_upload)
        with pytest.raises(export.ExportMismatch, match="no manifest written"):
            export.export_month(conn, s3, archive, "created_at", month, NY, bucket=EXPORT_BUCKET, run_id="r1")
        assert f"{month.key}.manifest.json" not in stored_objects(s3)
        monkeypatch.setattr(s3files, "upload", real_upload)
        (again,) = export.plan(conn, s3, archive, "created_at", cutoff, NY, bucket=EXPORT_BUCKET, prefix="a/")
        assert again.status == "due"  # the next run exports it again
        done = export.export_month(conn, s3, archive, "created_at", again, NY, bucket=EXPORT_BUCKET, run_id="r2")
        assert (done.status, done.rows) == ("exported", 300)
        # A row archived late into an exported month: the month is exported again, whole.
        conn.execute("INSERT INTO learning_sessions_archive (id, student_id, career_id, created_at) "
                     "VALUES (999999, 1, 1, '2025-10-15')")
        (late,) = export.plan(conn, s3, archive, "created_at", cutoff, NY, bucket=EXPORT_BUCKET, prefix="a/")
        assert late.status == "changed"
        redone = export.export_month(conn, s3, archive, "created_at", late, NY, bucket=EXPORT_BUCKET, run_id="r3")
        assert (redone.status, redone.rows) == ("re-exported", 301)
    assert empty_bucket_keys == {}
