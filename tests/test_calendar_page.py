"""The "Maintenance calendar" page: what it gathers (against a real ledger), and the page itself
in Airflow's UI, driven in Debian's headless Chromium through Selenium: signed out it sends
people to Airflow's login; signed in, the UI's navigation has it, and it shows the policy's
windows and blackouts, each window's notice and approval, the DAGs' scheduled runs with the
gate's outlook, the ledger's last 30 days (a year of ledger behind it) and the KPIs."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import ROOT, use_policy

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
DEC_WINDOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)  # the first Sunday, 02:00 New York time
FREEZE = {"name": "spring_launch", "start": "2027-02-01", "end": "2027-02-05", "reason": "Launch week"}


@pytest.fixture
def ledger(platform_db):
    from maintenance.ledger.schema import ensure_schema

    with platform_db.connect() as conn:
        conn.execute("DROP SCHEMA IF EXISTS maintenance CASCADE")
        ensure_schema(conn, "maintenance")
    return platform_db


def _daily(start: datetime, days: int) -> list[datetime]:
    """The daily DAG's run times (midnight in New York) from ``start``."""
    from zoneinfo import ZoneInfo

    from maintenance.calendar import local_instant

    first = start.astimezone(ZoneInfo("America/New_York")).date() + timedelta(days=1)
    return [local_instant(first + timedelta(days=n), datetime.min.time(), ZoneInfo("America/New_York"))
            for n in range(days)]


def _sundays(start: datetime, weeks: int) -> list[datetime]:
    from zoneinfo import ZoneInfo

    from maintenance.calendar import local_instant

    day = start.astimezone(ZoneInfo("America/New_York")).date()
    day += timedelta(days=(6 - day.weekday()) % 7 or 7)
    return [local_instant(day + timedelta(weeks=n), datetime.min.time().replace(hour=2),
                          ZoneInfo("America/New_York")) for n in range(weeks)]


