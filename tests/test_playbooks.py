"""Incident playbooks, post-mortems and action items: the engines against a real PostgreSQL, then
the incident DAG under Airflow (Slack, PagerDuty and S3 stand-ins record every call)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from maintenance.incidents import playbooks
from psycopg import sql

from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def idle_in_transaction(db, app: str = "platform-api") -> psycopg.Connection:
    """A session that opened a transaction and went idle inside it (it holds its snapshot)."""
    conn = psycopg.connect(db.dsn, application_name=app)
    conn.execute("SELECT count(*) FROM learning_sessions")
    return conn


def alive(conn) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def pid(conn) -> int:
    return conn.info.backend_pid


# --- the engines ---------------------------------------------------------------------------

def test_terminate_ends_only_the_sessions_idle_long_enough(platform_db):
    old = idle_in_transaction(platform_db)
    time.sleep(1.5)
    fresh = idle_in_transaction(platform_db)
    idle_outside = psycopg.connect(platform_db.dsn, autocommit=True)  # idle, but in no transaction
    try:
        with platform_db.connect() as conn:
            planned = playbooks.terminate_idle_in_transaction(conn, older_than_seconds=1, max_sessions=5, apply=False)
            assert [s["pid"] for s in planned["found"]] == [pid(old)] and planned["ended"] == []
            done = playbooks.terminate_idle_in_transaction(conn, older_than_seconds=1, max_sessions=5, apply=True)
        assert done["ended"] == [pid(old)]
        assert isinstance(done["found"][0]["idle_for"], str)  # kept as text for the ledger's JSON
        assert not alive(old) and alive(fresh) and alive(idle_outside)
    finally:
        for c in (old, fresh, idle_outside):
            c.close()


def test_a_plan_ends_nothing(platform_db):
    old = idle_in_transaction(platform_db)
    try:
        time.sleep(1.1)
        with platform_db.connect() as conn:
            playbooks.terminate_idle_in_transaction(conn, older_than_seconds=1, max_sessions=5, apply=False)
        old.execute("SELECT 1")  # still in its transaction
        assert old.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        old.close()


def test_more_sessions_than_the_cap_refuses_and_ends_none(platform_db):
    sessions = [idle_in_transaction(platform_db) for _ in range(3)]
    try:
        time.sleep(1.1)
        refused = r"3 sessions idle in transaction, more than the step's max_sessions \(2\)"
        with platform_db.connect() as conn, pytest.raises(playbooks.TooMany, match=refused):
            playbooks.terminate_idle_in_transaction(conn, older_than_seconds=1, max_sessions=2, apply=True)
        assert all(alive(s) for s in sessions)
    finally:
        for s in sessions:
            s.close()


def test_cancel_ends_the_maintenance_session_others_wait_for_and_nobody_else(platform_db):
    platform_db.execute("CREATE TABLE IF NOT EXISTS pb_a (id int); CREATE TABLE IF NOT EXISTS pb_b (id int)")
    ours = psycopg.connect(platform_db.dsn, application_name="maintenance maintenance_daily r1 postgres.vacuum")
    theirs = psycopg.connect(platform_db.dsn, application_name="reporting")
    ours.execute("LOCK TABLE pb_a IN ACCESS EXCLUSIVE MODE")
    theirs.execute("LOCK TABLE pb_b IN ACCESS EXCLUSIVE MODE")
    waited = {}

    def reader(table):
        with platform_db.connect() as conn:
            conn.execute("SET lock_timeout = '20s'")
            try:
                conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                waited[table] = "read"
            except psycopg.Error as exc:
                waited[table] = type(exc).__name__

    threads = [threading.Thread(target=reader, args=(t,)) for t in ("pb_a", "pb_b")]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        waiting = "SELECT pid FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"
        while len(platform_db.execute(waiting)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with platform_db.connect() as conn:
            done = playbooks.cancel_blocking_maintenance(conn, max_sessions=5, apply=True)
        assert done["ended"] == [pid(ours)] and [s["blocks"] for s in done["found"]] == [1]
        threads[0].join(10)
        assert waited == {"pb_a": "read"}  # the platform's reader got its table
        assert alive(theirs) and not alive(ours)  # another team's lock is a person's call
    finally:
        theirs.rollback()
        for t in threads:
            t.join(25)
        ours.close()
        theirs.close()


def test_a_check_is_tried_until_it_passes_or_its_time_is_up():
    now = [0.0]
    answers = iter([RuntimeError("connection refused"), (False, 3), (True, 0)])

    def check():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = playbooks.until_passes(check, within=60, every=5, sleep=lambda s: now.__setitem__(0, now[0] + s),
                                    clock=lambda: now[0])
    assert (result.passed, result.seen, result.tries, result.seconds) == (True, 0, 3, 10)
    now[0] = 0.0
    never = playbooks.until_passes(lambda: (False, 2), within=12, every=5,
                                   sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert (never.passed, never.seen, never.tries) == (False, 2, 4)


# --- the policy ------------------------------------------------------------------------------

@pytest.mark.parametrize(("playbook", "where", "message"), [
    ({"name": "x", "match": {"alertname": "A"}, "steps": [{"action": "terminate_idle_in_transactoin",
                                                         "conn_id": "platform_db", "check": {"sql": "SELECT 0"}}]},
     "incidents.playbooks.0.steps.0.action", "terminate_idle_in_transaction"),
    ({"name": "x", "match": {"alertname": "A"}, "steps": [{"action": "terminate_idle_in_transaction",
                                                         "check": {"sql": "SELECT 0"}}]},
     "incidents.playbooks.0.steps.0", "terminate_idle_in_transaction needs conn_id"),
    ({"name": "x", "match": {"alertname": "A"}, "steps": [{"action": "redis_memory_relief",
                                                         "check": {"redis_used_below": 0.9, "promql": "up"}}]},
     "incidents.playbooks.0.steps.0.check", "give exactly one of promql, sql, redis_used_below, deployment_ready"),
    ({"name": "x", "match": {}, "steps": [{"action": "redis_memory_relief", "check": {"redis_used_below": 0.9}}]},
     "incidents.playbooks.0.match", "at least 1"),
])
def test_a_playbook_typo_names_its_field(tmp_path, playbook, where, message):
    import yaml
    from maintenance.policy import PolicyError, load_policy

    (tmp_path / "books.yaml").write_text(yaml.safe_dump({"playbooks": [playbook]}))
    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    data["incidents"]["playbooks"] = "books.yaml"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "policy.yaml")
    line = next(li for li in str(info.value).splitlines() if li.strip().startswith(where + ":"))
    assert message in line, str(info.value)


def test_a_missing_playbooks_file_is_named(tmp_path):
    import yaml
    from maintenance.policy import PolicyError, load_policy

    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    data["incidents"]["playbooks"] = "no-such-playbooks.yaml"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError, match=r"incidents\.playbooks: .*no-such-playbooks\.yaml not found"):
        load_policy(tmp_path / "policy.yaml")


def test_the_shipped_playbooks_match_the_shipped_alerts():
    import yaml
    from maintenance.policy import load_policy

    from tests.conftest import ROOT

    alerts = {r["alert"] for g in yaml.safe_load((ROOT / "include/prometheus/platform-rules.yml").read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    books = load_policy().incidents.playbooks
    assert books and all(b.match["alertname"] in alerts for b in books), [b.match for b in books]


# --- through Airflow -------------------------------------------------------------------------

IDLE_BOOK = {"name": "idle", "match": {"alertname": "PostgresIdleInTransaction"}, "steps": [
    {"action": "terminate_idle_in_transaction", "conn_id": "platform_db", "older_than_seconds": 1,
     "check": {"sql": "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                      "AND state_change < now() - interval '1 second' AND application_name = 'platform-api'",
               "within_seconds": 20, "every_seconds": 1}}]}


@pytest.fixture
def incident_env(platform_db, slack, pagerduty, s3, redis_server, airflow_db, tmp_path, monkeypatch):
    from tests.conftest import empty_bucket

    empty_bucket(s3, "pathfinity-maintenance")
    use_policy(tmp_path, monkeypatch, incidents={"playbooks": [IDLE_BOOK, {
        "name": "stubborn", "match": {"alertname": "Stubborn"}, "steps": [
            {"action": "terminate_idle_in_transaction", "conn_id": "platform_db", "older_than_seconds": 3600,
             "check": {"sql": "SELECT 1", "within_seconds": 2, "every_seconds": 1}},
            {"action": "redis_memory_relief", "check": {"redis_used_below": 1.0}}]}]})
    return platform_db


def _ledger(db, run_id: str) -> list[tuple]:
    return db.execute("SELECT task_id, system, action, outcome, rows_affected FROM maintenance.actions "
                      "WHERE run_id = %s ORDER BY id", (run_id,))


def test_a_playbook_recovers_the_incident_and_nobody_is_paged(incident_env, slack, pagerduty):
    stuck = idle_in_transaction(incident_env)
    time.sleep(1.2)
    try:
        result = run_dag("maintenance_incident", utc(2026, 11, 30, 15), {
            "action": "open", "severity": "sev3", "summary": "PostgresIdleInTransaction: a session idles",
            "labels": {"alertname": "PostgresIdleInTransaction", "severity": "warning"}})
        assert result.states == {"record_incident": "success", "run_playbook": "success", "post_mortem": "skipped"}
        summary = result.xcom("run_playbook")
        assert summary["recovered"] and summary["paged"] is None and summary["playbook"] == "idle"
        assert summary["results"][0]["done"]["ended"] == [pid(stuck)] and summary["results"][0]["check"]["passed"]
        assert not alive(stuck)
        assert _ledger(incident_env, result.run.run_id) == [
            ("run_playbook", "postgres", "terminate_idle_in_transaction", "applied", 1),
            ("run_playbook", "incident", "playbook_check", "applied", None)]
        assert pagerduty.calls == []
        texts = [m["text"] for m in slack.messages("#ops-maintenance")]
        assert any(t.startswith(":wrench: Incident") and "playbook *idle* recovered it: 1 step(s)" in t for t in texts)
    finally:
        stuck.close()


def test_a_failed_check_stops_the_playbook_and_pages(incident_env, slack, pagerduty):
    result = run_dag("maintenance_incident", utc(2026, 11, 30, 16), {
        "action": "open", "severity": "sev3", "summary": "Stubborn: it stays", "labels": {"alertname": "Stubborn"}})
    assert result.states["run_playbook"] == "success"
    summary = result.xcom("run_playbook")
    assert not summary["recovered"] and len(summary["results"]) == 1  # the second step never ran
    assert summary["paged_because"].startswith("playbook stubborn step 1 (terminate_idle_in_transaction) failed: "
                                               "its check (sql) still saw 1")
    incident_id = summary["incident_id"]
    assert pagerduty.alerts == {f"pathfinity-incident-{incident_id}": "triggered"}
    assert [(a, o) for _, s, a, o, _ in _ledger(incident_env, result.run.run_id)] == [
        ("terminate_idle_in_transaction", "applied"), ("playbook_check", "failed")]
    assert any(m["text"].startswith(f":sos: Incident {incident_id}: playbook stubborn step 1")
               for m in slack.messages("#ops-maintenance"))


@pytest.mark.parametrize(("severity", "paged"), [("sev3", True), ("sev4", False)])
def test_no_playbook_pages_unless_the_severity_says_not_to(incident_env, pagerduty, slack, severity, paged):
    result = run_dag("maintenance_incident", utc(2026, 11, 30, 17), {
        "action": "open", "severity": severity, "summary": "Unknown: something odd",
        "labels": {"alertname": "SomethingOdd"}})
    summary = result.xcom("run_playbook")
    assert summary["playbook"] is None and summary["not_recovered"] == "no playbook matches this incident " \
                                                                       "(alertname=SomethingOdd)"
    assert bool(pagerduty.calls) is paged and bool(summary["paged"]) is paged


def test_a_critical_incident_never_runs_a_playbook_and_pages_once(incident_env, pagerduty):
    stuck = idle_in_transaction(incident_env)
    time.sleep(1.2)
    try:
        result = run_dag("maintenance_incident", utc(2026, 11, 30, 18), {
            "action": "open", "severity": "sev1", "summary": "PostgresIdleInTransaction: and worse",
            "labels": {"alertname": "PostgresIdleInTransaction"}})
        summary = result.xcom("run_playbook")
        assert summary["results"] == [] and summary["paged_because"].startswith("sev1 is critical")
        assert alive(stuck)
        assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]  # once: when it opened
    finally:
        stuck.close()


def test_a_dry_run_shows_the_playbook_and_runs_nothing(incident_env, slack, pagerduty):
    stuck = idle_in_transaction(incident_env)
    time.sleep(1.2)
    before = incident_env.execute("SELECT count(*) FROM maintenance.incidents")[0][0]
    try:
        result = run_dag("maintenance_incident", utc(2026, 11, 30, 19), {
            "action": "open", "dry_run": True, "severity": "sev3", "summary": "PostgresIdleInTransaction: try",
            "labels": {"alertname": "PostgresIdleInTransaction"}})
        summary = result.xcom("run_playbook")
        assert summary["would_run"] and summary["playbook"] == "idle"
        assert summary["steps"][0]["action"] == "terminate_idle_in_transaction"
        assert alive(stuck) and slack.calls == [] and pagerduty.calls == []
        assert incident_env.execute("SELECT count(*) FROM maintenance.incidents")[0][0] == before
    finally:
        stuck.close()


def test_a_resolved_sev2_gets_its_post_mortem_and_action_items(incident_env, slack, pagerduty, s3):
    # Times as they happen: the post-mortem's timeline orders what the form says (when it started)
    # with what the tasks record as they run (told, paged, acknowledged).
    started = datetime.now(UTC) - timedelta(minutes=30)
    opened = run_dag("maintenance_incident", utc(2026, 11, 27, 15), {
        "action": "open", "severity": "sev2", "summary": "ApiErrorRateHigh: 3% of requests fail", "outage": True,
        "started_at": started.isoformat(), "labels": {"alertname": "ApiErrorRateHigh"}})
    incident_id = opened.xcom("record_incident")["incident_id"]
    run_dag("maintenance_incident", utc(2026, 11, 27, 15, 5), {"action": "acknowledge", "incident_id": incident_id})
    added = run_dag("maintenance_incident", utc(2026, 11, 27, 15, 6), {
        "action": "add_action_item", "incident_id": incident_id, "item": "Alert on 502s from the load balancer",
        "owner": "maria", "due": "2026-12-04"})
    item_id = added.xcom("record_incident")["action_item_id"]
    resolved = run_dag("maintenance_incident", utc(2026, 11, 27, 16), {
        "action": "resolve", "incident_id": incident_id, "cause": "bad config"})
    assert resolved.states == {"record_incident": "success", "run_playbook": "skipped", "post_mortem": "success"}
    written = resolved.xcom("post_mortem")
    prefix = f"incidents/{incident_id}/post-mortem"
    markdown = s3.get_object(Bucket="pathfinity-maintenance", Key=f"{prefix}.md")["Body"].read().decode()
    html = s3.get_object(Bucket="pathfinity-maintenance", Key=f"{prefix}.html")["Body"].read().decode()
    assert markdown.startswith(f"# Post-mortem: incident {incident_id} (sev2)")
    timeline = markdown.split("## Timeline")[1].split("## Five whys")[0]
    order = [line.split(" | ")[2] for line in timeline.splitlines() if line.startswith("| 2026")]
    assert [t.split(":")[0] for t in order if t.split(":")[0] in (
        "opened", "paged", "acknowledged", "action item", "resolved")] == [
        "opened", "paged", "acknowledged", "action item", "resolved"], order
    assert "- Duration: 30 min (platform down)" in markdown and "- Time to acknowledge:" in markdown
    assert f"| {item_id} | Alert on 502s from the load balancer | maria | 2026-12-04 | open |" in markdown
    assert "<h2>Five whys</h2>" in html and "<table>" in html and "Alert on 502s" in html
    assert written["runbook"] is None
    assert incident_env.execute("SELECT check_name, target FROM maintenance.findings WHERE check_name = "
                                "'runbook_missing' AND resolved_at IS NULL") == [
        ("runbook_missing", "ApiErrorRateHigh")]
    assert any(m["text"].startswith(f":memo: Post-mortem of incident {incident_id} written: http")
               for m in slack.messages("#incidents"))
    closed = run_dag("maintenance_incident", utc(2026, 11, 27, 17), {
        "action": "close_action_item", "action_item_id": item_id})
    assert closed.states["record_incident"] == "success"
    assert incident_env.execute("SELECT closed_at IS NOT NULL FROM maintenance.action_items WHERE id = %s",
                                (item_id,)) == [(True,)]


def test_action_item_form_errors_name_the_field(incident_env):
    result = run_dag("maintenance_incident", utc(2026, 11, 27, 18), {
        "action": "add_action_item", "incident_id": 1, "item": "x"})
    assert result.states["record_incident"] == "failed"
    error = incident_env.execute("SELECT summary->>'error' FROM maintenance.task_runs WHERE run_id = %s",
                                 (result.run.run_id,))[0][0]
    assert error == "InputError: owner, due: an action item needs what, who and by when"
    missing = run_dag("maintenance_incident", utc(2026, 11, 27, 19), {
        "action": "close_action_item", "action_item_id": 999999})
    error = incident_env.execute("SELECT summary->>'error' FROM maintenance.task_runs WHERE run_id = %s",
                                 (missing.run.run_id,))[0][0]
    assert error == "LookupError: action_item_id: no action item 999999"


def test_an_alert_opened_while_many_students_are_active_is_one_severity_worse(incident_env, tmp_path, monkeypatch,
                                                                               pagerduty):
    from maintenance.incidents.operators import _assessed

    assert _assessed("sev3", 12_000, 10_000) == ("sev2", "sev3 raised to sev2: 12,000 active users (> 10,000)")
    assert _assessed("sev1", 12_000, 10_000) == ("sev1", None)       # nothing is worse than sev1
    assert _assessed("sev3", 10_000, 10_000) == ("sev3", None)       # at the threshold: as the labels say
    assert _assessed("sev3", None, 10_000) == ("sev3", None)         # the probe failed: as the labels say
    assert _assessed("sev3", 12_000, None) == ("sev3", None)         # the policy asks for labels only
    use_policy(tmp_path, monkeypatch, incidents={"raise_above_users": 0, "playbooks": [IDLE_BOOK]},
               decision={"load": {"probe": {"conn_id": "platform_db", "sql": "SELECT 7"}}})
    result = run_dag("maintenance_incident", utc(2026, 11, 30, 20), {
        "action": "open", "severity": "sev3", "summary": "RedisMemoryHigh: 93%",
        "alert_key": "abc@2026-11-30T20:00:00Z", "labels": {"alertname": "RedisMemoryHigh"}})
    incident_id = result.xcom("record_incident")["incident_id"]
    assert incident_env.execute("SELECT severity FROM maintenance.incidents WHERE id = %s", (incident_id,)) == [
        ("sev2",)]
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]  # sev2 pages
    assert incident_env.execute("SELECT text FROM maintenance.incident_events WHERE incident_id = %s AND "
                                "kind = 'assessed'", (incident_id,)) == [("sev3 raised to sev2: 7 active users (> 0)",)]
