"""Archiving against schemas real platforms have: foreign keys of every kind pointing at the
source, delete triggers and rules, times without a zone, rows without a time, quoted
mixed-case names, composite keys, generated columns. Nothing is lost or changed unannounced:
each case either moves exactly the rows it may, or refuses loudly and touches nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from maintenance import clock
from psycopg import sql

from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag

NY = ZoneInfo("America/New_York")
WINDOW = datetime(2026, 12, 6, 3, tzinfo=NY)  # cutoff: 2026-06-06 00:00 New York time
ONLY_ARCHIVE = r"^((plan_)?debloat|monthly_report|security_audit|compliance|update_review|partition_planning)$"

SCHEMA = """
DROP SCHEMA IF EXISTS "Ops" CASCADE;
DROP TABLE IF EXISTS public.visit_flags, public.order_lines, public.order_tags, public.orders_c,
    public.order_lines_archive, public.order_tags_archive,
    public.orders_c_archive, public.audited, public.audited_archive, public.audit_log, public.naive_times,
    public.naive_times_archive CASCADE;
CREATE SCHEMA "Ops";
-- A composite key, a column named "timestamp", jsonb, a generated column, quoted mixed case.
CREATE TABLE "Ops"."Visits" (
    tenant int NOT NULL, "Id" bigint NOT NULL, "timestamp" timestamptz, body jsonb,
    doubled int GENERATED ALWAYS AS (tenant * 2) STORED, PRIMARY KEY (tenant, "Id"));
INSERT INTO "Ops"."Visits" (tenant, "Id", "timestamp", body)
    SELECT g % 3, g, CASE WHEN g <= 100 THEN timestamptz '2025-10-01' + g * interval '1 day'
                          ELSE timestamptz '2026-11-01' + g * interval '1 minute' END, jsonb_build_object('g', g)
    FROM generate_series(1, 200) g;
-- Children that keep their parents: RESTRICT from a plain table in another schema...
CREATE TABLE "Ops".visit_notes (note_id int PRIMARY KEY, tenant int, visit_id bigint,
    FOREIGN KEY (tenant, visit_id) REFERENCES "Ops"."Visits" (tenant, "Id") ON DELETE RESTRICT);
INSERT INTO "Ops".visit_notes VALUES (1, 1, 1), (2, 2, 2), (3, 0, 3), (4, 0, 150);
-- ...and NO ACTION from a partitioned table.
CREATE TABLE public.visit_flags (id int, tenant int, visit_id bigint,
    FOREIGN KEY (tenant, visit_id) REFERENCES "Ops"."Visits" (tenant, "Id")) PARTITION BY LIST (tenant);
CREATE TABLE public.visit_flags_0 PARTITION OF public.visit_flags FOR VALUES IN (0);
CREATE TABLE public.visit_flags_other PARTITION OF public.visit_flags DEFAULT;
INSERT INTO public.visit_flags VALUES (1, 0, 6), (2, 1, 7), (3, 1, 151);
-- Children the delete would change: CASCADE and SET NULL.
CREATE TABLE public.orders_c (id int PRIMARY KEY, created_at timestamptz NOT NULL);
INSERT INTO public.orders_c SELECT g, CASE WHEN g <= 50 THEN timestamptz '2025-12-01' ELSE now() END
    FROM generate_series(1, 100) g;
CREATE TABLE public.order_lines (id int PRIMARY KEY, order_id int REFERENCES public.orders_c ON DELETE CASCADE);
INSERT INTO public.order_lines SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE public.order_tags (id int PRIMARY KEY, order_id int REFERENCES public.orders_c ON DELETE SET NULL);
INSERT INTO public.order_tags SELECT g, g FROM generate_series(1, 100) g;
-- A delete trigger and a rule that listen for deletions.
CREATE TABLE public.audit_log (what text, id int);
CREATE TABLE public.audited (id int PRIMARY KEY, created_at timestamptz NOT NULL);
INSERT INTO public.audited SELECT g, CASE WHEN g <= 30 THEN timestamptz '2025-12-01' ELSE now() END
    FROM generate_series(1, 60) g;
