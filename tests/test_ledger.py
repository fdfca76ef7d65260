"""The maintenance ledger: schema, records, KPIs, incidents, and notifications around it."""

import threading
from datetime import UTC, datetime

import pytest
from maintenance.ledger import kpis
from maintenance.ledger.schema import MIGRATIONS, ensure_schema
from maintenance.ledger.store import Ledger, TaskKey, open_incident, resolve_incident

from tests.support.airflow_runs import run_dag

SCHEMA = "maintenance"


@pytest.fixture(scope="module")
def conn(platform_db):
    with platform_db.connect() as c:
        ensure_schema(c, SCHEMA)
        yield c


def test_schema_is_versioned_idempotent_and_safe_to_race(platform_db, conn):
    errors = []

    def migrate():
        try:
            with platform_db.connect() as c:
                ensure_schema(c, "racing ledger")  # a name that needs quoting
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ensure_schema(conn, SCHEMA) == MIGRATIONS[-1][0]
    versions = conn.execute('SELECT version FROM "racing ledger".schema_version').fetchall()
    assert versions == [(v,) for v, _ in MIGRATIONS]


def test_actions_record_outcome_timing_and_do_not_double_count(conn):
    key = TaskKey("d", "t", "run-1", try_number=1, forced_reason="CAB-9")
    ledger = Ledger(conn, SCHEMA, key)
    with ledger.action("postgres", "public.a", "vacuum_analyze", {"dead_ratio": 0.31}) as act:
        act.rows_affected = 120
    with pytest.raises(RuntimeError), ledger.action("postgres", "public.b", "reindex_concurrently"):
        raise RuntimeError("lock timeout")
    # The same try written again (a reconnect replaying it) upserts; a retry is a new try.
    again = Ledger(conn, SCHEMA, key)
    with again.action("postgres", "public.a", "vacuum_analyze") as act:
        act.rows_affected = 120
    with Ledger(conn, SCHEMA, TaskKey("d", "t", "run-1", try_number=2, dry_run=True)).action(
            "postgres", "public.b", "reindex_concurrently"):
        pass
    rows = conn.execute("SELECT try_number, seq, target, outcome, rows_affected, error, forced_reason, dry_run "
                        "FROM maintenance.actions WHERE run_id = 'run-1' ORDER BY try_number, seq").fetchall()
    assert rows == [
        (1, 1, "public.a", "applied", 120, None, "CAB-9", False),
        (1, 2, "public.b", "failed", None, "RuntimeError: lock timeout", "CAB-9", False),
        (2, 1, "public.b", "planned", None, None, None, True),
    ]


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_kpis_on_a_hand_made_month(conn):
    s = "kpi_case"
    ensure_schema(conn, s)
    # October's outage runs 10 minutes into November; November has its own 20-minute outage,
    # a planned hour in the window, and a non-outage incident resolved in 45 minutes.
    open_incident(conn, s, severity="sev1", summary="db failover", opened_at=utc(2026, 10, 31, 23, 50), outage=True)
    resolve_incident(conn, s, 1, utc(2026, 11, 1, 0, 10))
    i2 = open_incident(conn, s, severity="sev2", summary="cache outage", opened_at=utc(2026, 11, 10, 12), outage=True)
    resolve_incident(conn, s, i2, utc(2026, 11, 10, 12, 20))
    i3 = open_incident(conn, s, severity="sev4", summary="planned restart", opened_at=utc(2026, 11, 1, 7),
                       outage=True, planned=True)
    resolve_incident(conn, s, i3, utc(2026, 11, 1, 8))
    i4 = open_incident(conn, s, severity="sev3", summary="slow reports", opened_at=utc(2026, 11, 20, 9))
    resolve_incident(conn, s, i4, utc(2026, 11, 20, 9, 45))
    # Twelve maintenance actions in November: one failed, one rolled back, one caused an incident.
    ledger = Ledger(conn, s, TaskKey("d", "t", "nov"))
    ids = []
    for n in range(12):
        with ledger.action("postgres", f"public.t{n}", "analyze") as act:
            act.outcome = {0: "failed", 1: "rolled_back"}.get(n, "applied")
        ids.append(conn.execute("SELECT max(id) FROM kpi_case.actions").fetchone()[0])
    conn.execute("UPDATE kpi_case.actions SET started_at = %s, duration_ms = 60000", (utc(2026, 11, 2),))
    open_incident(conn, s, severity="sev3", summary="reindex slowed api", opened_at=utc(2026, 11, 2, 1),
                  caused_by_action=ids[5])
    resolve_incident(conn, s, 5, utc(2026, 11, 2, 1, 5))

    nov = kpis.compute(conn, s, utc(2026, 11, 1), utc(2026, 12, 1), now=utc(2026, 12, 15))
    minutes = 30 * 24 * 60
    assert nov.unplanned_downtime_minutes == pytest.approx(30)   # 10 carried over + 20
    assert nov.planned_downtime_minutes == pytest.approx(60)
    assert nov.uptime_pct == pytest.approx(100 * (minutes - 90) / minutes)
    assert nov.incidents == 3 and nov.failures == 1             # opened in November, unplanned
    assert nov.mttr_minutes == pytest.approx(20)  # over outages only: the slow reports and the slowed api were none
    assert nov.mtbf_hours == pytest.approx((minutes - 90) / 60)
    assert nov.actions_applied == 12 and nov.actions_failed_or_caused_incident == 3
    assert nov.change_failure_rate_pct == pytest.approx(25.0)
    assert nov.maintenance_minutes == pytest.approx(12)
    assert nov.checks["uptime_pct"]["met"] is False               # 99.79% is under 99.9%
    assert nov.checks["unplanned_downtime_minutes"]["met"] is False  # 30 is not under 30
    assert nov.checks["planned_downtime_minutes"]["met"] is True

    october = kpis.compute(conn, s, utc(2026, 10, 1), utc(2026, 11, 1), now=utc(2026, 12, 15))
    assert october.unplanned_downtime_minutes == pytest.approx(10)

    december = kpis.compute(conn, s, utc(2026, 12, 1), utc(2027, 1, 1), now=utc(2027, 1, 2))
    assert (december.uptime_pct, december.incidents, december.mttr_minutes, december.mtbf_hours,
            december.change_failure_rate_pct) == (100.0, 0, None, None, None)
    assert all(check["met"] for check in december.checks.values())


