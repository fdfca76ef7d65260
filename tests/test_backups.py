"""Backups against real pg_dump, pg_restore and a moto S3 server over HTTP.

Each bad-backup case starts from a good backup made by the project's own code and
breaks one thing, then checks that verification or the restore test names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from maintenance import clock, s3files
from maintenance.backups import content, store, tools
from maintenance.backups.produce import produce
from maintenance.backups.restore import SCRATCH_PREFIX, restore_test
from maintenance.backups.verify import verify
from maintenance.policy.model import SmokeQuery
from maintenance.postgres.conninfo import libpq_env
from psycopg import sql

from tests.conftest import empty_bucket
from tests.support.airflow_runs import run_dag

ODD_SCHEMA, ODD_TABLE = 'Odd "Schema"', "Mixed Case table"


@pytest.fixture(scope="module")
def source(platform_db):
    ident = sql.Identifier(ODD_SCHEMA, ODD_TABLE).as_string(None)
    platform_db.script(f"""
        INSERT INTO learning_sessions (student_id, career_id, created_at, ended_at, duration_s, payload)
        SELECT g % 500, g % 40, timestamptz '2026-01-01 08:00+00' + g * interval '37 seconds',
               CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01 09:00+00' END, g % 3600,
               jsonb_build_object('step', g, 'score', g * 0.1)
        FROM generate_series(1, 20000) g;
        INSERT INTO pathiq_metrics (student_id, metric, value, "timestamp")
        SELECT g % 300, 'focus', g / 7.0, timestamptz '2026-02-01 00:00+00' + g * interval '1 minute'
        FROM generate_series(1, 5000) g;
        CREATE SCHEMA {sql.Identifier(ODD_SCHEMA).as_string(None)};
        CREATE TABLE {ident} (id int PRIMARY KEY, "Blob" bytea, at timestamptz, f float8, span interval);
        INSERT INTO {ident} SELECT g, decode(md5(g::text), 'hex'), now() - g * interval '1 hour', g / 3.0,
               g * interval '90 minutes' FROM generate_series(1, 300) g;
        INSERT INTO {ident} VALUES (0, NULL, NULL, NULL, NULL)""")
    return platform_db


def conninfo(db, dbname=None) -> dict:
    return psycopg.conninfo.conninfo_to_dict(db.server.dsn(dbname or db.dbname)) | {"password": ""}


@pytest.fixture
def bucket(s3):
    name = f"backups-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def make_backup(db, s3, bucket, day=date(2026, 11, 20), conn_id="platform_db") -> tuple[store.StoredBackup, dict]:
    key = store.dump_key("postgres/", conn_id, day, db.dbname)
    manifest = produce(conninfo(db), s3, bucket=bucket, key=key, conn_id=conn_id, compression=6, jobs=2)
    backup = next(b for b in store.list_backups(s3, bucket, "postgres/", conn_id) if b.key == key)
    return backup, manifest


def pg_restore_path(db) -> str:
    return tools.binary("pg_restore", 15)


def run_verify(db, s3, bucket, now=None):
    return verify(s3, bucket=bucket, prefix="postgres/", conn_id="platform_db",
                  now=now or datetime.now(UTC), max_age_hours=26, max_size_drop_fraction=0.2,
                  pg_restore=pg_restore_path(db), env=libpq_env(conninfo(db)))


def run_restore(db, s3, backup, **kwargs):
    scratch = f"{SCRATCH_PREFIX}t_{uuid.uuid4().hex[:6]}"
    return restore_test(s3, backup, target=conninfo(db, "postgres"), scratch=scratch, jobs=2, now=datetime.now(UTC),
                        **kwargs)


def scratch_databases(db) -> list:
    return db.execute("SELECT datname FROM pg_database WHERE datname LIKE 'maint\\_restore\\_%'")


def replace_dump(s3, bucket, backup, path, fix_manifest: bool) -> None:
    """Put another file in the backup's place; optionally make the manifest's SHA-256 and size agree."""
    s3.upload_file(str(path), bucket, backup.key)
    if fix_manifest:
        manifest = store.load_manifest(s3, backup)
        manifest["dump"] |= {"sha256": s3files.sha256_of(path)[0], "bytes": path.stat().st_size}
        s3.put_object(Bucket=bucket, Key=backup.manifest_key, Body=json.dumps(manifest).encode())


def pg_dump_to(db, path, *extra) -> None:
    subprocess.run([tools.binary("pg_dump", 15), "--format=custom", "--file", str(path), *extra],
                   env=libpq_env(conninfo(db)), check=True)


# --- the manifest --------------------------------------------------------------------------------

def test_manifest_counts_and_checksums_every_table_in_the_dumps_snapshot(source, s3, bucket):
    backup, manifest = make_backup(source, s3, bucket)
    tables = {(t["schema"], t["table"]): t for t in manifest["tables"]}
    assert tables[("public", "learning_sessions")]["rows"] == 20000
    assert tables[(ODD_SCHEMA, ODD_TABLE)]["rows"] == 301
    assert manifest["dump"]["bytes"] == backup.size
    assert manifest["server_version"].startswith("15")
    with source.connect() as conn:
        content.prepare(conn)
        assert content.fingerprint(conn, ODD_SCHEMA, ODD_TABLE) == {
            "rows": 301, "checksum": tables[(ODD_SCHEMA, ODD_TABLE)]["checksum"]}


def test_rows_written_during_the_dump_are_in_neither_the_dump_nor_the_manifest(source, s3, bucket, monkeypatch):
    """Dump and manifest share one snapshot: a write landing meanwhile changes neither."""
    from maintenance.backups import produce as produce_module

    real = content.fingerprint_all

    def write_then_fingerprint(connect, relations, jobs):
        source.execute("INSERT INTO pathiq_metrics (student_id, metric, value, \"timestamp\") "
                       "VALUES (1, 'late', 1, now())")
        return real(connect, relations, jobs)

    monkeypatch.setattr(produce_module.content, "fingerprint_all", write_then_fingerprint)
    backup, manifest = make_backup(source, s3, bucket)
    monkeypatch.undo()
    rows = {t["table"]: t["rows"] for t in manifest["tables"]}
    assert rows["pathiq_metrics"] == source.execute("SELECT count(*) FROM pathiq_metrics")[0][0] - 1
    result = run_restore(source, s3, backup)  # the restored copy agrees with the manifest
    assert result.problems == []
    source.execute("DELETE FROM pathiq_metrics WHERE metric = 'late'")


# --- daily verification --------------------------------------------------------------------------

def test_a_good_backup_passes_every_check(source, s3, bucket):
    make_backup(source, s3, bucket, date(2026, 11, 19))
    make_backup(source, s3, bucket, date(2026, 11, 20))
    report = run_verify(source, s3, bucket)
    assert {c.name: c.ok for c in report.checks} == {
        "exists": True, "age": True, "size_trend": True, "sha256": True, "table_of_contents": True,
        "data_readable": True}


def test_no_backup_at_all_fails_naming_the_place(source, s3, bucket):
    report = run_verify(source, s3, bucket)
    assert [c.name for c in report.failed] == ["exists"]
    assert f"s3://{bucket}/postgres/platform_db/" in report.message()


def test_a_truncated_dump_fails_its_checksum_and_table_of_contents(source, s3, bucket, tmp_path):
    backup, _ = make_backup(source, s3, bucket)
    whole = store.download(s3, backup, tmp_path / "whole")
    (tmp_path / "cut").write_bytes(whole.read_bytes()[: backup.size // 3])
    replace_dump(s3, bucket, backup, tmp_path / "cut", fix_manifest=False)
    report = run_verify(source, s3, bucket)
    failed = {c.name: c.detail for c in report.failed}
    assert set(failed) == {"sha256", "data_readable"}  # the table of contents, at the head, survives
    assert f"the manifest says {backup.size:,} bytes" in failed["sha256"]
    assert "pg_restore (reading every block) failed" in failed["data_readable"]


def test_a_wrong_checksum_fails_with_both_figures(source, s3, bucket):
    backup, manifest = make_backup(source, s3, bucket)
    manifest["dump"]["sha256"] = "0" * 64
    s3.put_object(Bucket=bucket, Key=backup.manifest_key, Body=json.dumps(manifest).encode())
    report = run_verify(source, s3, bucket)
    assert [c.name for c in report.failed] == ["sha256"]
    assert "the manifest says" in report.message() and "0000000000000000..." in report.message()


def test_a_stale_backup_fails_its_age(source, s3, bucket):
    make_backup(source, s3, bucket)
    report = run_verify(source, s3, bucket, now=datetime.now(UTC) + timedelta(hours=30))
    assert [c.name for c in report.failed] == ["age"]
    assert "(limit 26 h)" in report.message()


def test_a_backup_that_shrank_fails_the_size_trend(source, s3, bucket, tmp_path):
    make_backup(source, s3, bucket, date(2026, 11, 19))
    small = tmp_path / "small"
    pg_dump_to(source, small, "--exclude-table-data=public.learning_sessions")
    s3.upload_file(str(small), bucket, store.dump_key("postgres/", "platform_db", date(2026, 11, 20), "x"))
    report = run_verify(source, s3, bucket)
    assert [c.name for c in report.failed] == ["size_trend"]
    assert "a fall of more than 20% fails" in report.message()


def test_a_dump_missing_a_table_fails_verification_and_the_restore_test(source, s3, bucket, tmp_path):
    backup, _ = make_backup(source, s3, bucket)
    partial = tmp_path / "partial"
    pg_dump_to(source, partial, "--exclude-table=public.pathiq_metrics")
    replace_dump(s3, bucket, backup, partial, fix_manifest=True)
    report = run_verify(source, s3, bucket)
    assert [c.name for c in report.failed] == ["table_of_contents"]
    assert "public.pathiq_metrics" in report.message()
    result = run_restore(source, s3, backup)
    assert "table public.pathiq_metrics: missing from the restored copy" in result.problems
    assert scratch_databases(source) == []


def test_rows_altered_after_the_manifest_fail_the_restore_test(source, s3, bucket, tmp_path):
    backup, _ = make_backup(source, s3, bucket)
    source.execute("UPDATE career_selections SET status = 'x' WHERE false")
    source.execute("UPDATE learning_sessions SET duration_s = duration_s + 1 WHERE id = 17")
    try:
        altered = tmp_path / "altered"
        pg_dump_to(source, altered)
        replace_dump(s3, bucket, backup, altered, fix_manifest=True)
    finally:
        source.execute("UPDATE learning_sessions SET duration_s = duration_s - 1 WHERE id = 17")
    assert run_verify(source, s3, bucket).failed == []  # whole and readable: only a restore can tell
    result = run_restore(source, s3, backup)
    assert result.problems == ["table public.learning_sessions: content checksum differs from the manifest "
                               "(20000 rows)"]
    assert scratch_databases(source) == []


# --- the restore test -----------------------------------------------------------------------------

def test_restore_test_checks_contents_and_indexes_then_drops_the_scratch_database(source, s3, bucket):
    backup, manifest = make_backup(source, s3, bucket)
    result = run_restore(source, s3, backup)
    assert result.problems == [] and result.not_run == []
    assert result.tables_checked == len(manifest["tables"])
    assert result.indexes_checked >= 8  # primary keys and the platform's btree indexes, amcheck'ed
    assert result.restore_seconds > 0 and result.backup_age_hours < 1
    assert scratch_databases(source) == []


def test_a_restore_test_never_drops_the_scratch_database_of_one_still_running(source, s3, bucket):
    """Two restore tests at once: the second cleans up only what runs that are over left behind."""
    import threading

    import psycopg
    from maintenance.backups import restore

    backup, _ = make_backup(source, s3, bucket)
    running = psycopg.connect(source.server.dsn("postgres"), autocommit=True)  # another run, alive
    restore.hold_scratch(running, "maint_restore_other_live")
    running.execute("CREATE DATABASE maint_restore_other_live")
    with psycopg.connect(source.server.dsn("postgres"), autocommit=True) as dead:  # a run killed midway
        restore.hold_scratch(dead, "maint_restore_other_dead")
        dead.execute("CREATE DATABASE maint_restore_other_dead")
    try:
        result = run_restore(source, s3, backup)
        assert result.problems == []
        assert scratch_databases(source) == [("maint_restore_other_live",)]  # the dead run's is gone
    finally:
        threading.Thread(target=running.close).start()
    with psycopg.connect(source.server.dsn("postgres"), autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while restore.drop_leftovers(admin) != ["maint_restore_other_live"]:  # its run is over now
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert scratch_databases(source) == []


def test_a_corrupt_restored_index_is_found_by_amcheck(source, s3, bucket, monkeypatch):
    """amcheck must really run: break an index's order in the restored copy before the check."""
    from maintenance.backups import restore as restore_module

    backup, _ = make_backup(source, s3, bucket)
    real = restore_module._amcheck

    def corrupt_then_check(target, jobs):
        with psycopg.connect(**target, autocommit=True) as conn:
            # An index built ascending whose catalog entry then claims descending order:
            # its pages now break the order the index promises, which bt_index_check detects.
            conn.execute("CREATE TABLE broken (v int)")
            conn.execute("INSERT INTO broken SELECT g FROM generate_series(1, 5000) g")
            conn.execute("CREATE INDEX broken_idx ON broken (v)")
            conn.execute("UPDATE pg_index SET indoption = '1'::int2vector WHERE indexrelid = 'broken_idx'::regclass")
        return real(target, jobs)

    monkeypatch.setattr(restore_module, "_amcheck", corrupt_then_check)
    result = run_restore(source, s3, backup)
    assert any(p.startswith("index broken_idx: amcheck found") for p in result.problems), result.problems
    assert scratch_databases(source) == []