CREATE OR REPLACE FUNCTION public.log_delete() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO public.audit_log VALUES ('trigger', OLD.id); RETURN OLD; END $$;
CREATE TRIGGER audited_delete AFTER DELETE ON public.audited FOR EACH ROW EXECUTE FUNCTION public.log_delete();
-- Times without a zone, and rows without a time.
CREATE TABLE public.naive_times (id int PRIMARY KEY, created_at timestamp);
INSERT INTO public.naive_times VALUES
    (1, '2026-06-05 23:30'), (2, '2026-06-06 00:30'), (3, '2026-06-06 03:30'), (4, '2025-01-01 12:00'),
    (5, NULL), (6, NULL), (7, '2026-11-30 12:00');
"""

VISITS = {"source": "Ops.Visits", "time_column": "timestamp"}
ORDERS = {"source": "public.orders_c", "time_column": "created_at"}
AUDITED = {"source": "public.audited", "time_column": "created_at"}
NAIVE = {"source": "public.naive_times", "time_column": "created_at"}


@pytest.fixture
def schema(platform_db, airflow_db, slack, monkeypatch):
    platform_db.script(SCHEMA)
    monkeypatch.setattr(clock, "now", lambda: WINDOW.astimezone(UTC))
    return platform_db


def archive_with(tmp_path, monkeypatch, *entries):
    use_policy(tmp_path, monkeypatch, archive={"tables": [{"conn_id": "platform_db", **e} for e in entries]})


def monthly(dry_run: bool):
    return run_dag("maintenance_monthly", WINDOW, {"dry_run": dry_run}, mark_success_pattern=ONLY_ARCHIVE)


def rows(db, table: str) -> list[tuple]:
    """Every row of ``schema.table`` (names exact, as the policy gives them), by its first column."""
    return db.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(*table.split(".", 1))))


def test_rows_other_tables_still_reference_stay_and_all_others_move(schema, tmp_path, monkeypatch, slack):
    db = schema
    original = rows(db, "Ops.Visits")
    archive_with(tmp_path, monkeypatch, VISITS)
    dry = monthly(dry_run=True)
    (plan,) = dry.xcom("archive")["plan"]
    assert {(r["table"], r["on_delete"]) for r in plan["references"]} == {
        ("Ops.visit_notes", "restrict"), ("public.visit_flags", "no action")}
    assert plan["kept_referenced"] == {"Ops.visit_notes": 3, "public.visit_flags": 2}
    assert plan["rows"] == 95 and plan["refused"] is None
    assert len(rows(db, "Ops.Visits")) == 200  # the dry run moved nothing

    result = monthly(dry_run=False)
    assert result.states["archive"] == "success", result.states
    (moved,) = result.xcom("archive")["moved"]
    assert moved["rows"] == 95
    kept = db.execute('SELECT "Id" FROM "Ops"."Visits" WHERE "timestamp" < %s ORDER BY 1',
                      (datetime(2026, 6, 6, tzinfo=NY),))
    assert kept == [(1,), (2,), (3,), (6,), (7,)]  # exactly the referenced ones
    # Nothing lost, nothing twice: source and archive together are the original, row for row.
    after = sorted(rows(db, "Ops.Visits") + db.execute(
        'SELECT tenant, "Id", "timestamp", body, doubled FROM "Ops"."Visits_archive"'))
    assert after == sorted(original)
    text = last_summary(slack)
    assert "kept: 3 old rows still referenced by Ops.visit_notes" in text
    # The children are untouched.
    assert db.execute('SELECT count(*) FROM "Ops".visit_notes') == [(4,)]
    assert db.execute("SELECT count(*) FROM public.visit_flags") == [(3,)]


def last_summary(slack) -> str:
    return [m["text"] for m in slack.messages("#ops-maintenance") if "*maintenance_monthly* run" in m["text"]][-1]


def test_cascading_foreign_keys_are_refused_unless_acknowledged(schema, tmp_path, monkeypatch, slack):
    db = schema
    lines, tags = rows(db, "public.order_lines"), rows(db, "public.order_tags")
    archive_with(tmp_path, monkeypatch, ORDERS, VISITS)
    dry = monthly(dry_run=True)
    orders = next(p for p in dry.xcom("archive")["plan"] if p["source"] == "public.orders_c")
    assert "public.order_lines.order_lines_order_id_fkey is ON DELETE CASCADE" in orders["refused"]
    assert "public.order_tags.order_tags_order_id_fkey is ON DELETE SET NULL" in orders["refused"]
    assert "archive.tables[0].cascade_acknowledged" in orders["refused"]

    result = monthly(dry_run=False)
    assert result.states["archive"] == "failed"
    assert rows(db, "public.order_lines") == lines and rows(db, "public.order_tags") == tags  # untouched
    assert db.execute("SELECT count(*) FROM public.orders_c") == [(100,)]
    assert db.execute('SELECT count(*) FROM "Ops"."Visits_archive"') == [(95,)]  # the other table moved
    tries = db.execute("SELECT max(try_number) FROM maintenance.task_runs WHERE run_id = %s AND task_id = 'archive'",
                       (result.run.run_id,))
    assert tries == [(1,)]  # a refusal is not retried
    text = last_summary(slack)
    assert "public.orders_c refused: public.order_lines.order_lines_order_id_fkey is ON DELETE CASCADE" in text

    archive_with(tmp_path, monkeypatch, ORDERS | {"cascade_acknowledged": ["public.order_lines", "public.order_tags"]})
    acknowledged = monthly(dry_run=False)
    assert acknowledged.states["archive"] == "success", acknowledged.states
    assert db.execute("SELECT count(*) FROM public.orders_c_archive") == [(50,)]
    assert db.execute("SELECT count(*) FROM public.order_lines") == [(50,)]  # as acknowledged
    assert db.execute("SELECT count(*) FROM public.order_tags WHERE order_id IS NULL") == [(50,)]


def test_delete_triggers_are_refused_unless_the_policy_says_fire(schema, tmp_path, monkeypatch, slack):
    db = schema
    db.execute("CREATE RULE audited_rule AS ON DELETE TO public.audited DO ALSO "
               "INSERT INTO public.audit_log VALUES ('rule', OLD.id)")
    archive_with(tmp_path, monkeypatch, AUDITED)
    dry = monthly(dry_run=True)
    (plan,) = dry.xcom("archive")["plan"]
    assert plan["delete_hooks"] == [{"kind": "rule", "name": "audited_rule", "enabled": True},
                                    {"kind": "trigger", "name": "audited_delete", "enabled": True}]
    assert "rule audited_rule on DELETE: a source with DELETE rules cannot be archived" in plan["refused"]
    assert "trigger audited_delete fire(s) on DELETE, once per archived row" in plan["refused"]
    refused = monthly(dry_run=False)
    assert refused.states["archive"] == "failed"
    assert db.execute("SELECT count(*) FROM public.audited") == [(60,)]
    assert db.execute("SELECT count(*) FROM public.audit_log") == [(0,)]

    archive_with(tmp_path, monkeypatch, AUDITED | {"delete_triggers": "fire"})
    still = monthly(dry_run=False)  # a rule is refused whatever the policy says about triggers
    assert still.states["archive"] == "failed"
    assert "rule audited_rule on DELETE" in last_summary(slack)
    assert db.execute("SELECT count(*) FROM public.audited") == [(60,)]

    db.execute("DROP RULE audited_rule ON public.audited")
    fired = monthly(dry_run=False)
    assert fired.states["archive"] == "success", fired.states
    assert db.execute("SELECT what, count(*) FROM public.audit_log GROUP BY 1 ORDER BY 1") == [("trigger", 30)]
    assert "trigger audited_delete fire on each archived row" in last_summary(slack)


@pytest.mark.parametrize("server_zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_times_without_a_zone_are_read_in_the_policys_zone_whatever_the_server_says(
        schema, tmp_path, monkeypatch, slack, server_zone):
    db = schema
    db.execute(sql.SQL("ALTER DATABASE {} SET timezone = {}").format(sql.Identifier(db.dbname),
                                                                     sql.Literal(server_zone)))
    try:
        archive_with(tmp_path, monkeypatch, NAIVE)
        dry = monthly(dry_run=True)
        (plan,) = dry.xcom("archive")["plan"]
        assert plan["rows"] == 2 and plan["no_time"] == 2
        result = monthly(dry_run=False)
        assert result.states["archive"] == "success", result.states
        # 2026-06-05 23:30 and 2025-01-01 New York time are older than the cutoff (2026-06-06 00:00
        # New York time); 00:30 and 03:30 on the 6th are not, whatever the server's own zone.
        assert db.execute("SELECT id FROM public.naive_times_archive ORDER BY 1") == [(1,), (4,)]
        assert db.execute("SELECT id FROM public.naive_times ORDER BY 1") == [(2,), (3,), (5,), (6,), (7,)]
        text = last_summary(slack)
        assert "2 rows with no created_at: never archived" in text
    finally:
        db.execute(sql.SQL("ALTER DATABASE {} RESET timezone").format(sql.Identifier(db.dbname)))


@pytest.mark.parametrize(("tables", "message"), [
    ([{"source": "public.a", "archive": "public.a", "time_column": "t"}], "public.a is the source itself"),
    ([{"source": "public.a", "archive": "public.b", "time_column": "t"},
      {"source": "public.b", "time_column": "t"}], "tables[0].archive: public.b is the source of tables[1]"),
    ([{"source": "public.a", "time_column": "t"}, {"source": "public.a", "time_column": "u"}],
     "a source is listed twice"),
])
def test_an_archive_that_is_a_source_is_refused_on_load(tmp_path, monkeypatch, tables, message):
    from maintenance.policy import PolicyError, load_policy

    path = use_policy(tmp_path, monkeypatch, archive={"tables": tables})
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert message in str(caught.value)


def test_errors_a_retry_cannot_fix_are_told_from_those_it_can(platform_db):
    """Real errors from a real server: a missing object, a refused permission, a violated
    constraint fail at once; a lock or statement timeout and a lost connection are retried."""
    import psycopg
    from maintenance.operator import permanent

    def error_of(*statements, **connect):
        try:
            with psycopg.connect(platform_db.dsn, autocommit=True, **connect) as conn:
                for statement in statements:
                    conn.execute(statement)
        except psycopg.Error as exc:
            return exc
        raise AssertionError(f"no error from {statements}")

    platform_db.script("DROP TABLE IF EXISTS locked_one; CREATE TABLE locked_one (id int PRIMARY KEY);"
                       "DO $$ BEGIN CREATE ROLE nobody_here; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    assert permanent(error_of("SELECT * FROM no_such_table"))
    assert permanent(error_of("SET ROLE nobody_here", "SELECT * FROM locked_one"))
    assert permanent(error_of("INSERT INTO locked_one VALUES (1), (1)"))
    assert not permanent(error_of("SET statement_timeout = '10ms'", "SELECT pg_sleep(1)"))
    holder = psycopg.connect(platform_db.dsn)
    holder.execute("LOCK TABLE locked_one")
    try:
        assert not permanent(error_of("SET lock_timeout = '50ms'", "SELECT * FROM locked_one"))
    finally:
        holder.close()
    from devtools import servers

    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{servers.free_port()}/x", connect_timeout=2)
    except psycopg.OperationalError as exc:
        assert not permanent(exc)


def test_children_named_in_the_policy_are_archived_with_their_parents(schema, tmp_path, monkeypatch, slack):
    db = schema
    lines, tags = rows(db, "public.order_lines"), rows(db, "public.order_tags")
    archive_with(tmp_path, monkeypatch, ORDERS | {"children": [{"table": "public.order_lines"},
                                                                {"table": "public.order_tags"}]})
    dry = monthly(dry_run=True)
    (plan,) = dry.xcom("archive")["plan"]
    assert plan["refused"] is None
    assert [(c["table"], c["archive"], c["rows"]) for c in plan["children"]] == [
        ("public.order_lines", "public.order_lines_archive", 50),
        ("public.order_tags", "public.order_tags_archive", 50)]
    result = monthly(dry_run=False)
    assert result.states["archive"] == "success", result.states
    (moved,) = result.xcom("archive")["moved"]
    assert moved["rows"] == 50 and moved["children"] == {"public.order_lines": 50, "public.order_tags": 50}
    # Every child row is in exactly one of its two tables, unchanged, next to its parent.
    assert sorted(rows(db, "public.order_lines") + rows(db, "public.order_lines_archive")) == lines
    assert sorted(rows(db, "public.order_tags") + rows(db, "public.order_tags_archive")) == tags
    assert db.execute("SELECT count(*) FROM public.order_lines_archive l "
                      "WHERE NOT EXISTS (SELECT 1 FROM public.orders_c_archive o WHERE o.id = l.order_id)") == [(0,)]
    assert db.execute("SELECT count(*) FROM public.order_tags WHERE order_id IS NULL") == [(0,)]  # nothing rewritten
    assert "with 50 rows of public.order_lines archived along into public.order_lines_archive" in last_summary(slack)


def test_children_written_during_the_move_are_never_lost(schema):
    """Writers keep adding children of old orders while the move runs: each child row ends either
    beside its parent in the source, or with it in the archive; none is deleted by the cascade
    without being archived."""
    import threading

    from maintenance.archive.mover import move_rows
    from maintenance.policy.model import ArchiveBatching

    from tests.support.archive_worker import order_children

    db = schema
    db.execute("INSERT INTO public.orders_c SELECT g, timestamptz '2025-12-01' FROM generate_series(1000, 6000) g")
    stop, written, refused = threading.Event(), [0], [0]

    def writer(next_id):
        import psycopg

        with psycopg.connect(db.dsn, autocommit=True) as conn:
            while not stop.is_set():
                next_id += 1
                try:
                    conn.execute("INSERT INTO public.order_lines VALUES (%s, %s)", (next_id, 1000 + next_id % 5000))
                    written[0] += 1
                except psycopg.errors.ForeignKeyViolation:
                    refused[0] += 1  # its order was already archived: the insert fails, nothing lost

    threads = [threading.Thread(target=writer, args=(first,)) for first in (100_000, 10_000_000)]
    for t in threads:
        t.start()
    try:
        with db.connect() as conn:
            conn.execute("SET lock_timeout = '200ms'")
            source, archive, children = order_children(conn)
            result = move_rows(conn, source, archive, "created_at", datetime(2026, 6, 6, tzinfo=NY),
                               batching=ArchiveBatching(initial_rows=200, min_rows=50, max_rows=400, target_ms=20),
                               max_rows=10**9, children=children)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert result.rows == 5051 and written[0] > 100
    total = db.execute("SELECT (SELECT count(*) FROM public.order_lines) + "
                       "(SELECT count(*) FROM public.order_lines_archive)")[0][0]
    assert total == 100 + written[0]  # every child row written is somewhere
    orphans = db.execute("""
        SELECT (SELECT count(*) FROM public.order_lines_archive l
                WHERE NOT EXISTS (SELECT 1 FROM public.orders_c_archive o WHERE o.id = l.order_id)),
               (SELECT count(*) FROM public.order_lines l
                WHERE NOT EXISTS (SELECT 1 FROM public.orders_c o WHERE o.id = l.order_id))""")
    assert orphans == [(0, 0)]


CHILD_WORKER = """
import sys, time
from datetime import datetime
import psycopg
from maintenance.archive.mover import move_rows
from maintenance.policy.model import ArchiveBatching
from tests.support.archive_worker import order_children

conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("SET lock_timeout = '1s'")
print(conn.info.backend_pid, flush=True)
source, archive, children = order_children(conn)
move_rows(conn, source, archive, "created_at", datetime.fromisoformat(sys.argv[2]),
          batching=ArchiveBatching(initial_rows=100, min_rows=50, max_rows=100, target_ms=5),
          max_rows=10**9, progress=lambda *_: time.sleep(0.01), children=children)
print("done", flush=True)
"""


def test_a_move_with_children_killed_at_any_point_loses_and_duplicates_nothing(schema):
    import os
    import random
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    db = schema
    db.script("""
        INSERT INTO public.orders_c SELECT g, timestamptz '2025-12-01' FROM generate_series(1000, 9000) g;
        INSERT INTO public.order_lines SELECT 100000 + g, 1000 + g % 8000 FROM generate_series(1, 16000) g;
        INSERT INTO public.order_tags SELECT 100000 + g, 1000 + g % 8000 FROM generate_series(1, 8000) g""")
    originals = {t: rows(db, f"public.{t}") for t in ("orders_c", "order_lines", "order_tags")}
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'plugins'}{os.pathsep}{ROOT}"}
    args = [sys.executable, "-c", CHILD_WORKER, db.dsn, "2026-06-06T04:00:00+00:00"]

    def each_row_once():
        for table, before in originals.items():
            after = rows(db, f"public.{table}") + (rows(db, f"public.{table}_archive")
                                                   if db.execute("SELECT to_regclass(%s)", (f"public.{table}_archive",))
                                                   != [(None,)] else [])
            assert sorted(after) == before, f"{table}: rows lost or duplicated"

    rng, killed = random.Random(5), 0
    for _ in range(8):
        worker = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        worker.stdout.readline()
        time.sleep(rng.uniform(0.1, 0.5))
        worker.send_signal(signal.SIGKILL)
        killed += worker.wait(timeout=30) != 0
        each_row_once()
    assert killed >= 6
    subprocess.run(args, env=env, check=True, cwd=ROOT, timeout=300, capture_output=True)
    each_row_once()
    assert db.execute("SELECT count(*) FROM public.orders_c_archive") == [(8051,)]
    assert db.execute("SELECT count(*) FROM public.order_lines l WHERE NOT EXISTS "
                      "(SELECT 1 FROM public.orders_c o WHERE o.id = l.order_id)") == [(0,)]
