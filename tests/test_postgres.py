"""PostgreSQL maintenance against a real server with bloat made on purpose."""

import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from maintenance import clock
from maintenance.policy import load_policy
from maintenance.policy.model import UnusedIndexRules
from maintenance.postgres import actions, bloat, review
from maintenance.postgres.plan import Capabilities, plan_debloat, plan_reindex
from maintenance.postgres.safety import LockBudgetExceeded, apply_session_limits, run_guarded

from tests.support.airflow_runs import BACKUP_TASKS, run_dag
from tests.support.load import active_users, quick_load_policy

NY = ZoneInfo("America/New_York")
ODD_SCHEMA = 'Sales "Data"'
ODD_TABLE = 'Order Lines "2026"'
THRESHOLDS = load_policy().postgres.thresholds
SAFETY = load_policy().postgres.safety.model_copy(update={"lock_timeout_ms": 200, "lock_retries": 2,
                                                          "lock_retry_backoff_s": 0.05})


@pytest.fixture(scope="module")
def db(platform_db):
    platform_db.script(f"""
        CREATE EXTENSION IF NOT EXISTS pgstattuple;
        CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
        CREATE EXTENSION IF NOT EXISTS pg_repack;
        -- What these tests measure (dead tuples, statistics' times, bloat) only they may change:
        -- autovacuum, which the shared server runs, is off for each table they look at.
        ALTER TABLE career_selections SET (autovacuum_enabled = false);
        -- A table left 60% bloated by a delete, statistics fresh.
        CREATE TABLE bloated (id bigint PRIMARY KEY, payload text NOT NULL, n integer NOT NULL)
            WITH (autovacuum_enabled = false);
        INSERT INTO bloated SELECT g, md5(g::text) || md5((g * 7)::text), g % 1000 FROM generate_series(1, 200000) g;
        CREATE INDEX bloated_n_idx ON bloated (n);
        DELETE FROM bloated WHERE id % 10 < 6;
        VACUUM bloated;
        ANALYZE bloated;
        -- A tightly packed table: little to no bloat.
        CREATE TABLE packed (id bigint PRIMARY KEY, v double precision NOT NULL) WITH (autovacuum_enabled = false);
        INSERT INTO packed SELECT g, g FROM generate_series(1, 100000) g;
        ANALYZE packed;
        -- Never analyzed: the estimate must refuse.
        CREATE TABLE unanalyzed (id bigint, v text) WITH (autovacuum_enabled = false);
        INSERT INTO unanalyzed SELECT g, g::text FROM generate_series(1, 50000) g;
        -- Identifiers with quotes, spaces and mixed case.
        CREATE SCHEMA "{ODD_SCHEMA.replace('"', '""')}";
        CREATE TABLE "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}"
            (id bigint PRIMARY KEY, "Amount" numeric NOT NULL, note text);
        INSERT INTO "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}"
            SELECT g, g, repeat('x', 80) FROM generate_series(1, 100000) g;
        CREATE INDEX "Amount Idx" ON "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}" ("Amount");
        CREATE INDEX notes_hash ON "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}"
            USING hash (note);
        DELETE FROM "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}" WHERE id % 4 <> 0;
        VACUUM "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}";
        ANALYZE "{ODD_SCHEMA.replace('"', '""')}"."{ODD_TABLE.replace('"', '""')}";
        -- An invalid leftover of a failed concurrent rebuild, and a duplicate index.
        CREATE TABLE dupes (id bigint PRIMARY KEY, k integer);
        INSERT INTO dupes SELECT g, 1 FROM generate_series(1, 1000) g;
        CREATE INDEX dupes_k_a ON dupes (k);
        CREATE INDEX dupes_k_b ON dupes (k);
        ANALYZE dupes;
    """)
    with platform_db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_k_ccnew ON dupes (k)")
    return platform_db


def relations(conn, schemas=("public", ODD_SCHEMA)):
    found = bloat.estimate(conn, list(schemas), THRESHOLDS, datetime.now(UTC))
    bloat.measure(conn, found, 100, 0)
    return {r.qualified: r for r in found}


def test_estimate_tracks_pgstattuple_and_refuses_where_it_cannot_know(db):
    with db.connect() as conn:
        rels = relations(conn)
    table = rels["public.bloated"]
    assert table.measured == pytest.approx(0.6, abs=0.08)
    assert table.estimated == pytest.approx(table.measured, abs=0.08)
    packed = rels["public.packed"]
    assert packed.estimated < 0.1 and packed.measured < 0.1
    assert rels["public.unanalyzed"].refused == "no statistics yet: run ANALYZE"
    assert rels["public.unanalyzed"].estimated is None
    assert rels[f"{ODD_SCHEMA}.notes_hash"].refused == "hash index: only btree bloat can be estimated"
    assert rels["public.dupes_k_ccnew"].refused.startswith("invalid index")
    assert rels["public.bloated_n_idx"].refused.startswith("low-cardinality btree")
    odd = rels[f"{ODD_SCHEMA}.{ODD_TABLE}"]
    assert odd.estimated == pytest.approx(0.75, abs=0.1)