def test_the_scratch_database_goes_when_pg_restore_fails(source, s3, bucket, tmp_path):
    backup, _ = make_backup(source, s3, bucket)
    (tmp_path / "junk").write_bytes(b"PGDMP" + b"\0" * 4096)
    replace_dump(s3, bucket, backup, tmp_path / "junk", fix_manifest=True)
    result = run_restore(source, s3, backup)
    assert result.problems and result.problems[0].startswith("pg_restore failed")
    assert scratch_databases(source) == []


def test_a_backup_made_elsewhere_is_verified_with_what_can_be_checked(source, s3, bucket, tmp_path):
    foreign = tmp_path / "foreign"
    pg_dump_to(source, foreign)
    s3.upload_file(str(foreign), bucket, "postgres/platform_db/nightly/platform.pgdump")
    report = run_verify(source, s3, bucket)
    assert report.failed == []
    assert {c.name for c in report.not_run} == {"sha256", "size_trend"}
    backup = store.list_backups(s3, bucket, "postgres/", "platform_db")[-1]
    result = run_restore(source, s3, backup)
    assert result.problems == []
    assert result.not_run == ["checksums: no manifest beside the dump (made elsewhere)"]
    assert result.tables_checked >= 4 and result.indexes_checked >= 8


def test_drill_smoke_queries_run_on_the_restored_copy(source, s3, bucket):
    backup, _ = make_backup(source, s3, bucket)
    smoke = [SmokeQuery(name="sessions", sql="SELECT count(*) FROM learning_sessions", at_least=20000),
             SmokeQuery(name="selections today", sql="SELECT count(*) FROM career_selections "
                        "WHERE selected_at > now() - interval '1 day'", at_least=1)]
    result = run_restore(source, s3, backup, smoke_queries=smoke)
    assert [s["ok"] for s in result.smoke] == [True, False]
    assert result.problems == ["smoke query 'selections today' returned 0.0, expected at least 1"]