def test_the_page_shows_windows_with_their_notice_and_approval_and_what_the_gate_will_do(ledger, tmp_path,
                                                                                       monkeypatch):
    from maintenance.ledger import incident_log, notices
    from maintenance.ledger.store import open_incident
    from maintenance.policy import load_policy
    from maintenance.ui.calendar_data import collect
    from maintenance.ui.calendar_html import render

    policy = load_policy(use_policy(tmp_path, monkeypatch, freezes=[FREEZE]))
    with ledger.connect() as conn:
        notices.record(conn, "maintenance", window_start=DEC_WINDOW, window_end=DEC_WINDOW + timedelta(hours=4),
                       sent_at=datetime(2026, 11, 28, 5, 0, tzinfo=UTC), channel="#maintenance-announcements",
                       text="notice", parts={}, delivered=True, run_id="scheduled__2026-11-28")
        notices.record_approval(conn, "maintenance", window_start=DEC_WINDOW, decision="approved",
                                decided_by="cab-chair", decided_at=datetime(2026, 11, 29, 15, 0, tzinfo=UTC),
                                run_id="cab__20261206T0700Z")
        feb = datetime(2027, 2, 7, 7, 0, tzinfo=UTC)
        notices.record(conn, "maintenance", window_start=feb, window_end=feb + timedelta(hours=4),
                       sent_at=datetime(2027, 1, 29, 5, 0, tzinfo=UTC), channel="#maintenance-announcements",
                       text="notice", parts={}, delivered=True, run_id="scheduled__2027-01-29")
        notices.record_approval(conn, "maintenance", window_start=feb, decision="rejected", decided_by="cab-chair",
                                decided_at=datetime(2027, 1, 30, 15, 0, tzinfo=UTC), run_id="cab__20270207T0700Z")
        incident = open_incident(conn, "maintenance", severity="sev2", summary="replica lag",
                                 opened_at=datetime(2026, 11, 1, tzinfo=UTC))
        incident_log.add_action_item(conn, "maintenance", incident, title="alert on replica lag", owner="dana",
                                     due=date(2026, 11, 20))
        conn.execute("""
            INSERT INTO maintenance.actions (dag_id, task_id, run_id, try_number, seq, system, target, action,
                                             outcome, started_at, duration_ms, forced_reason)
            VALUES ('maintenance_daily', 'vacuum', 'r1', 1, 1, 'postgres', 'platform_db:public.users', 'vacuum',
                    'applied', '2026-11-24 06:00+00', 1500, NULL),
                   ('maintenance_daily', 'vacuum', 'r1', 1, 2, 'postgres', 'platform_db:public.events', 'vacuum',
                    'failed', '2026-11-24 06:01+00', 900, NULL),
                   ('maintenance_monthly', 'repack', 'r0', 1, 1, 'postgres', 'platform_db:public.old', 'repack',
                    'applied', '2026-10-01 06:00+00', 60000, NULL)""")
        schedules = {"maintenance_daily": _daily(NOW, 90), "maintenance_monthly": _sundays(NOW, 13)}
        page = collect(policy, conn, now=NOW, schedules=schedules, paused={"maintenance_monthly": True})

    tz = policy.tz
    # The windows the policy places: December's first Sunday; January's first is in the holiday
    # blackout (to January 5), so its window moves to the second Sunday; February's first.
    assert [(f"{w.period.start.astimezone(tz):%Y-%m-%d %H:%M}", w.cleared) for w in page.windows] == [
        ("2026-12-06 02:00", True), ("2027-01-10 02:00", None), ("2027-02-07 02:00", False)]
    december, january = page.windows[0], page.windows[1]
    assert december.notice == "sent 2026-11-28 00:00 EST to #maintenance-announcements"
    assert december.approval == "approved by cab-chair, 2026-11-29 10:00 EST"
    assert january.notice == "due 2027-01-03 (7 days ahead)" and january.approval == "asked when the notice goes out"
    assert [(p.kind, p.name) for p in page.periods] == [("blackout", "holidays"), ("freeze", "spring_launch")]
    assert page.months_without_window == ["2027-03", "2027-04"]  # the spring testing blackouts

    runs = {(r.dag_id, f"{r.at.astimezone(tz):%Y-%m-%d %H:%M}"): r for r in page.runs}
    assert runs[("maintenance_daily", "2026-12-01 00:00")].routine == "runs (load and alerts checked then)"
    assert runs[("maintenance_daily", "2026-12-01 00:00")].disruptive == \
        "skipped: waits for the window of 2026-12-06 02:00 EST"
    assert runs[("maintenance_daily", "2026-12-25 00:00")].routine.startswith("skipped: in blackout holidays")
    assert runs[("maintenance_daily", "2027-02-03 00:00")].routine.startswith("skipped: in freeze spring_launch")
    # The monthly DAG is listed on the days it works: each month's window day, and no other Sunday.
    monthly = sorted(day for dag, day in runs if dag == "maintenance_monthly")
    assert monthly == ["2026-12-06 02:00", "2027-01-10 02:00", "2027-02-07 02:00"]
    assert runs[("maintenance_monthly", "2026-12-06 02:00")].disruptive == "runs (load and alerts checked then)"
    assert runs[("maintenance_monthly", "2027-01-10 02:00")].disruptive == \
        "runs once the notice is out and the board approves (load and alerts checked then)"
    assert runs[("maintenance_monthly", "2026-12-06 02:00")].paused
    assert runs[("maintenance_monthly", "2027-02-07 02:00")].disruptive == (
        "skipped: notice sent 2027-01-29 00:00 EST to #maintenance-announcements; approval rejected by cab-chair, "
        "2027-01-30 10:00 EST")

    assert any("action item" in o and "alert on replica lag" in o and "due 2026-11-20" in o for o in page.overdue)
    assert any(o.startswith("No planned window in 2027-03") for o in page.overdue)
    assert [(a["target"], a["outcome"]) for a in page.actions] == [  # the last 30 days, newest first
        ("platform_db:public.events", "failed"), ("platform_db:public.users", "vacuum" and "applied")]
    assert page.actions_per_day == [(date(2026, 11, 24), 1, 1, 0)]
    assert page.kpis.actions_applied == 2 and page.kpis.actions_failed_or_caused_incident == 1
    assert [label for label, _ in page.kpi_months] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10",
                                                       "2026-11"]

    html = render(page, policy, user="oncall")
    for shown in ("approved by cab-chair", "due 2027-01-03", "spring_launch", "alert on replica lag",
                  "skipped: in blackout holidays", "maintenance_monthly (paused)", "signed in as oncall"):
        assert shown in html, shown