def test_unresolved_outage_counts_until_now(conn):
    s = "kpi_open"
    ensure_schema(conn, s)
    open_incident(conn, s, severity="sev1", summary="down", opened_at=utc(2026, 11, 27, 10), outage=True)
    k = kpis.compute(conn, s, utc(2026, 11, 1), utc(2026, 12, 1), now=utc(2026, 11, 27, 10, 15))
    assert k.unplanned_downtime_minutes == pytest.approx(15)
    with pytest.raises(ValueError, match="period: end"):
        kpis.compute(conn, s, utc(2026, 12, 1), utc(2026, 11, 1), now=utc(2026, 12, 1))


def test_kpis_merge_the_probe_window_steps_and_acknowledgements(conn):
    """Uptime from real signals: the availability probe's down spans count even with no incident,
    an outage the probe also saw counts once, a window-only step is planned downtime, and MTTA is
    over the incidents acknowledged."""
    from datetime import timedelta

    from maintenance.ledger.store import acknowledge_incident

    s = "kpi_signals"
    ensure_schema(conn, s)
    i1 = open_incident(conn, s, severity="sev2", summary="api down", opened_at=utc(2026, 11, 10, 12), outage=True)
    acknowledge_incident(conn, s, i1, utc(2026, 11, 10, 12, 4))
    resolve_incident(conn, s, i1, utc(2026, 11, 10, 12, 20))
    i2 = open_incident(conn, s, severity="sev3", summary="slow", opened_at=utc(2026, 11, 11, 9))
    acknowledge_incident(conn, s, i2, utc(2026, 11, 11, 9, 10))
    ledger = Ledger(conn, s, TaskKey("maintenance_monthly", "debloat", "window-run"))
    ledger.in_window = lambda: True
    with ledger.action("postgres", "public.big", "vacuum_full") as act:
        act.plan = {"why": "bloat"}
    conn.execute("UPDATE kpi_signals.actions SET started_at = %s, duration_ms = 45 * 60000", (utc(2026, 11, 1, 7),))
    probe_down = [(utc(2026, 11, 10, 12, 10), utc(2026, 11, 10, 12, 30)),   # overlaps the outage: 10 more minutes
                  (utc(2026, 11, 20, 3), utc(2026, 11, 20, 3, 5)),          # no incident was opened: still down
                  (utc(2026, 11, 1, 7, 30), utc(2026, 11, 1, 7, 40))]       # inside the window's step: planned
    nov = kpis.compute(conn, s, utc(2026, 11, 1), utc(2026, 12, 1), now=utc(2026, 12, 2), probe_down=probe_down)
    assert nov.unplanned_downtime_minutes == pytest.approx(30 + 5)
    assert nov.planned_downtime_minutes == pytest.approx(45)
    assert nov.probe_down_minutes == pytest.approx(35)
    assert nov.mtta_minutes == pytest.approx(7) and nov.mttr_minutes == pytest.approx(20)
    without = kpis.compute(conn, s, utc(2026, 11, 1), utc(2026, 12, 1), now=utc(2026, 12, 2))
    assert without.unplanned_downtime_minutes == pytest.approx(20) and without.probe_down_minutes is None
    # A span reaching past the period counts only inside it.
    edge = kpis.compute(conn, s, utc(2026, 11, 20, 3, 2), utc(2026, 11, 20, 4), now=utc(2026, 12, 2),
                        probe_down=[(utc(2026, 11, 20, 3), utc(2026, 11, 20, 3, 5))])
    assert edge.unplanned_downtime_minutes == pytest.approx(3)
    assert edge.period_minutes == pytest.approx(timedelta(minutes=58).total_seconds() / 60)