# --- through the DAGs -----------------------------------------------------------------------------

@pytest.fixture
def dag_env(source, s3, airflow_db, slack, monkeypatch):
    """The policy's backup bucket, emptied, so the DAGs see only this test's backups."""
    empty_bucket(s3, "pathfinity-backups")
    return "pathfinity-backups"


def test_daily_backup_then_verification_and_a_rerun_makes_no_second_backup(source, s3, dag_env, monkeypatch):
    day = datetime(2026, 11, 24, 6, tzinfo=UTC)
    first = run_dag("maintenance_daily", day, mark_success_pattern=r"^((plan_)?db_statistics|cache_optimization)$")
    assert first.states["backup"] == "success" and first.states["verify_backup"] == "success", first.states
    assert first.xcom("backup")["key"] == f"postgres/platform_db/2026-11-24/{source.dbname}.dump"
    checks = {c["name"]: c["ok"] for c in first.xcom("verify_backup")["checks"]}
    assert checks == {"exists": True, "age": True, "size_trend": None, "sha256": True, "table_of_contents": True,
                      "data_readable": True}
    again = run_dag("maintenance_daily", day, mark_success_pattern=r"^((plan_)?db_statistics|cache_optimization)$")
    assert again.xcom("backup")["existing"] is True
    assert len(store.list_backups(s3, dag_env, "postgres/", "platform_db")) == 1