def test_stale_statistics_are_refused(db):
    db.script("CREATE TABLE churn AS SELECT g AS id, g AS v FROM generate_series(1, 20000) g; ANALYZE churn;")
    db.execute("UPDATE churn SET v = v + 1 WHERE id <= 5000")
    with db.connect() as conn:
        rels = relations(conn, ("public",))
    db.execute("DROP TABLE churn")
    assert rels["public.churn"].refused.startswith("statistics stale: ")
    assert rels["public.churn"].estimated is None


def test_plans_follow_the_thresholds(db):
    with db.connect() as conn:
        rels = list(relations(conn).values())
    reindex = {r.qualified: r.action for r in plan_reindex(rels, THRESHOLDS)}
    assert reindex["public.dupes_k_ccnew"] == "drop_invalid"
    assert reindex[f"{ODD_SCHEMA}.Amount Idx"] == "reindex_concurrently"
    outside = {r.qualified: r.action for r in plan_debloat(
        rels, THRESHOLDS, Capabilities(in_window=False, pg_repack=False, vacuum_full_allowed=frozenset()))}
    assert outside["public.bloated"] == "report_only"
    allowed = Capabilities(in_window=True, pg_repack=False, vacuum_full_allowed=frozenset({"public.bloated"}))
    assert {r.qualified: r.action for r in plan_debloat(rels, THRESHOLDS, allowed)}["public.bloated"] == "vacuum_full"
    online = Capabilities(in_window=False, pg_repack=True, vacuum_full_allowed=frozenset())
    assert {r.qualified: r.action for r in plan_debloat(rels, THRESHOLDS, online)}["public.bloated"] == "repack"


def test_reindex_concurrently_shrinks_and_handles_odd_identifiers(db):
    with db.connect() as conn:
        apply_session_limits(conn, SAFETY)
        result = actions.reindex_concurrently(conn, ODD_SCHEMA, "Amount Idx", SAFETY)
        dropped = actions.drop_invalid_index(conn, "public", "dupes_k_ccnew", SAFETY)
    assert result.bytes_after < 0.5 * result.bytes_before
    assert dropped.verified == "dropped"
    assert db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid")[0][0] == 0


def test_lock_budget_gives_up_and_leaves_no_invalid_copy(db):
    holder = psycopg.connect(db.dsn)
    holder.execute("LOCK TABLE packed IN SHARE UPDATE EXCLUSIVE MODE")  # blocks REINDEX, not writers
    try:
        with db.connect() as conn:
            apply_session_limits(conn, SAFETY)
            with pytest.raises(LockBudgetExceeded, match="gave up after 3 attempts"):
                actions.reindex_concurrently(conn, "public", "packed_pkey", SAFETY)
        writer_done = threading.Event()

        def write():
            with db.connect() as w:
                w.execute("INSERT INTO packed VALUES (100001, 1)")
            writer_done.set()

        threading.Thread(target=write).start()
        assert writer_done.wait(10), "a writer was blocked behind the maintenance"
    finally:
        holder.rollback()
        holder.close()
    assert db.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'packed_pkey_ccnew%'")[0][0] == 0