def test_incident_events_and_action_items_are_recorded_once(conn):
    from datetime import date

    from maintenance.ledger import incident_log

    s = "incident_log"
    ensure_schema(conn, s)
    ident = open_incident(conn, s, severity="sev2", summary="x", opened_at=utc(2026, 11, 3, 1))
    for _ in range(2):  # a task's retry records again: once
        incident_log.record_event(conn, s, ident, "paged", "PagerDuty open", key=f"{ident}:paged")
    assert [e["kind"] for e in incident_log.events(conn, s, ident)] == ["paged"]
    assert incident_log.was_paged(conn, s, ident)
    first = incident_log.add_action_item(conn, s, ident, title="add an alert", owner="ana", due=date(2026, 11, 10))
    again = incident_log.add_action_item(conn, s, ident, title="add an alert", owner="bo", due=date(2026, 11, 12))
    assert first == again
    closed = incident_log.close_action_item(conn, s, first, at=utc(2026, 11, 9), by="bo")
    later = incident_log.close_action_item(conn, s, first, at=utc(2026, 11, 11), by="cy")
    assert (closed["owner"], closed["due"], later["closed_at"], later["closed_by"]) == (
        "bo", date(2026, 11, 12), utc(2026, 11, 9), "bo")
    assert incident_log.action_items(conn, s, open_only=True) == []
    with pytest.raises(LookupError, match="action_item_id: no action item 424242"):
        incident_log.close_action_item(conn, s, 424242, at=utc(2026, 11, 9), by="x")


# --- through Airflow -------------------------------------------------------------------------

@pytest.fixture
def airflow_env(platform_db, slack, airflow_db, pagerduty):
    return platform_db