def test_backups_run_while_the_ledger_is_down_and_their_records_arrive_when_it_is_back(
        source, s3, dag_env, slack, tmp_path, monkeypatch):
    """Critical work does not depend on the ledger: with its database unreachable, the backup and
    its verification run and spool their records; the next task that reaches the ledger writes
    them under their own run."""
    from devtools import servers
    from tests.conftest import set_conn, use_policy

    set_conn("ledger_down", {"conn_type": "postgres", "host": "127.0.0.1", "port": servers.free_port(),
                             "login": "postgres", "schema": "ledger", "extra": {"connect_timeout": "2"}})
    spool = tmp_path / "spool"
    use_policy(tmp_path, monkeypatch, connections={"ledger": "ledger_down"}, ledger={"spool_dir": str(spool)})
    day = datetime(2026, 11, 23, 6, tzinfo=UTC)
    others = r"^((plan_)?db_statistics|cache_optimization|log_rotation|security_scan)$"
    down = run_dag("maintenance_daily", day, mark_success_pattern=others)
    assert down.states["backup"] == "success" and down.states["verify_backup"] == "success", down.states
    assert len(store.list_backups(s3, dag_env, "postgres/", "platform_db")) == 1
    spooled = sorted(json.loads(p.read_text().splitlines()[0])["args"][0]["task_id"] for p in spool.glob("*.jsonl"))
    assert spooled == ["backup", "verify_backup"]

    use_policy(tmp_path, monkeypatch, connections={"ledger": "platform_db"}, ledger={"spool_dir": str(spool)})
    run_dag("maintenance_daily", day + timedelta(days=1),
            mark_success_pattern=r"^((plan_)?db_statistics|cache_optimization|security_scan|backup|verify_backup)$")
    assert list(spool.iterdir()) == []  # written, then removed
    runs = source.execute("SELECT task_id, outcome FROM maintenance.task_runs WHERE run_id = %s ORDER BY 1",
                          (down.run.run_id,))
    assert runs == [("backup", "done"), ("verify_backup", "done")]
    actions = source.execute("SELECT task_id, action, outcome FROM maintenance.actions WHERE run_id = %s ORDER BY 1",
                             (down.run.run_id,))
    assert ("backup", "pg_dump", "applied") in actions or any(a[0] == "backup" for a in actions)


