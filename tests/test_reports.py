"""Weekly and monthly reports: rendered from the ledger, stored in S3, posted to Slack."""

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from maintenance.ledger import notices
from maintenance.ledger.schema import ensure_schema
from maintenance.ledger.store import Ledger, TaskKey, open_incident, resolve_incident
from maintenance.reports.data import period_for
from PIL import Image

from tests.support.airflow_runs import run_dag

FRIDAY = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # 01:00 EST, a Friday


def s3_client(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def ledger_data(platform_db):
    """A week of ledger rows as the capabilities would write them."""
    with platform_db.connect() as conn:
        ensure_schema(conn, "maintenance")
        ledger = Ledger(conn, "maintenance", TaskKey("maintenance_daily", "statistics", "seed"))
        for day in range(7):
            with ledger.action("postgres", f"public.t{day}", "analyze") as act:
                act.rows_affected = 10
        conn.execute("UPDATE maintenance.actions SET started_at = %s - (seq || ' days')::interval",
                     (FRIDAY,))
        for day in range(10):
            recorder = Ledger(conn, "maintenance", TaskKey("m", "bloat", f"seed-{day}"))
            recorder.record_metrics("postgres", "public.career_selections", {"bloat_pct": 40 - day * 3})
            recorder.record_metrics("redis", "cache", {"used_memory_mb": 120 + day, "hit_ratio": 0.9})
        conn.execute("UPDATE maintenance.metrics SET recorded_at = %s - (id || ' hours')::interval", (FRIDAY,))
        ledger.record_finding("backup_age", "pathfinity", "critical", "newest backup is 31 h old (limit 26 h)")
        ledger.record_finding("unused_index", "public.idx_x", "warning", "never scanned, 120 MB")
        conn.execute("UPDATE maintenance.findings SET recorded_at = %s - interval '1 day'", (FRIDAY,))
        incident = open_incident(conn, "maintenance", severity="sev2", summary="api errors",
                                 opened_at=FRIDAY - timedelta(days=2), outage=True)
        resolve_incident(conn, "maintenance", incident, FRIDAY - timedelta(days=2) + timedelta(minutes=42))
        notices.record_approval(conn, "maintenance", window_start=datetime(2026, 12, 6, 7, tzinfo=UTC),
                                decision="approved", decided_by="cab-chair", decided_at=FRIDAY - timedelta(days=3),
                                run_id="cab__20261206T0700Z")
        for role, who in (("oncall_lead", "lead-ann"), ("director", "dir-bo")):
            notices.record_emergency(conn, "maintenance", dag_id="maintenance_daily", run_id="manual__x", role=role,
                                     decision="approved" if role == "oncall_lead" else "rejected", decided_by=who,
                                     decided_at=FRIDAY - timedelta(days=1), reason="INC-9 disk full",
                                     approval_run_id="emergency__maintenance_daily__manual__x")
    return platform_db


def test_periods_come_from_the_logical_date():
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    start, end = period_for("weekly", FRIDAY, ny)  # the seven days through the run
    assert (start.isoformat(), end.isoformat()) == ("2026-11-20T01:00:00-05:00", "2026-11-27T01:00:00-05:00")
    start, end = period_for("monthly", datetime(2026, 12, 6, 7, tzinfo=UTC), ny)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-06T02:00:00-05:00", "2026-12-06T02:00:00-05:00")
    start, _ = period_for("monthly", datetime(2027, 3, 31, 16, tzinfo=UTC), ny)  # no February 31st
    assert start.isoformat() == "2027-02-28T12:00:00-05:00"
    start, end = period_for("weekly", datetime(2026, 11, 3, 17, tzinfo=UTC), ny)  # across the end of DST
    assert (start.isoformat(), end.isoformat()) == ("2026-10-27T12:00:00-04:00", "2026-11-03T12:00:00-05:00")


def test_weekly_health_report_arrives_in_s3_and_slack(ledger_data, s3_server, slack, airflow_db):
    result = run_dag("maintenance_weekly", FRIDAY, {"theme": "friday"})
    assert result.states["friday.health_report"] == "success", result.states
    assert result.states["run_summary"] == "success"
    summary = result.xcom("friday.health_report")
    assert summary["key"] == "s3://pathfinity-maintenance/reports/weekly/2026-11-20/index.html"

    s3 = s3_client(s3_server)
    prefix = "reports/weekly/2026-11-20/"
    # The Slack link, fetched as a browser fetches it: the page, then every image it shows.
    text = next(m["text"] for m in slack.messages("#ops-maintenance") if "maintenance report" in m["text"])
    link = re.search(r"Full report: (\S+)", text).group(1)
    html = fetch_page_with_images(link)
    # Recommendations, most urgent first: missed uptime (a 42-minute outage), then the critical finding.
    recommendations = re.findall(r"<li>(.*?)</li>", html)
    assert recommendations[0].startswith("KPI uptime pct is")
    assert "backup_age on pathfinity" in html and html.index("backup_age") < html.index("unused_index")

    assert "weekly maintenance report, 2026-11-20" in text and "Full report: http" in text
    assert "Period 2026-11-20 01:00 to 2026-11-27 01:00 (America/New_York)." in text
    assert "Period 2026-11-20 01:00 to 2026-11-27 01:00 (America/New_York)" in html
    assert "1 incident(s)" in text
    # Who approved what, and when: the window's board and a forced run's two approvers.
    approvals = re.findall(r"<tr><td>(2026-11-2\d \d\d:\d\d UTC)</td><td>([^<]+)</td><td>([^<]+)</td>"
                           r"<td[^>]*>([^<]+)</td><td>([^<]+)</td>", html)
    assert [a[1:] for a in approvals] == [
        ("planned window 2026-12-06 07:00 UTC", "Change Advisory Board", "approved", "cab-chair"),
        ("maintenance_daily manual__x", "oncall lead", "approved", "lead-ann"),
        ("maintenance_daily manual__x", "director", "rejected", "dir-bo")]
    uploads = [c for c in slack.calls if c.method == "files.completeUploadExternal"]
    assert len(uploads) == 3
    assert all(c.body["_png"] for c in slack.calls if c.path == "/upload")

    # A re-run for the same date rewrites the same keys: still one report for the week.
    run_dag("maintenance_weekly", FRIDAY, {"theme": "friday"})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="pathfinity-maintenance", Prefix=prefix)["Contents"]]
    assert keys == [prefix + "index.html"]  # one self-contained page, rewritten, not a second one