def test_a_killed_reindex_leaves_a_copy_that_the_next_try_drops_by_name(db):
    """REINDEX CONCURRENTLY killed after it built its copy leaves an invalid <index>_ccnew: the next
    try drops exactly that copy before rebuilding, instead of adding a second one."""
    db.script("DROP TABLE IF EXISTS rebuilt; CREATE TABLE rebuilt (id bigint PRIMARY KEY, v int);"
              "INSERT INTO rebuilt SELECT g, g FROM generate_series(1, 50000) g;"
              "CREATE INDEX rebuilt_v_idx ON rebuilt (v);"
              "CREATE INDEX rebuilt_v_idx_ccnew_other ON rebuilt (v, id)")  # valid, and not a copy of it
    try:
        holder = psycopg.connect(db.dsn)
        holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        holder.execute("SELECT count(*) FROM rebuilt")  # an old snapshot the rebuild must wait out
        victim = db.connect()
        pid = victim.info.backend_pid
        threading.Thread(target=lambda: victim.execute("REINDEX INDEX CONCURRENTLY rebuilt_v_idx"),
                         daemon=True).start()
        try:
            deadline = time.monotonic() + 20
            while not db.execute("SELECT 1 FROM pg_stat_progress_create_index WHERE pid = %s AND phase LIKE "
                                 "'waiting for%%'", (pid,)):
                assert time.monotonic() < deadline, "the rebuild did not reach its wait"
                time.sleep(0.05)
            with db.connect() as conn, pytest.raises(RuntimeError, match=f"under way in session {pid}"):
                actions.drop_rebuild_leftovers(conn, "public", "rebuilt_v_idx")  # not while it runs
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the try is killed mid-rebuild
        finally:
            holder.rollback()
            holder.close()
        deadline = time.monotonic() + 10
        while db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        invalid = ("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                   "WHERE NOT i.indisvalid AND i.indrelid = 'rebuilt'::regclass")
        (left_behind,) = db.execute(invalid)
        assert left_behind[0] in ("rebuilt_v_idx_ccnew", "rebuilt_v_idx_ccold")  # before or after the swap
        with db.connect() as conn:
            apply_session_limits(conn, SAFETY)
            result = actions.reindex_concurrently(conn, "public", "rebuilt_v_idx", SAFETY)
        assert result.verified == "index valid"
        assert db.execute(invalid) == []
        names = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'rebuilt'")}
        assert names == {"rebuilt_pkey", "rebuilt_v_idx", "rebuilt_v_idx_ccnew_other"}
    finally:
        db.execute("DROP TABLE IF EXISTS rebuilt")


def conninfo_of(db) -> dict:
    return {"host": "127.0.0.1", "port": db.server.port, "user": "postgres", "password": None, "dbname": db.dbname}


def blocked_writer(db, table: str, key: int) -> float:
    """How long one single-row write to ``table`` takes now (seconds)."""
    started = time.perf_counter()
    with db.connect() as w:
        w.execute(psycopg.sql.SQL("UPDATE {} SET n = n WHERE id = %s").format(psycopg.sql.Identifier(table)), (key,))
    return time.perf_counter() - started


def test_an_exclusive_step_is_not_even_tried_behind_a_long_transaction(db):
    # A transaction that read the table half a second ago still holds its lock: VACUUM FULL and
    # pg_repack would queue behind it, and every writer behind them. They give up instead.
    holder = psycopg.connect(db.dsn)
    holder.execute("SELECT count(*) FROM bloated WHERE id < 10")
    time.sleep(0.3)
    writes = []
    try:
        with db.connect() as conn:
            apply_session_limits(conn, SAFETY)
            filenode = conn.execute("SELECT pg_relation_filenode('bloated')").fetchone()[0]
            writer = threading.Thread(target=lambda: [writes.append(blocked_writer(db, "bloated", 5))
                                                      for _ in range(10)])
            writer.start()
            with pytest.raises(LockBudgetExceeded, match="not tried: a long transaction holds a lock on the table"):
                actions.vacuum_full(conn, "public", "bloated", SAFETY)
            with pytest.raises(LockBudgetExceeded, match="not tried"):
                actions.repack(conn, "public", "bloated", SAFETY, conninfo=conninfo_of(db))
            writer.join()
            assert conn.execute("SELECT pg_relation_filenode('bloated')").fetchone()[0] == filenode  # untouched
    finally:
        holder.rollback()
        holder.close()
    assert max(writes) < 0.1, writes  # no writer queued behind a lock request


def test_a_repack_that_gave_up_waiting_is_not_taken_for_done(db, monkeypatch):
    # When a lock holder appears only after the check, pg_repack itself gives up waiting, says
    # so and exits 0 with the table as it was: that is an attempt without the lock, not a repack.
    monkeypatch.setattr(actions, "long_lock_holders", lambda *args: [])
    holder = psycopg.connect(db.dsn)
    holder.execute("SELECT count(*) FROM bloated WHERE id < 10")
    try:
        with db.connect() as conn:
            apply_session_limits(conn, SAFETY)
            with pytest.raises(LockBudgetExceeded, match="pg_repack did not get its lock in time"):
                actions.repack(conn, "public", "bloated", SAFETY.model_copy(update={"lock_retries": 0}),
                               conninfo=conninfo_of(db))
    finally:
        holder.rollback()
        holder.close()


def test_pg_repack_sessions_run_with_the_policys_session_settings(db):
    # pg_repack copies the table and builds its indexes in sessions of its own: they must get
    # the policy's memory, no parallel workers and its VACUUM pacing, not the server's defaults
    # (2 workers, no pacing here). An event trigger notes the settings of every session that
    # runs DDL during the repack.
    db.script("""
        CREATE TABLE repack_probe (id bigint PRIMARY KEY, v text NOT NULL);
        INSERT INTO repack_probe SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
        DELETE FROM repack_probe WHERE id % 2 = 0;
        CREATE TABLE repack_sessions (app text, workers text, mem text, pace text);
        CREATE FUNCTION note_ddl_session() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN
            INSERT INTO public.repack_sessions VALUES (current_setting('application_name'),
                current_setting('max_parallel_maintenance_workers'), current_setting('maintenance_work_mem'),
                current_setting('vacuum_cost_delay') || ' / ' || current_setting('vacuum_cost_limit')); END $$;
        CREATE EVENT TRIGGER note_ddl_session ON ddl_command_end EXECUTE FUNCTION note_ddl_session();
    """)
    try:
        assert db.execute("SHOW max_parallel_maintenance_workers")[0][0] != "0"
        assert db.execute("SHOW vacuum_cost_delay")[0][0] == "0"
        with db.connect() as conn:
            apply_session_limits(conn, SAFETY)
            result = actions.repack(conn, "public", "repack_probe", SAFETY, conninfo=conninfo_of(db))
        assert result.bytes_after < result.bytes_before
        sessions = set(db.execute("SELECT app, workers, mem, pace FROM repack_sessions"))
        assert sessions == {("pg_repack", "0", SAFETY.maintenance_work_mem, "2ms / 200")}
    finally:
        db.script("DROP EVENT TRIGGER note_ddl_session; DROP FUNCTION note_ddl_session(); "
                  "DROP TABLE repack_probe, repack_sessions")


def test_run_guarded_retries_with_backoff():
    pauses = []

    class Conn:
        calls = 0

        def execute(self, statement):
            Conn.calls += 1
            if Conn.calls < 3:
                raise psycopg.errors.LockNotAvailable("lock timeout")
            return type("Cur", (), {"rowcount": -1})()

    out = run_guarded(Conn(), psycopg.sql.SQL("ANALYZE"), SAFETY.model_copy(update={"lock_retry_backoff_s": 1}),
                      sleep=pauses.append)
    assert out.attempts == 3 and pauses == [1, 2]


def test_a_paced_vacuum_runs_under_its_own_timeout_then_the_session_gets_its_own_back(db):
    # Paced hard (20 ms after every unit of I/O cost), a VACUUM of a few dozen pages outlasts
    # the 1 s statement timeout every other statement runs under; its own timeout is what bounds it.
    db.execute("DROP TABLE IF EXISTS paced; CREATE TABLE paced (id bigint PRIMARY KEY, v text)"
               " WITH (autovacuum_enabled = false)")
    db.execute("INSERT INTO paced SELECT g, md5(g::text) FROM generate_series(1, 3000) g")
    db.execute("DELETE FROM paced WHERE id % 2 = 0")
    slow = SAFETY.model_copy(update={"statement_timeout_s": 1, "vacuum_cost_delay_ms": 20, "vacuum_cost_limit": 1})
    with db.connect() as conn:
        apply_session_limits(conn, slow)
        done = actions.vacuum_analyze(conn, "public", "paced", slow.model_copy(update={"vacuum_timeout_s": 60}))
        assert done.outcome.seconds > 1
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1s"
        db.execute("DELETE FROM paced WHERE id % 4 = 1")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            actions.vacuum_analyze(conn, "public", "paced", slow.model_copy(update={"vacuum_timeout_s": 1}))
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1s"


def test_the_unused_index_rules_come_from_the_policy(db):
    # An index scanned once, on a table written 2,000 times: used enough for the defaults, unused
    # for a policy that asks more scans of it.
    db.execute("DROP TABLE IF EXISTS scanned_once; CREATE TABLE scanned_once (id bigint PRIMARY KEY, k integer)")
    db.execute("CREATE INDEX scanned_once_k ON scanned_once (k)")
    db.execute("INSERT INTO scanned_once SELECT g, g FROM generate_series(1, 2000) g")
    with db.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT * FROM scanned_once WHERE k = 7").fetchall()
        conn.execute("SELECT pg_stat_force_next_flush()")
    with db.connect() as conn:
        def unused(**rules):
            found = review.unused_indexes(conn, ["public"], UnusedIndexRules(**rules))
            return {u["target"]: u["why"] for u in found}.get("public.scanned_once_k")

        assert unused() is None
        assert unused(writes_per_scan=1000) == "1 scans against 2000 writes: it costs more than it serves"
        assert unused(writes_per_scan=1000, max_scans_for_writes=1) is None
        assert unused(large_bytes=0, max_scans_for_large=2).endswith("MB and only 1 scans")


def test_review_finds_duplicates_invalid_unused_and_slow(db):
    db.execute("SELECT pg_stat_statements_reset()")
    db.execute("SELECT pg_sleep(0.05)")
    with db.connect() as conn:
        assert [d["duplicates"] for d in review.duplicate_indexes(conn, ["public"])] == [["dupes_k_a", "dupes_k_b"]]
        unused = review.unused_indexes(conn, ["public"], UnusedIndexRules())
        assert {u["target"] for u in unused} >= {"public.dupes_k_a"}
        slow = review.slow_queries(conn, 20)
        assert any("pg_sleep" in q["query"] for q in slow)
        assert all(w["headroom_pct"] > 90 for w in review.wraparound(conn))
        largest = review.largest_tables(conn, ["public"])
        assert largest[0]["target"] == "public.bloated" and 0 < largest[0]["index_share"] < 1


def test_a_partitioned_table_counts_as_the_sum_of_its_partitions_among_the_largest(db):
    db.script("""
        CREATE TABLE parted (id bigint, note text) PARTITION BY RANGE (id);
        CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (50000);
        CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (50000) TO (100000);
        CREATE INDEX ON parted (id);
        INSERT INTO parted SELECT g, repeat(md5(g::text), 4) FROM generate_series(0, 99999) g;""")
    try:
        with db.connect() as conn:
            largest = {t["target"]: t for t in review.largest_tables(conn, ["public"], limit=1000)}
        parts = db.execute("SELECT sum(pg_total_relation_size(c))::bigint, sum(pg_indexes_size(c))::bigint "
                           "FROM unnest(ARRAY['parted_low'::regclass, 'parted_high'::regclass]) c")[0]
        assert largest["public.parted"]["total_bytes"] == parts[0] > 0
        assert largest["public.parted"]["index_share"] == parts[1] / parts[0]
        assert largest["public.parted"]["partitions"] == 2
        assert not {"public.parted_low", "public.parted_high"} & set(largest)
        assert largest["public.bloated"]["partitions"] == 0
        assert all(type(t["total_bytes"]) is int for t in largest.values())  # not Decimal: it goes to XCom as JSON
    finally:
        db.execute("DROP TABLE parted")


# --- the form's table names -----------------------------------------------------------------------

def test_table_names_resolve_as_postgresql_reads_them_and_unknown_ones_are_refused_by_name(db):
    from maintenance.errors import InputError
    from maintenance.postgres import names

    db.script('CREATE SCHEMA IF NOT EXISTS audit; CREATE TABLE IF NOT EXISTS audit.packed (id int);'
              'CREATE TABLE IF NOT EXISTS public."MixedCase" (id int)')
    schemas = ["public", "audit", ODD_SCHEMA]
    with db.connect() as conn:
        def resolve(*given):
            return names.resolve(conn, schemas, list(given), conn_id="platform_db")

        assert resolve() is None  # an empty field narrows nothing
        assert resolve("career_selections", " public.bloated ", "PUBLIC.Career_Selections") == {
            "public.career_selections", "public.bloated"}
        assert resolve('"MixedCase"', 'public."MixedCase"') == {"public.MixedCase"}
        assert resolve(f'"{ODD_SCHEMA.replace(chr(34), 2 * chr(34))}"."{ODD_TABLE.replace(chr(34), 2 * chr(34))}"') \
            == {f"{ODD_SCHEMA}.{ODD_TABLE}"}
        assert resolve("other_db:public.nowhere", "platform_db:public.packed", "audit.packed") == {
            "public.packed", "audit.packed"}  # a name for another database is that database's business
        cases = {
            "public.does_not_exist": "'public.does_not_exist' is not a table of platform_db in schemas public, audit",
            "carer_selections": "(did you mean public.career_selections?)",
            "packed": "'packed' is in more than one schema: name one of audit.packed, public.packed",
            "mixedcase": "'mixedcase' is not a table",  # unquoted folds to lower case, as in SQL
            "pg_catalog.pg_class": "schema 'pg_catalog' is not one the policy maintains on platform_db",
            'public."unclosed': "is not a table name",
            "a.b.c": "give schema.table",
        }
        for given, expected in cases.items():
            with pytest.raises(InputError, match=r"^tables: ") as caught:
                resolve("bloated", given)
            assert expected in str(caught.value), (given, str(caught.value))
        with pytest.raises(InputError) as caught:  # every bad name at once, not the first only
            resolve("nope_one", "bloated", "nope_two")
        assert "'nope_one'" in str(caught.value) and "'nope_two'" in str(caught.value)
    db.script('DROP TABLE audit.packed; DROP SCHEMA audit; DROP TABLE public."MixedCase"')


# --- through the DAGs ---------------------------------------------------------------------------

@pytest.fixture
def airflow_ready(db, airflow_db, slack):
    return db


def last_analyzed(db, table):
    return db.execute("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = %s", (table,))[0][0]


def test_daily_statistics_dry_run_changes_nothing(airflow_ready, monkeypatch):
    db = airflow_ready
    db.execute("INSERT INTO career_selections (student_id, career_id, selected_at) "
               "SELECT g, 1, now() FROM generate_series(1, 5000) g; DELETE FROM career_selections;")
    before = (last_analyzed(db, "packed"), db.execute("SELECT n_dead_tup FROM pg_stat_user_tables "
                                                      "WHERE relname = 'career_selections'")[0][0])
    day = datetime(2026, 11, 25, 5, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: day)
    result = run_dag("maintenance_daily", day, {"dry_run": True}, mark_success_pattern=BACKUP_TASKS)
    assert result.states["plan_db_statistics"] == "success"
    assert result.states["db_statistics"] == "skipped"  # a dry run plans no step
    after = (last_analyzed(db, "packed"), db.execute("SELECT n_dead_tup FROM pg_stat_user_tables "
                                                     "WHERE relname = 'career_selections'")[0][0])
    assert after == before
    outcomes = db.execute("SELECT DISTINCT outcome FROM maintenance.actions WHERE run_id = %s",
                          (result.run.run_id,))
    assert outcomes == [("planned",)]


def test_daily_statistics_analyze_vacuum_and_refresh(airflow_ready, monkeypatch):
    db = airflow_ready
    db.execute("INSERT INTO career_selections (student_id, career_id, selected_at) "
               "SELECT g, 7, now() FROM generate_series(1, 3000) g")
    day = datetime(2026, 11, 26, 5, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: day)
    result = run_dag("maintenance_daily", day, mark_success_pattern=BACKUP_TASKS)
    assert result.states["db_statistics"] == "success", result.states
    # One task instance per view to refresh; the ANALYZEs together, the small tables' VACUUMs too.
    steps = result.mapped["db_statistics"]
    vacuums = [name for name in steps if name.startswith("vacuum_analyze ")]
    assert len(vacuums) == 1 and "public.career_selections" in vacuums[0], steps
    assert steps[vacuums[0]] == "success", steps
    assert steps["refresh_materialized_view public.career_popularity"] == "success"
    assert any(name.startswith("analyze ") for name in steps)
    assert last_analyzed(db, "packed") is not None
    assert db.execute("SELECT selections FROM career_popularity WHERE career_id = 7")[0][0] == 3000
    rows = dict(db.execute("SELECT target, action FROM maintenance.actions WHERE run_id = %s AND outcome = 'applied'",
                           (result.run.run_id,)))
    assert rows["platform_db:public.career_selections"] == "vacuum_analyze"
    assert rows["platform_db:public.career_popularity"] == "refresh_materialized_view"
    assert rows["platform_db:public.packed"] == "analyze"
    assert f"platform_db:{ODD_SCHEMA}.{ODD_TABLE}" not in rows  # not a schema of the policy


def test_an_unknown_table_in_the_form_fails_the_run_naming_it_without_retries(airflow_ready, monkeypatch, slack):
    db = airflow_ready
    day = datetime(2026, 11, 27, 5, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: day)
    before = last_analyzed(db, "packed")
    result = run_dag("maintenance_daily", day, {"tables": ["career_selections", "public.does_not_exist"]},
                     mark_success_pattern=BACKUP_TASKS)
    assert result.states["plan_db_statistics"] == "failed" and result.states["db_statistics"] == "upstream_failed"
    tries = db.execute("SELECT max(try_number) FROM maintenance.task_runs WHERE run_id = %s "
                       "AND task_id = 'plan_db_statistics'", (result.run.run_id,))
    assert tries == [(1,)]  # the same name would fail again: no retry
    assert last_analyzed(db, "packed") == before
    (message,) = slack.messages("#ops-maintenance")
    assert "'public.does_not_exist' is not a table of platform_db in schemas public" in message["text"]


def test_the_form_narrows_every_per_table_step_including_the_review(airflow_ready, monkeypatch):
    day = datetime(2026, 12, 2, 6, tzinfo=UTC)  # a Wednesday
    monkeypatch.setattr(clock, "now", lambda: day)
    result = run_dag("maintenance_weekly", day, {"tables": ["bloated"], "dry_run": True})
    assert result.states["wednesday.review"] == "success", result.states
    analysed = {r["table"] for r in result.xcom("wednesday.bloat_analysis")["relations"]}
    assert analysed == {"bloated"}
    review_ = result.xcom("wednesday.review")
    assert [t["target"] for t in review_["largest_tables"]] == ["public.bloated"]
    assert all(i["table"] == "bloated" for key in ("unused_indexes", "duplicate_indexes", "invalid_indexes")
               for i in review_[key])
    planned = {r["table"] for r in result.xcom("wednesday.plan_reindex", "summary")["planned"]}
    assert planned <= {"bloated"}


def test_a_step_on_a_table_another_actor_holds_is_skipped_naming_it(airflow_ready, monkeypatch, tmp_path, slack):
    from maintenance.postgres.target_lock import target_lock

    from tests.conftest import use_policy

    db = airflow_ready
    use_policy(tmp_path, monkeypatch, postgres=load_policy().postgres.model_dump() | {
        "safety": load_policy().postgres.safety.model_dump() | {"target_lock_wait_s": 1}})
    day = datetime(2026, 11, 28, 5, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: day)
    with db.connect() as other, target_lock(other, "platform_db:public.career_selections",
                                            holder="maintenance maintenance_daily backfill__y db_statistics[0]",
                                            wait_s=0):
        result = run_dag("maintenance_daily", day, {"tables": ["career_selections", "packed"]},
                         mark_success_pattern=BACKUP_TASKS)
    steps = result.mapped["db_statistics"]
    assert steps["vacuum_analyze public.career_selections"] == "skipped", steps
    assert any(name.startswith("analyze ") and state == "success" for name, state in steps.items())
    reason = db.execute("SELECT error FROM maintenance.actions WHERE run_id = %s AND "
                        "target = 'platform_db:public.career_selections'", (result.run.run_id,))[0][0]
    assert reason.startswith("platform_db:public.career_selections is being maintained by maintenance "
                             "maintenance_daily backfill__y db_statistics[0] (pid ")


def test_monthly_debloat_in_the_window_shrinks_with_pg_repack(airflow_ready, monkeypatch):
    db = airflow_ready
    size_before = db.execute("SELECT pg_total_relation_size('bloated')")[0][0]
    window = datetime(2026, 12, 6, 3, 0, tzinfo=NY)
    monkeypatch.setattr(clock, "now", lambda: window.astimezone(UTC))
    result = run_dag("maintenance_monthly", window, {"dry_run": False, "tables": ["public.bloated"]},
                     mark_success_pattern=r"^(security_audit|compliance|archive|update_review)$")
    assert result.states["debloat"] == "success", result.states
    assert result.mapped["debloat"] == {"repack public.bloated": "success"}
    assert result.xcom("plan_debloat", key="summary")["pg_repack"] is True
    size_after = db.execute("SELECT pg_total_relation_size('bloated')")[0][0]
    assert size_after < 0.6 * size_before
    assert db.execute("SELECT count(*) FROM bloated")[0][0] == 80000


@pytest.fixture
def held_back(airflow_ready, tmp_path, monkeypatch):
    """A bloated table for ``step_probe``'s repack step, a policy that rechecks the load every
    second, and no active user yet."""
    db = airflow_ready
    db.script("""
        DROP TABLE IF EXISTS held_back;
        CREATE TABLE held_back (id bigint PRIMARY KEY, note text NOT NULL) WITH (autovacuum_enabled = false);
        INSERT INTO held_back SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
        DELETE FROM held_back WHERE id % 10 < 6;
        TRUNCATE learning_sessions;""")
    quick_load_policy(tmp_path, monkeypatch, recheck_s=1.0, give_up_s=3.0)
    yield db
    db.execute("TRUNCATE learning_sessions")


def filenode(db, table):
    return db.execute("SELECT pg_relation_filenode(%s::regclass)", (table,))[0][0]


def test_a_heavy_step_waits_while_the_platform_is_busy_then_runs(held_back):
    # The gate looked at the load when the run began; a repack whose turn comes later looks again.
    db, before = held_back, filenode(held_back, "held_back")
    active_users(db, 20)

    held = threading.Event()

    def quiet_once_it_waits():  # the sessions end once the ledger shows the step held back
        for _ in range(600):
            time.sleep(0.1)
            try:
                if db.execute("SELECT count(*) FROM maintenance.task_runs WHERE dag_id = 'step_probe' "
                              "AND outcome = 'waiting' AND summary->>'reason' LIKE 'platform busy: 20 active%'"
                              ) != [(0,)]:
                    held.set()
                    break
            except psycopg.errors.UndefinedTable:  # the step creates the ledger when it first runs
                continue
        db.execute("UPDATE learning_sessions SET ended_at = now()")

    threading.Thread(target=quiet_once_it_waits).start()
    result = run_dag("step_probe", datetime(2026, 12, 6, 8, tzinfo=UTC), {"dry_run": False})
    assert held.is_set()  # the ledger said why it waited
    assert result.reschedules("debloat") >= 1  # waited in reschedule mode, holding no worker slot
    assert result.states["debloat"] == "success"
    assert filenode(db, "held_back") != before  # then repacked
    outcomes = db.execute("SELECT outcome, summary->>'reason' FROM maintenance.task_runs WHERE run_id = %s "
                          "ORDER BY started_at", (result.run.run_id,))
    assert outcomes[-1][0] == "done"
    assert db.execute("SELECT count(*) FROM maintenance.actions WHERE run_id = %s AND outcome = 'applied'",
                      (result.run.run_id,)) == [(1,)]


def test_a_heavy_step_under_load_that_persists_is_skipped_untouched(held_back):
    db, before = held_back, filenode(held_back, "held_back")
    active_users(db, 20)
    result = run_dag("step_probe", datetime(2026, 12, 6, 9, tzinfo=UTC), {"dry_run": False})
    assert result.reschedules("debloat") >= 1
    assert result.states["debloat"] == "skipped" and result.state == "success"  # skipped, not failed
    assert filenode(db, "held_back") == before
    assert "platform busy: 20 active users (> 5)" in result.xcom("debloat", "outcome")
    ((outcome, reason),) = db.execute("SELECT outcome, summary->>'reason' FROM maintenance.task_runs "
                                      "WHERE run_id = %s AND task_id = 'debloat'", (result.run.run_id,))
    assert outcome == "skipped" and "skipped for this run" in reason
    assert db.execute("SELECT count(*) FROM maintenance.actions WHERE run_id = %s", (result.run.run_id,)) == [(0,)]


def test_a_vacuum_full_whose_turn_comes_after_the_window_is_skipped_untouched(held_back, tmp_path, monkeypatch):
    # It waited for the load to drop; by its next try the window had closed: a skip that says
    # why, not a failure, and the table is not locked.
    db, before = held_back, filenode(held_back, "held_back")
    quick_load_policy(tmp_path, monkeypatch, recheck_s=1.0, give_up_s=60.0, vacuum_full_allowed=["public.held_back"])
    instant = [datetime(2026, 12, 6, 5, 59, tzinfo=NY)]  # the window closes at 06:00
    monkeypatch.setattr(clock, "now", lambda: instant[0].astimezone(UTC))
    active_users(db, 20)

    def window_closes_while_it_waits():
        for _ in range(600):
            time.sleep(0.1)
            try:
                if db.execute("SELECT count(*) FROM maintenance.task_runs WHERE dag_id = 'rewrite_probe' "
                              "AND outcome = 'waiting'") != [(0,)]:
                    instant[0] = datetime(2026, 12, 6, 6, 1, tzinfo=NY)
                    break
            except psycopg.errors.UndefinedTable:
                continue
        db.execute("UPDATE learning_sessions SET ended_at = now()")

    threading.Thread(target=window_closes_while_it_waits).start()
    result = run_dag("rewrite_probe", datetime(2026, 12, 6, 10, tzinfo=UTC), {"dry_run": False})
    assert result.reschedules("debloat") >= 1  # it did wait for the load first
    assert result.states["debloat"] == "skipped" and result.state == "success"
    assert filenode(db, "held_back") == before
    assert "the planned window is over: VACUUM FULL of public.held_back not started" in result.xcom(
        "debloat", "outcome")
    outcomes = db.execute("SELECT outcome FROM maintenance.task_runs WHERE run_id = %s ORDER BY started_at",
                          (result.run.run_id,))
    assert outcomes[-1] == ("skipped",)


def test_vacuum_full_only_for_allowed_tables_inside_the_window(airflow_ready, monkeypatch):
    # The rewrite checks again when it runs, not only when it was planned: outside the window,
    # or for a table the policy does not allow, it refuses.
    from maintenance.postgres.operators import PostgresStepOperator

    db = airflow_ready
    db.script("DELETE FROM packed WHERE id % 2 = 0; ANALYZE packed")
    policy = load_policy()
    allowing = policy.model_copy(update={"postgres": policy.postgres.model_copy(
        update={"vacuum_full_allowed": ["public.packed"]})})
    vacuum_full = PostgresStepOperator.vacuum_full_in_window
    with db.connect() as conn:
        apply_session_limits(conn, SAFETY)
        size = db.execute("SELECT pg_total_relation_size('packed')")[0][0]
        monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 6, 9, 0, tzinfo=NY))  # window over at 06:00
        with pytest.raises(RuntimeError, match="the planned window is over"):
            vacuum_full(conn, "public", "packed", SAFETY, policy=allowing)
        monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 6, 3, 0, tzinfo=NY))
        with pytest.raises(RuntimeError, match=r"not in postgres\.vacuum_full_allowed"):
            vacuum_full(conn, "public", "packed", SAFETY, policy=policy)
        assert db.execute("SELECT pg_total_relation_size('packed')")[0][0] == size  # refused: untouched
        result = vacuum_full(conn, "public", "packed", SAFETY, policy=allowing)
    assert result.bytes_after < 0.7 * result.bytes_before