def test_failed_verification_pages_oncall_and_names_the_check(source, s3, dag_env, slack, monkeypatch):
    make_backup(source, s3, dag_env, date(2026, 11, 1))
    late = datetime.now(UTC) + timedelta(hours=40)
    monkeypatch.setattr(clock, "now", lambda: late)
    result = run_dag("maintenance_daily", datetime(2026, 11, 25, 6, tzinfo=UTC),
                     mark_success_pattern=r"^(backup|(plan_)?db_statistics|cache_optimization)$")
    assert result.states["verify_backup"] == "failed"
    pages = slack.messages("#ops-oncall")
    assert len(pages) == 1 and "verify_backup" in pages[0]["text"]
    findings = source.execute("SELECT check_name, severity, message FROM maintenance.findings WHERE run_id = %s "
                              "AND task_id = 'verify_backup' ORDER BY check_name", (result.run.run_id,))
    assert [f[:2] for f in findings] == [("backup_age", "critical"), ("backup_size_trend", "info")]
    assert "(limit 26 h)" in findings[0][2]
    assert findings[1][2] == "not run: no previous backup to compare with"  # the reports list it


def test_thursday_restore_test_records_durations_in_the_ledger(source, s3, dag_env):
    make_backup(source, s3, dag_env, date(2026, 11, 11))
    thursday = datetime(2026, 11, 12, 6, tzinfo=UTC)  # the second Thursday: a restore test, no drill
    result = run_dag("maintenance_weekly", thursday, {"theme": "auto"})
    assert result.states["thursday.restore_test"] == "success", result.states
    summary = result.xcom("thursday.restore_test")
    assert summary["drill"] is False and summary["problems"] == []
    metrics = dict(source.execute("SELECT name, value FROM maintenance.metrics WHERE run_id = %s AND "
                                  "system = 'backup'", (result.run.run_id,)))
    assert metrics["restore_seconds"] > 0 and "backup_age_hours" in metrics
    assert scratch_databases(source) == []


