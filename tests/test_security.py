"""Security and compliance against real services: a local OSV-API server, TLS servers with
certificates made here, PostgreSQL and Redis clusters plain and hardened, moto S3."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from maintenance import clock
from maintenance.ledger.store import Ledger, TaskKey
from maintenance.policy import load_policy
from maintenance.policy.model import Control
from maintenance.security import certs, compliance, lockfiles, osv, posture, versions
from maintenance.security.http import ServiceUnavailable

from devtools import servers
from devtools.osv_server import start_osv_server
from tests.support.airflow_runs import run_dag
from tests.support.tls import make_cert, serve_tls

ADVISORIES = {
    "advisories": [
        {"id": "GHSA-lodash-proto", "summary": "Prototype pollution in lodash",
         "database_specific": {"severity": "CRITICAL"},
         "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                       "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]},
        {"id": "PYSEC-2023-74", "summary": "Proxy-Authorization header leak",
         "severity": [{"type": "CVSS_V3", "score": "7.5"}],
         "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}]}]},
        {"id": "GHSA-requests-verify", "summary": "Session verify=False persists",
         "database_specific": {"severity": "MODERATE"},
         "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]}]},
    ],
    "pypi": {"requests": "2.32.3", "django": "5.1.4", "urllib3": "2.2.3"},
    "npm": {"lodash": "4.17.21", "left-pad": "1.3.0", "@scope/widget": "3.0.0"},
}


@pytest.fixture(scope="module")
def osv_server():
    url, server = start_osv_server(ADVISORIES)
    yield url
    server.shutdown()


@pytest.fixture
def lock_files(tmp_path) -> list[Path]:
    npm = tmp_path / "package-lock.json"
    npm.write_text(json.dumps({"name": "web", "lockfileVersion": 3, "packages": {
        "": {"name": "web", "version": "1.0.0"},
        "node_modules/lodash": {"version": "4.17.20"},
        "node_modules/left-pad": {"version": "1.3.0"},
        "node_modules/@scope/widget": {"version": "2.4.1"},
        "node_modules/web-lib": {"link": True, "resolved": "../lib"}}}))
    py = tmp_path / "requirements.lock"
    py.write_text("# compiled\nrequests==2.30.0 \\\n    --hash=sha256:abc\nDjango==4.2.7 ; python_version >= '3.10'\n"
                  "urllib3[socks]==2.2.1\nunpublished-internal==0.1.0\n-e ./local\n")
    return [npm, py]


def test_lock_files_are_read_with_their_pins(lock_files):
    npm, py = lock_files
    assert [d.label for d in lockfiles.read(npm, field="f")] == [
        "npm:@scope/widget@2.4.1", "npm:left-pad@1.3.0", "npm:lodash@4.17.20"]
    assert [d.label for d in lockfiles.read(py, field="f")] == [
        "PyPI:django@4.2.7", "PyPI:requests@2.30.0", "PyPI:unpublished-internal@0.1.0", "PyPI:urllib3@2.2.1"]


def test_a_missing_lock_file_names_the_field(tmp_path):
    from maintenance.errors import InputError

    with pytest.raises(InputError, match=r"^security\.lock_files\[2\]: cannot read"):
        lockfiles.read(tmp_path / "nope.lock", field="security.lock_files[2]")


def test_vulnerable_packages_come_with_severity_advisories_and_the_fixed_version(lock_files, osv_server):
    deps = [d for f in lock_files for d in lockfiles.read(f, field="f")]
    found = {v.dependency.name: v for v in osv.scan(deps, base_url=osv_server, timeout=5)}
    assert set(found) == {"lodash", "requests"}
    assert (found["lodash"].severity, found["lodash"].advisories, found["lodash"].fixed) == (
        "critical", ["GHSA-lodash-proto"], "4.17.21")
    # Two advisories: the worst severity (CVSS 7.5: high) and the version that fixes both.
    assert (found["requests"].severity, found["requests"].fixed) == ("high", "2.32.0")
    assert found["requests"].advisories == ["GHSA-requests-verify", "PYSEC-2023-74"]


@pytest.mark.parametrize(("severity", "expected"), [
    ([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}], "critical"),  # 9.8
    ([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"}], "low"),  # 3.1
    ([{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}], "critical"),
    ([{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}], "high"),  # 7.5
    ([{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"},
      {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}], "critical"),
    ([{"type": "CVSS_V3", "score": "not a vector"}], "unknown"),
    ([{"type": "CVSS_V3", "score": "6.1"}], "medium"),
])
def test_cvss_vectors_are_scored_so_a_critical_advisory_without_a_label_pages(severity, expected):
    assert osv.severity_of({"id": "X", "severity": severity}) == expected


def test_a_database_that_cannot_be_reached_fails_rather_than_finding_nothing(lock_files):
    deps = lockfiles.read(lock_files[1], field="f")
    with pytest.raises(ServiceUnavailable):
        osv.scan(deps, base_url=f"http://127.0.0.1:{servers.free_port()}", timeout=2)


@pytest.mark.parametrize(("current", "latest", "ecosystem", "expected"), [
    ("1.2.3", "1.2.4", "npm", "patch"),
    ("1.2.3", "1.3.0", "npm", "minor"),
    ("1.2.3", "2.0.0", "npm", "major"),
    ("1.9.0", "1.10.0", "npm", "minor"),
    ("0.3.1", "0.3.2", "npm", "patch"),
    ("0.3.1", "0.4.0", "npm", "major"),  # below 1.0 a minor bump may break
    ("2.0.0-rc.1", "2.0.0", "npm", "patch"),  # the release of the same version
    ("1.2.3", "1.2.3", "npm", "none"),
    ("1.2.3", "1.2.0", "npm", "none"),
    ("4.2.7", "5.1.4", "PyPI", "major"),
    ("2.30.0", "2.32.3", "PyPI", "minor"),
    ("2.2.1", "2.2.3", "PyPI", "patch"),
    ("2.0.0rc1", "2.0.0", "PyPI", "patch"),
    ("0.9", "0.10", "PyPI", "major"),
    ("1.0", "1.0.1", "PyPI", "patch"),
    ("1.0.post1", "1.0.1", "PyPI", "patch"),
])
def test_update_categories(current, latest, ecosystem, expected):
    assert versions.category(current, latest, ecosystem) == expected


# --- certificates -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_endpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    return {days: f"127.0.0.1:{serve_tls(*make_cert(folder, days))}" for days in (3, 20, 200)}


def test_certificates_by_days_left(tls_endpoints):
    now = datetime.now(UTC)
    found = {days: certs.check(endpoint, now=now, warn_days=30, critical_days=7, timeout=5)
             for days, endpoint in tls_endpoints.items()}
    assert {d: c.status for d, c in found.items()} == {3: "critical", 20: "warning", 200: "ok"}
    assert found[20].names == ["app.pathfinity.test"] and "app.pathfinity.test" in found[20].issuer
    assert 19 < found[20].days_left <= 20


def test_an_unreachable_endpoint_is_a_finding_not_a_crash():
    status = certs.check(f"127.0.0.1:{servers.free_port()}", now=datetime.now(UTC), warn_days=30,
                         critical_days=7, timeout=2)
    assert status.status == "unreachable" and "Connection refused" in status.error


# --- posture --------------------------------------------------------------------------------------------

def test_a_trusting_postgres_and_a_passwordless_redis_are_found(platform_db, redis_server):
    with platform_db.connect() as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        try:
            audit = posture.postgres(conn, "platform_db")
        finally:
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    checks = {f.check: f for f in audit.findings}
    assert set(checks) == {"role_without_password", "hba_trust", "ssl_off", "public_schema_create"}
    assert checks["hba_trust"].severity == "critical" and checks["hba_trust"].evidence["rules"]
    assert checks["role_without_password"].target == "platform_db:postgres"
    client = redis.Redis(port=redis_server.port)
    found = {f.check for f in posture.redis(client, "platform_redis").findings}
    assert found == {"redis_no_password", "redis_dangerous_commands"}


@pytest.fixture(scope="module")
def hardened_postgres(work_dir, tmp_path_factory):
    """A cluster with scram-only authentication, TLS on, and passwords that expire."""
    server = servers.start_postgres(work_dir / "pg-hardened")
    cert, key = make_cert(tmp_path_factory.mktemp("pgcert"), 365, "db.pathfinity.test")
    for source, name in ((cert, "server.crt"), (key, "server.key")):
        target = server.datadir / name
        shutil.copy(source, target)
        os.chmod(target, 0o600)
        if server.user:
            shutil.chown(target, server.user)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("ALTER ROLE postgres PASSWORD 'Str0ng-enough' VALID UNTIL '2030-01-01'")
        conn.execute("ALTER SYSTEM SET ssl = on")
        hba = conn.execute("SHOW hba_file").fetchone()[0]
    Path(hba).write_text("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    yield server
    server.stop()


def test_a_hardened_postgres_has_no_findings(hardened_postgres):
    dsn = hardened_postgres.dsn().replace("postgres@", "postgres:Str0ng-enough@") + "?sslmode=require"
    with psycopg.connect(dsn, autocommit=True) as conn:
        audit = posture.postgres(conn, "hardened")
    assert audit.findings == [] and audit.not_run == []


def test_a_hardened_redis_has_no_findings(work_dir):
    renamed = [arg for command in posture.DANGEROUS for arg in ("--rename-command", command, "")]  # "": disabled
    server = servers.start_redis(work_dir / "redis-hardened", password="s3cret-pass", args=renamed)
    try:
        audit = posture.redis(redis.Redis(port=server.port, password="s3cret-pass"), "hardened")
    finally:
        server.stop()
    assert audit.findings == []
    assert audit.not_run and "protected mode" in audit.not_run[0]  # CONFIG itself is disabled


def test_s3_buckets_open_unencrypted_or_unversioned_are_found_and_fixed_ones_not(s3):
    bucket = f"backups-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.delete_bucket_encryption(Bucket=bucket)
    except s3.exceptions.ClientError:
        pass
    found = {f.check for f in posture.s3_bucket(s3, bucket, holds_backups=True).findings}
    assert found == {"s3_public_access", "s3_no_default_encryption", "s3_backups_unversioned"}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert posture.s3_bucket(s3, bucket, holds_backups=True).findings == []


# --- compliance -----------------------------------------------------------------------------------------

def test_controls_are_evaluated_from_the_ledger(platform_db, airflow_db):
    from maintenance.ledger.schema import ensure_schema

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with platform_db.connect() as conn:
        ensure_schema(conn, "compliance_t")
        verify = Ledger(conn, "compliance_t", TaskKey("maintenance_daily", "verify_backup", "r1"))
        verify.start_task()
        verify.finish_task("done")
        conn.execute("UPDATE compliance_t.task_runs SET ended_at = %s", (now - timedelta(hours=20),))
        verify.record_finding("hba_trust", "platform_db", "critical", "trust rules", {})
        conn.execute("UPDATE compliance_t.findings SET recorded_at = %s", (now - timedelta(days=10),))
        policy = load_policy()
        results = {c.name: compliance.evaluate(conn, "compliance_t", c, now=now, policy=policy)
                   for c in [Control(name="backups", kind="task_succeeded", task_pattern="verify_backup%",
                                     within_days=1.5),
                             Control(name="restore", kind="task_succeeded", task_pattern="%restore_test%"),
                             Control(name="findings", kind="findings_closed", within_days=7),
                             Control(name="logs", kind="log_retention", days=90)]}
    assert results["backups"]["passed"] is True
    assert results["restore"]["passed"] is False and results["restore"]["evidence"]["last_success"] is None
    assert results["findings"]["passed"] is False
    assert results["findings"]["evidence"]["findings"][0]["check"] == "hba_trust"
    assert results["logs"]["passed"] is False  # the lifecycle rules were never applied
    assert results["logs"]["evidence"]["lifecycle_last_applied"] is None


# --- through the DAGs ------------------------------------------------------------------------------------

@pytest.fixture
def security_policy(tmp_path, monkeypatch, lock_files, osv_server, tls_endpoints):
    from tests.conftest import use_policy

    return use_policy(tmp_path, monkeypatch, security={
        "lock_files": [str(p) for p in lock_files], "osv_url": osv_server, "pypi_url": osv_server,
        "npm_url": osv_server, "certificates": {"endpoints": list(tls_endpoints.values())}})


OTHER_DAILY = r"^(log_rotation|backup|verify_backup|cache_optimization|(plan_)?db_statistics)$"


def test_daily_scan_pages_oncall_for_a_critical_vulnerability(security_policy, platform_db, airflow_db, slack,
                                                               monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: datetime.now(UTC))
    result = run_dag("maintenance_daily", datetime(2026, 11, 26, 5, tzinfo=UTC), mark_success_pattern=OTHER_DAILY)
    assert result.states["security_scan"] == "success", result.states
    summary = result.xcom("security_scan")
    assert summary["counts"]["critical"] == 1 and summary["counts"]["high"] == 1 and summary["paged"]
    pages = slack.messages("#ops-oncall")
    assert len(pages) == 1
    assert "CRITICAL lodash 4.17.20 (npm): GHSA-lodash-proto; fixed in 4.17.21" in pages[0]["text"]
    assert "certificate 127.0.0.1:" in pages[0]["text"]  # the 3-day certificate
    rows = platform_db.execute("SELECT check_name, target, severity FROM maintenance.findings WHERE run_id = %s "
                               "ORDER BY check_name, target", (result.run.run_id,))
    assert ("vulnerability", "npm:lodash@4.17.20", "critical") in rows
    assert ("vulnerability", "PyPI:requests@2.30.0", "warning") in rows


def test_the_same_finding_pages_once_then_reminds_at_the_policys_interval(security_policy, platform_db, airflow_db,
                                                                         slack, monkeypatch):
    platform_db.execute("DO $$ BEGIN IF to_regclass('maintenance.pages') IS NOT NULL THEN "
                        "TRUNCATE maintenance.pages; END IF; END $$")

    def scan(day: int) -> list[dict]:
        slack.calls.clear()
        monkeypatch.setattr(clock, "now", lambda: datetime(2026, 11, day, 10, tzinfo=UTC))
        result = run_dag("maintenance_daily", datetime(2026, 11, day, 5, tzinfo=UTC), mark_success_pattern=OTHER_DAILY)
        assert result.states["security_scan"] == "success", result.states
        return slack.messages("#ops-oncall")

    (first,) = scan(10)
    assert "NEW CRITICAL lodash 4.17.20" in first["text"]
    assert "/dags/maintenance_daily/runs/" in first["text"]  # the run, linked
    assert scan(11) == [] and scan(12) == []  # seen again, not paged again
    (reminder,) = scan(13)  # 72 hours after the first page
    assert "Still open (reminder every 72 h)" in reminder["text"] and "NEW" not in reminder["text"]
    assert "CRITICAL lodash 4.17.20" in reminder["text"]
    times = platform_db.execute("SELECT times_paged, resolved_at FROM maintenance.pages "
                                "WHERE page_key = 'security_scan:npm:lodash@4.17.20'")
    assert times == [(2, None)]


def test_daily_scan_fails_when_the_database_cannot_be_reached(security_policy, platform_db, airflow_db, slack):
    import yaml

    policy = yaml.safe_load(security_policy.read_text())
    policy["security"]["osv_url"] = f"http://127.0.0.1:{servers.free_port()}"
    security_policy.write_text(yaml.safe_dump(policy))
    result = run_dag("maintenance_daily", datetime(2026, 11, 25, 5, tzinfo=UTC), mark_success_pattern=OTHER_DAILY)
    assert result.states["security_scan"] == "failed"
    assert "querybatch" in slack.messages("#ops-oncall")[0]["text"]


def test_tuesday_reviews_dependencies_and_certificates(security_policy, platform_db, airflow_db, slack):
    result = run_dag("maintenance_weekly", datetime(2026, 11, 24, 6, tzinfo=UTC), {"theme": "auto"})
    assert result.states["tuesday.dependency_review"] == "success", result.states
    review = result.xcom("tuesday.dependency_review")
    categories = {u["package"]: u["category"] for u in review["updates"]}
    assert categories == {"django": "major", "requests": "minor", "urllib3": "patch", "lodash": "patch",
                          "@scope/widget": "major"}
    assert review["not_in_registry"] == ["PyPI:unpublished-internal@0.1.0"]
    statuses = sorted(c["status"] for c in result.xcom("tuesday.certificate_review")["certificates"])
    assert statuses == ["critical", "ok", "warning"]


def test_monthly_audit_and_compliance_through_the_dag(platform_db, redis_server, s3_server, airflow_db, slack,
                                                      monkeypatch):
    window = datetime(2026, 12, 6, 8, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: window)
    result = run_dag("maintenance_monthly", window, {"dry_run": False},
                     mark_success_pattern=r"^(archive|(plan_)?debloat|monthly_report|update_review)$")
    assert result.states["security_audit"] == "success" and result.states["compliance"] == "success", result.states
    audit = result.xcom("security_audit")
    found = {(f["check"], f["target"]) for f in audit["findings"]}
    assert ("hba_trust", "platform_db") in found and ("redis_no_password", "platform_redis") in found
    controls = {c["control"]: c["passed"] for c in result.xcom("compliance")["controls"]}
    assert set(controls) == {"backups verified daily", "restore test within 8 days", "logs retained 90 days",
                             "critical findings closed within 7 days"}
    recorded = platform_db.execute("SELECT count(*) FROM maintenance.findings WHERE run_id = %s AND "
                                   "check_name = 'hba_trust'", (result.run.run_id,))
    assert recorded == [(1,)]