def test_a_ledger_that_cannot_be_reached_leaves_the_calendar_and_says_so(tmp_path, monkeypatch):
    from maintenance.policy import load_policy
    from maintenance.ui.calendar_data import collect
    from maintenance.ui.calendar_html import render

    policy = load_policy(use_policy(tmp_path, monkeypatch))
    page = collect(policy, None, now=NOW, schedules={"maintenance_daily": _daily(NOW, 10)}, paused={},
                   ledger_error="OperationalError: connection refused")
    assert next((w.notice, w.cleared) for w in page.windows) == ("unknown: the ledger cannot be read", None)
    html = render(page, policy, user="oncall")
    assert "The ledger cannot be read: OperationalError: connection refused" in html
    assert "No KPIs without the ledger." in html and len(page.runs) == 10


# -- in the Airflow UI, in a real browser --------------------------------------------------------


def _status(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, answer.headers.get("location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("location", "")


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1800"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _sign_in(browser, api: str, user: str, password: str) -> None:
    """As a person: open the page, land on Airflow's login, sign in, come back."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(f"{api}/maintenance-calendar/")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: "/auth/login" not in b.current_url)


def _open_from_navigation(browser, api: str) -> None:
    """Airflow's home page, its navigation's "Maintenance calendar", the page in its frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(f"{api}/")
    wait.until(ready.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Maintenance calendar']"
                                                        "/ancestor-or-self::a[1]"))).click()
    wait.until(lambda b: "/plugin/maintenance-calendar" in b.current_url)
    wait.until(ready.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(ready.presence_of_element_located((By.ID, "windows")))


def _cells(browser, table: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [[c.text for c in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, f"#{table} tr")[1:]]


def test_the_calendar_page_in_the_airflow_ui_behind_its_login(ledger, tmp_path, monkeypatch):
    from maintenance.calendar import MaintenanceCalendar
    from maintenance.ledger import notices
    from maintenance.policy import load_policy
    from selenium.webdriver.common.by import By

    from devtools import ledger_year
    from tests.support.standalone import standalone

    policy = load_policy(use_policy(tmp_path, monkeypatch, freezes=[FREEZE]))
    now, tz = datetime.now(UTC), policy.tz
    ahead = MaintenanceCalendar.from_policy(policy).periods_between(now, now + timedelta(days=90))
    windows = [p for p in ahead if p.kind == "window"]
    with ledger.connect() as conn:
        assert ledger_year.seed(conn, "maintenance", end=now) > 40_000  # a year of ledger
        notices.record(conn, "maintenance", window_start=windows[0].start, window_end=windows[0].end, sent_at=now,
                       channel="#maintenance-announcements", text="notice", parts={}, delivered=True,
                       run_id="manual__notice")

    home = tmp_path / "airflow"
    dag_ids = ["maintenance_daily", "maintenance_weekly", "maintenance_monthly", "maintenance_kubernetes"]
    with standalone(home, ROOT / "dags", dag_ids, AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
                    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="oncall:viewer") as (env, _):
        api = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        status, location = _status(f"{api}/maintenance-calendar/")
        assert status == 303 and "/auth/login" in location, (status, location)  # signed out: Airflow's login
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["oncall"]
        browser = _chromium()
        try:
            _sign_in(browser, api, "oncall", password)
            _open_from_navigation(browser, api)
            shown = _cells(browser, "windows")
            assert [row[0] for row in shown] == [f"{w.start.astimezone(tz):%Y-%m-%d %H:%M %Z}" for w in windows]
            assert shown[0][2].startswith("sent ") and shown[0][3].startswith("waiting for the Change Advisory Board")
            assert [row[1] for row in _cells(browser, "periods")] == [p.name for p in ahead if p.kind != "window"]
            runs = _cells(browser, "runs")
            assert 89 <= sum(r[1] == "maintenance_daily (paused)" for r in runs) <= 91  # daily for 90 days, paused
            assert {r[1] for r in runs} >= {"maintenance_weekly (paused)", "maintenance_kubernetes (paused)"}
            assert len(_cells(browser, "actions")) == 200  # the latest 200 of the last 30 days
            assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-actions rect")) >= 60  # 30 days, stacked
            assert "uptime pct" in browser.find_element(By.ID, "kpis").text
            browser.switch_to.default_content()
            shot = tmp_path / "calendar-page.png"
            browser.save_screenshot(str(shot))
            assert shot.stat().st_size > 20_000
            if os.environ.get("MAINTENANCE_SCREENSHOTS"):  # `make screenshots`: the picture in docs/
                shutil.copy(shot, ROOT / "docs" / "calendar-page.png")
        finally:
            browser.quit()