def test_first_thursday_runs_the_dr_drill_against_the_rto(source, s3, dag_env):
    make_backup(source, s3, dag_env, date(2026, 12, 2))
    result = run_dag("maintenance_weekly", datetime(2026, 12, 3, 6, tzinfo=UTC), {"theme": "thursday"})
    summary = result.xcom("thursday.restore_test")
    assert summary["drill"] is True and summary["rto_met"] is True, summary
    assert source.execute("SELECT action FROM maintenance.actions WHERE run_id = %s AND system = 'backup'",
                          (result.run.run_id,)) == [("dr_drill",)]


@pytest.fixture(scope="module")
def tls_only(work_dir, tmp_path_factory):
    """A PostgreSQL that accepts only TLS connections (hostssl), as a hardened platform database does."""
    import shutil

    from devtools import servers
    from tests.support.tls import make_cert

    root = work_dir / "pg-tls"
    server = servers.start_postgres(root)
    cert, key = make_cert(tmp_path_factory.mktemp("pgtls"), 30, name="127.0.0.1")
    data = server.datadir
    for src, dst in ((cert, data / "server.crt"), (key, data / "server.key")):
        shutil.copy(src, dst)
        os.chmod(dst, 0o600)
        if server.user:
            shutil.chown(dst, server.user)
    (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
                                      "hostnossl all all 127.0.0.1/32 reject\n")
    with psycopg.connect(server.dsn(), autocommit=True, sslmode="prefer") as admin:
        admin.execute("ALTER SYSTEM SET ssl = on")
        admin.execute("SELECT pg_reload_conf()")
        admin.execute("CREATE DATABASE shop")
    with psycopg.connect(server.dsn("shop"), autocommit=True, sslmode="require") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_repack")
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
        conn.execute("DELETE FROM orders WHERE id % 2 = 0")
    yield server
    server.stop()