def test_incident_dag_opens_and_resolves(airflow_env, slack, pagerduty, s3, redis_server):
    import gzip
    import json

    # A maintenance step of the last hours: the diagnostics bundle must show it.
    with airflow_env.connect() as conn:
        conn.autocommit = True
        ensure_schema(conn, SCHEMA)
        with Ledger(conn, SCHEMA, TaskKey("maintenance_monthly", "debloat", "recent-step")).action(
                "postgres", "platform_db:public.learning_sessions", "repack"):
            pass
    opened = run_dag("maintenance_incident", utc(2026, 11, 27, 15), {
        "action": "open", "severity": "sev2", "summary": "API 502s after deploy", "outage": True,
        "started_at": "2026-11-27T09:50:00-05:00"})
    assert opened.states == {"record_incident": "success", "run_playbook": "success", "post_mortem": "skipped"}
    incident_id = opened.xcom("record_incident")["incident_id"]
    key = f"pathfinity-incident-{incident_id}"
    # sev2: #incidents hears of it, and on-call is paged through PagerDuty with the incident's key;
    # no playbook matches an incident typed without alert labels: said, and the page stands.
    told, no_playbook = slack.messages("#incidents")
    assert no_playbook["text"] == (f":sos: Incident {incident_id}: no playbook matches this incident (no labels); "
                                   "on-call is paged")
    assert told["text"].startswith(f":rotating_light: Incident {incident_id} opened: *sev2* (platform down) API 502s")
    (trigger,) = pagerduty.events()
    assert (trigger["event_action"], trigger["dedup_key"], trigger["payload"]["severity"]) == ("trigger", key, "error")
    assert trigger["payload"]["summary"] == "sev2: API 502s after deploy"
    bundle_at = opened.xcom("record_incident")["diagnostics"]
    assert bundle_at.startswith(f"s3://pathfinity-maintenance/incidents/{incident_id}/diagnostics-")
    assert f"Diagnostics: {bundle_at}" in told["text"]
    bucket, object_key = bundle_at.removeprefix("s3://").split("/", 1)
    bundle = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()))
    assert bundle["incident"]["id"] == incident_id and bundle["incident"]["severity"] == "sev2"
    assert {"sessions", "blocking", "long_transactions", "replication", "top_statements"} <= set(
        bundle["postgres platform_db"])
    assert "redis_version" in bundle["redis"]["info"] and isinstance(bundle["redis"]["slowlog"], list)
    assert "error" in bundle["kubernetes"]  # no cluster configured here: said, not fatal
    assert any(a["target"] == "platform_db:public.learning_sessions" and a["action"] == "repack"
               for a in bundle["maintenance"]["actions_last_24h"])
    acknowledged = run_dag("maintenance_incident", utc(2026, 11, 27, 15, 5), {
        "action": "acknowledge", "incident_id": incident_id})
    assert acknowledged.states == {"record_incident": "success", "run_playbook": "skipped", "post_mortem": "skipped"}
    assert pagerduty.alerts[key] == "acknowledged"
    resolved = run_dag("maintenance_incident", utc(2026, 11, 27, 16), {
        "action": "resolve", "incident_id": incident_id, "ended_at": "2026-11-27T10:20:00-05:00",
        "cause": "bad config"})
    assert resolved.states == {"record_incident": "success", "run_playbook": "skipped", "post_mortem": "success"}
    row = airflow_env.execute("SELECT severity, outage, opened_at, resolved_at, cause FROM maintenance.incidents "
                              "WHERE id = %s", (incident_id,))[0]
    assert row == ("sev2", True, utc(2026, 11, 27, 14, 50), utc(2026, 11, 27, 15, 20), "bad config")
    assert pagerduty.alerts == {key: "resolved"} and [e["event_action"] for e in pagerduty.events()] == [
        "trigger", "acknowledge", "resolve"]
    assert slack.messages("#incidents")[-2]["text"].startswith(f":white_check_mark: Incident {incident_id} resolved "
                                                               "after 30 min: *sev2*")
    assert slack.messages("#incidents")[-1]["text"].startswith(f":memo: Post-mortem of incident {incident_id}")
    assert {c["verb"] for c in pagerduty.calls} == {"POST"}  # nothing else was asked of PagerDuty


def test_a_minor_incident_is_told_to_its_channel_and_pages_nobody(airflow_env, slack, pagerduty):
    opened = run_dag("maintenance_incident", utc(2026, 11, 28, 15), {
        "action": "open", "severity": "sev4", "summary": "typo on the careers page"})
    assert opened.states == {"record_incident": "success", "run_playbook": "success", "post_mortem": "skipped"}
    incident_id = opened.xcom("record_incident")["incident_id"]
    told, no_playbook = slack.messages("#ops-maintenance")
    assert f"Incident {incident_id} opened: *sev4* typo on the careers page\nRun: <http" in told["text"]
    assert no_playbook["text"].endswith("no playbook matches this incident (no labels); sev4 pages nobody")
    assert pagerduty.calls == [] and slack.messages("#incidents") == []


def test_incident_form_errors_name_the_field(airflow_env):
    result = run_dag("maintenance_incident", utc(2026, 11, 27, 17), {"action": "open", "summary": " "})
    assert result.states == {"record_incident": "failed", "run_playbook": "upstream_failed",
                             "post_mortem": "upstream_failed"}
    error = airflow_env.execute("SELECT summary->>'error' FROM maintenance.task_runs "
                                "WHERE run_id = %s ORDER BY try_number DESC LIMIT 1", (result.run.run_id,))[0][0]
    assert error.startswith("InputError: summary:")