def fetch_page_with_images(url: str) -> str:
    """GET the page, then every <img> source resolved against it as a browser does; each must
    answer 200 with a PNG (a data: URI decodes to one)."""
    import base64
    import urllib.request
    from urllib.parse import urljoin

    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        html = answer.read().decode()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 8
    for src in images:
        if src.startswith("data:image/png;base64,"):
            png = base64.b64decode(src.split(",", 1)[1])
        else:
            with urllib.request.urlopen(urljoin(url, src), timeout=10) as answer:
                assert answer.status == 200, src
                png = answer.read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        Image.open(io.BytesIO(png)).verify()
    return html


def test_kpi_checks_carry_their_unit_and_numeric_target(ledger_data):
    from maintenance.ledger import kpis
    from maintenance.reports import charts

    with ledger_data.connect() as conn:
        k = kpis.compute(conn, "maintenance", FRIDAY - timedelta(days=7), FRIDAY, now=FRIDAY)
    assert {n: (c["unit"], c["limit"]) for n, c in k.checks.items()} == {
        "uptime_pct": ("%", 99.9), "planned_downtime_minutes": ("min", 56.0),
        "unplanned_downtime_minutes": ("min", 7.0), "mttr_minutes": ("min", 30.0)}
    assert 99.5 < k.checks["uptime_pct"]["value"] < 99.9 and not k.checks["uptime_pct"]["met"]
    png = charts.kpis_vs_targets(k.checks)
    assert Image.open(io.BytesIO(png)).size == (700, 320)