def test_every_tool_reaches_a_tls_only_server_with_the_connections_settings(tls_only, s3, bucket, tmp_path):
    """pg_dump, pg_restore and pg_repack take the connection's sslmode (and its other libpq
    settings) from the Airflow connection: over TLS they succeed; told not to use it, refused."""
    from maintenance.policy import load_policy
    from maintenance.postgres import actions
    from maintenance.postgres.conninfo import from_airflow
    from maintenance.postgres.safety import apply_session_limits

    from tests.conftest import set_conn
    from tests.support.tls import make_cert

    set_conn("shop_db", {"conn_type": "postgres", "host": "127.0.0.1", "port": tls_only.port, "login": "postgres",
                         "schema": "shop", "extra": {"sslmode": "require", "application_name": "maintenance",
                                                     "connect_timeout": "5"}})
    info = from_airflow("shop_db")
    assert info["sslmode"] == "require"
    env = libpq_env(info)
    assert (env["PGSSLMODE"], env["PGAPPNAME"], env["PGCONNECT_TIMEOUT"]) == ("require", "maintenance", "5")

    key = store.dump_key("postgres/", "shop_db", date(2026, 11, 20), "shop")
    manifest = produce(info, s3, bucket=bucket, key=key, conn_id="shop_db", compression=6, jobs=1)
    assert [(t["schema"], t["table"]) for t in manifest["tables"]] == [("public", "orders")]
    backup = next(b for b in store.list_backups(s3, bucket, "postgres/", "shop_db") if b.key == key)
    scratch = f"{SCRATCH_PREFIX}tls_{uuid.uuid4().hex[:6]}"
    restored = restore_test(s3, backup, target=info | {"dbname": "postgres"}, scratch=scratch, jobs=1,
                            now=datetime.now(UTC))
    assert restored.problems == [], restored.problems
    with psycopg.connect(**info, autocommit=True) as conn:
        apply_session_limits(conn, load_policy().postgres.safety)
        repacked = actions.repack(conn, "public", "orders", load_policy().postgres.safety, conninfo=info)
    assert repacked.bytes_after < repacked.bytes_before

    clear = info | {"sslmode": "disable"}  # the same tools, told not to use TLS: the server refuses them
    with pytest.raises(Exception, match=r"no encryption|SSL off|rejects connection"):
        produce(clear, s3, bucket=bucket, key=key + ".clear", conn_id="shop_db", compression=6, jobs=1)
    # Certificate checks reach the tools too: the server's own certificate as root passes, another
    # one is refused (a tool that ignored the connection's settings would connect unchecked).
    right, wrong = tls_only.datadir.parent / "root.crt", tls_only.datadir.parent / "other.crt"
    right.write_bytes((tls_only.datadir / "server.crt").read_bytes())
    wrong.write_bytes(make_cert(tmp_path, 30, name="other.test")[0].read_bytes())
    produce(info | {"sslmode": "verify-ca", "sslrootcert": str(right)}, s3, bucket=bucket, key=key + ".ca",
            conn_id="shop_db", compression=6, jobs=1)
    with pytest.raises(Exception, match="certificate verify failed"):
        produce(info | {"sslmode": "verify-ca", "sslrootcert": str(wrong)}, s3, bucket=bucket, key=key + ".bad",
                conn_id="shop_db", compression=6, jobs=1)
    # ...and the command-line tools themselves, which read them from the environment libpq_env makes.
    for tool in ([tools.binary("pg_dump", 15), "--schema-only"], ["pg_repack", "--dry-run", "--table", "orders"]):
        for root, ok in ((right, True), (wrong, False)):
            done = subprocess.run(tool, env=libpq_env(info | {"sslmode": "verify-ca", "sslrootcert": str(root)}),
                                  capture_output=True, text=True, timeout=60, check=False)
            assert (done.returncode == 0) is ok, (tool[0], root.name, done.stderr)
            assert ok or "certificate verify failed" in done.stderr