def test_critical_failure_pages_oncall_exactly_once(airflow_env, slack):
    result = run_dag("oncall_probe", utc(2026, 11, 27, 9))
    assert result.states == {"verify_backup": "failed", "routine": "success", "run_summary": "failed"}
    pages = slack.messages("#ops-oncall")
    assert len(pages) == 1
    text = pages[0]["text"]
    assert "`oncall_probe.verify_backup`" in text and "*Try:* 1" in text
    assert "RuntimeError: sha256 mismatch" in text and "*Log:* http" in text
    summary = slack.messages("#ops-maintenance")[0]["text"]
    assert "Failed: `verify_backup`" in summary and "Done: `routine` (1 table analyzed)" in summary
    failed = airflow_env.execute("SELECT outcome, error FROM maintenance.actions WHERE run_id = %s "
                                 "AND task_id = 'verify_backup'", (result.run.run_id,))
    assert failed == [("failed", "RuntimeError: sha256 mismatch: manifest 9f2c..., object 11ab...")]


def test_slack_outage_never_fails_the_work(airflow_env, slack):
    slack.failing = True
    result = run_dag("gate_probe", utc(2026, 11, 27, 9))
    assert result.states["run_summary"] == "success"
    assert result.xcom("run_summary")["delivered"] is False
    assert len(slack.calls) == 1  # tried once, no retry storm


def test_a_measured_archive_rate_belongs_to_its_own_database(conn):
    # Two databases may hold a table of the same name: one's move must not set the other's estimate.
    from maintenance.archive.operators import expected_rate
    from maintenance.policy import load_policy

    settings = load_policy().archive
    ledger = Ledger(conn, SCHEMA, TaskKey("maintenance_monthly", "archive", "run-rate", try_number=1))
    ledger.record_metrics("archive", "db_one:public.rated", {"rows_moved": 50_000, "rows_per_second": 41_000})
    rate, basis = expected_rate(ledger, "db_one:public.rated", settings)
    assert rate == 41_000 and basis.startswith("41,000 rows/s, measured by the move of")
    rate, basis = expected_rate(ledger, "db_two:public.rated", settings)
    assert rate == settings.expected_rows_per_second
    assert basis.endswith("no move of this table measured yet")


def test_every_step_is_a_declared_action_and_window_actions_wait_for_the_window(conn):
    """maintenance.actions is the one list of what a step can be: the ledger refuses an undeclared
    action before its body runs, and a window-only one (VACUUM FULL) outside the window."""
    from maintenance.actions import REGISTRY, UnknownAction
    from maintenance.ledger.store import OutsideWindow

    ledger = Ledger(conn, SCHEMA, TaskKey("d", "t", "run-registry"))
    ran = []
    with pytest.raises(UnknownAction, match=r"action 'vacuum_fulll' of system 'postgres' is not declared.*"
                                            r"vacuum_full"):
        with ledger.action("postgres", "public.a", "vacuum_fulll"):
            ran.append("typo")
    ledger.in_window = lambda: False
    with pytest.raises(OutsideWindow, match=r"vacuum_full of public\.a refused: it runs only inside the planned"):
        with ledger.action("postgres", "public.a", "vacuum_full"):
            ran.append("outside")
    with ledger.action("postgres", "public.a", "vacuum_analyze"):  # not a window action: goes on
        ran.append("vacuum_analyze")
    planned = Ledger(conn, SCHEMA, TaskKey("d", "t", "run-registry", try_number=2, dry_run=True))
    planned.in_window = lambda: False
    with planned.action("postgres", "public.a", "vacuum_full") as act:  # a dry run plans it anyway
        ran.append("planned")
    assert act.outcome == "planned" and ran == ["vacuum_analyze", "planned"]
    ledger.in_window = lambda: True
    with ledger.action("postgres", "public.a", "vacuum_full"):
        ran.append("inside")
    assert ran[-1] == "inside"
    assert [k.name for k in REGISTRY.values() if k.window] == ["vacuum_full", "opt_in_pending_maintenance",
                                                                "delete_series"]
    assert conn.execute("SELECT action, outcome FROM maintenance.actions WHERE run_id = 'run-registry' "
                        "ORDER BY dry_run, seq").fetchall() == [
        ("vacuum_analyze", "applied"), ("vacuum_full", "applied"), ("vacuum_full", "planned")]