def test_friday_post_mortem_summary_lists_the_weeks_incidents(ledger_data, s3_server, s3, slack, airflow_db):
    from datetime import date

    from maintenance.ledger import incident_log
    from maintenance.ledger.store import open_incident

    with ledger_data.connect() as conn:
        slow = open_incident(conn, "maintenance", severity="sev3", summary="slow dashboards",
                             opened_at=FRIDAY - timedelta(days=1), external_key="pm-open")
        conn.execute("UPDATE maintenance.incidents SET acknowledged_at = opened_at + interval '6 minutes' "
                     "WHERE id = %s", (slow,))
        late = incident_log.add_action_item(conn, "maintenance", slow, title="index the dashboard query",
                                            owner="li", due=date(2026, 11, 20))
        incident_log.add_action_item(conn, "maintenance", slow, title="load-test dashboards", owner="sam",
                                     due=date(2026, 12, 20))
    result = run_dag("maintenance_weekly", FRIDAY, {"theme": "friday"})
    assert result.states["friday.post_mortems"] == "success", result.states
    incidents = {i["summary"]: i for i in result.xcom("friday.post_mortems")["incidents"]}
    assert incidents["api errors"]["minutes"] == 42 and incidents["api errors"]["outage"]
    assert incidents["slow dashboards"]["resolved_at"] is None and incidents["slow dashboards"]["post_mortem_due"]
    text = next(m["text"] for m in slack.messages("#ops-maintenance") if "Post-mortem summary" in m["text"])
    assert "2 incident(s), 2 post-mortem(s) due" in text and "still open" in text
    assert "acknowledged in 6 min" in text and "never acknowledged" in text
    assert f"• #{late} (incident {slow}) index the dashboard query: li, due 2026-11-20 :alarm_clock: *overdue*" in text
    assert "load-test dashboards: sam, due 2026-12-20\n" in text + "\n" and result.xcom("friday.post_mortems")[
        "reminded"] == [late]
    assert ledger_data.execute("SELECT target FROM maintenance.findings WHERE check_name = 'action_item_overdue'") == [
        (f"action item {late}",)]
    # The weekly report lists them too, the overdue one marked.
    bucket, key = result.xcom("friday.health_report")["key"].removeprefix("s3://").split("/", 1)
    page = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert "index the dashboard query" in page and "2026-11-20 (overdue)" in page and "load-test dashboards" in page
    assert "<h2>Incidents</h2>" in page and "6 min</td>" in page


def test_other_weekdays_run_their_theme_only(ledger_data, s3_server, slack, airflow_db):
    result = run_dag("maintenance_weekly", FRIDAY - timedelta(days=1), {"theme": "auto"},  # a Thursday
                     mark_success_pattern=r"^thursday\.restore_test$")  # its own tests: test_backups.py
    assert result.states["friday.health_report"] == "skipped"
    assert result.states["run_summary"] == "success"


def test_runs_triggered_without_a_logical_date_work(ledger_data, s3_server, slack, airflow_db, monkeypatch):
    """Airflow 3 UI and API triggers may carry no logical date: the run's due time stands in."""
    from maintenance import clock

    friday_noon = datetime(2026, 11, 27, 17, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: friday_noon)
    from tests.support.airflow_runs import RunResult, load_dag

    dag = load_dag("maintenance_weekly")
    result = RunResult(dag.test(logical_date=None, run_after=friday_noon, run_conf={"theme": "auto"}))
    assert result.run.logical_date is None
    assert result.states["choose_theme"] == "success" and result.states["friday.health_report"] == "success"
    assert result.xcom("friday.health_report")["key"].endswith("/weekly/2026-11-20/index.html")