def test_cheap_steps_go_in_batches_and_heavy_ones_alone():
    """2,000 ANALYZEs make a few task instances; a large VACUUM, a rebuild and a refresh one each."""
    from maintenance.policy.postgres import PostgresBatching
    from maintenance.postgres.operators import steps_of

    def rel(name, action, size=8192):
        return bloat.Relation(kind="table", schema="public", name=name, table=name, bytes=size, action=action)

    relations = [rel(f"t{n:04}", "analyze") for n in range(2000)]
    relations += [rel("small_a", "vacuum_analyze"), rel("small_b", "vacuum_analyze"),
                  rel("huge", "vacuum_analyze", 2**30), rel("bloated", "repack"),
                  rel("popularity", "refresh_materialized_view")]
    steps = steps_of(relations, PostgresBatching(tables_per_step=250, small_vacuum_bytes=2**28))
    labels = [s["label"] for s in steps]
    assert labels[:3] == ["vacuum_analyze public.huge", "repack public.bloated",
                          "refresh_materialized_view public.popularity"]
    analyze = [s for s in steps if s["action"] == "analyze"]
    assert len(analyze) == 8 and [len(s["relations"]) for s in analyze] == [250] * 8
    assert analyze[0]["label"] == "analyze tables 1-250 of 2000 (public.t0000 … public.t0249)"
    assert [r["name"] for s in analyze for r in s["relations"]] == [f"t{n:04}" for n in range(2000)]  # each once
    assert "vacuum_analyze public.small_a, public.small_b" in labels
    assert len(steps) == 3 + 8 + 1
    one_each = steps_of(relations[:5], PostgresBatching(tables_per_step=1))
    assert [s["label"] for s in one_each] == [f"analyze public.t{n:04}" for n in range(5)]


def test_a_batch_size_that_is_not_a_number_of_tables_is_refused_naming_it():
    from maintenance.policy.postgres import PostgresBatching
    from maintenance.postgres.operators import PostgresStatisticsOperator
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tables_per_step"):
        PostgresBatching(tables_per_step=0)
    with pytest.raises(ValueError, match="tables_per_step: 0"):
        PostgresStatisticsOperator(task_id="plan", conn_id="platform_db", tables_per_step=0)