def test_a_finding_that_passes_again_is_resolved_and_compliance_recovers(conn):
    """Each run records what it finds; once a whole run of the same task no longer finds one, it
    is resolved with that time, and the control that counts open critical findings passes again."""
    from datetime import timedelta

    from maintenance.policy.security import Control
    from maintenance.security import compliance

    conn.execute("DELETE FROM maintenance.findings WHERE dag_id = 'sec'")
    control = Control(name="critical findings closed", kind="findings_closed", within_days=7)

    def run(run_id: str, found: list[str], *, map_index: int = -1) -> int:
        ledger = Ledger(conn, SCHEMA, TaskKey("sec", "security_audit", run_id, map_index=map_index))
        for target in found:
            ledger.record_finding("hba_trust", target, "critical", f"{target} trusts everyone")
        return ledger.resolve_passed_findings()

    assert run("r1", ["db-a", "db-b"]) == 0
    conn.execute("UPDATE maintenance.findings SET recorded_at = now() - interval '10 days' WHERE dag_id = 'sec'")
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert not compliance.evaluate(conn, SCHEMA, control, now=later, policy=None)["passed"]
    assert run("r2", ["db-a"]) == 1  # db-b fixed: r1's db-b finding resolved; db-a still open
    assert run("r2-mapped", [], map_index=3) == 0  # a mapped instance checked only its part: resolves nothing
    opened = conn.execute("SELECT run_id, target, resolved_at IS NOT NULL FROM maintenance.findings "
                          "WHERE dag_id = 'sec' ORDER BY run_id, target").fetchall()
    assert opened == [("r1", "db-a", False), ("r1", "db-b", True), ("r2", "db-a", False)]
    result = compliance.evaluate(conn, SCHEMA, control, now=later, policy=None)
    assert not result["passed"] and [f["target"] for f in result["evidence"]["findings"]] == ["db-a"]  # since r1
    assert run("r3", []) == 2  # db-a fixed too: both of its rows resolved
    assert compliance.evaluate(conn, SCHEMA, control, now=later, policy=None)["passed"]


def test_overlapping_outages_count_their_time_once(conn):
    """Two incidents opened for one outage (an alert, and a person who noticed), one longer than
    the other, and a planned outage overlapping an unplanned one: downtime is the time some
    outage was open, counted once, and planned time stays planned."""
    s = "kpi_overlap"
    conn.execute("DROP SCHEMA IF EXISTS kpi_overlap CASCADE")
    ensure_schema(conn, s)
    for opened, resolved, planned in ((utc(2026, 11, 3, 10), utc(2026, 11, 3, 10, 30), False),
                                      (utc(2026, 11, 3, 10, 10), utc(2026, 11, 3, 10, 40), False),
                                      (utc(2026, 11, 8, 7), utc(2026, 11, 8, 8), True),
                                      (utc(2026, 11, 8, 7, 50), utc(2026, 11, 8, 8, 5), False)):
        i = open_incident(conn, s, severity="sev2", summary="api down", opened_at=opened, outage=True,
                          planned=planned)
        resolve_incident(conn, s, i, resolved)
    nov = kpis.compute(conn, s, utc(2026, 11, 1), utc(2026, 12, 1), now=utc(2026, 12, 15))
    assert nov.unplanned_downtime_minutes == pytest.approx(40 + 5)  # 10:00-10:40 once; 08:00-08:05 past the plan
    assert nov.planned_downtime_minutes == pytest.approx(60)
    assert nov.uptime_pct == pytest.approx(100 * (30 * 24 * 60 - 105) / (30 * 24 * 60))


def test_the_pagerduty_stand_in_records_every_verb_and_refuses_what_pagerduty_refuses(pagerduty):
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(pagerduty.cert))
    for verb, body, status in (("PUT", b"{}", 405), ("DELETE", None, 405),
                               ("POST", b'{"event_action": "trigger", "routing_key": "short"}', 400)):
        request = urllib.request.Request(f"{pagerduty.url}/v2/enqueue", data=body, method=verb,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=5, context=context)
        assert answer.value.code == status
    assert [c["verb"] for c in pagerduty.calls] == ["PUT", "DELETE", "POST"] and pagerduty.alerts == {}
