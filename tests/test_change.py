"""Change management through the DAGs: the monthly DAG runs on the window's day, placed around
blackouts, and the daily calendar review reports months without a window and pages when window
work has waited too long."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.airflow_runs import run_dag

ALL_BUT = r"^(?!{}$).*"  # mark every other task done: only the named one runs


@pytest.fixture
def change_env(platform_db, slack, airflow_db):
    return platform_db


def test_a_scheduled_run_on_a_sunday_that_is_not_the_window_ends_at_once(change_env):
    # January 2027: the first Sunday (the 3rd) is in the holidays blackout; the window is the 10th.
    sunday_3rd = datetime(2027, 1, 3, 7, tzinfo=UTC)
    result = run_dag("maintenance_monthly", sunday_3rd, queued_at=sunday_3rd)
    assert result.states["months_run_day"] == "success"
    assert {s for t, s in result.states.items() if t != "months_run_day"} == {"skipped"}, result.states
    assert result.xcom("months_run_day", key="outcome") == (
        "not the month's run day (2027-01-03); this month's is 2027-01-10: the planned window, window 2027-01 "
        "(planned maintenance): 2027-01-10 02:00 EST until 2027-01-10 06:00 EST")


def test_the_scheduled_run_on_the_placed_window_goes_ahead(change_env):
    sunday_10th = datetime(2027, 1, 10, 7, tzinfo=UTC)
    result = run_dag("maintenance_monthly", sunday_10th, queued_at=sunday_10th,
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    # Nothing skipped (the mapped de-bloat, its plan marked done without one, cannot expand).
    assert "skipped" not in result.states.values() and result.states["monthly_report"] == "success", result.states
    assert result.xcom("months_run_day", key="outcome").startswith("the month's run: the planned window, window "
                                                                   "2027-01")


def test_a_month_without_a_window_runs_its_reviews_on_the_nominal_day_and_a_person_always_can(change_env):
    april_4th = datetime(2027, 4, 4, 6, tzinfo=UTC)  # the first Sunday of April, 02:00 EDT
    result = run_dag("maintenance_monthly", april_4th, queued_at=april_4th,
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    assert result.states["months_run_day"] == "success" and result.states["monthly_report"] == "success"
    assert "no usable window this month" in result.xcom("months_run_day", key="outcome")
    manual = run_dag("maintenance_monthly", datetime(2027, 1, 3, 7, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    assert manual.states["months_run_day"] == "success" and manual.states["update_review"] == "success"


def test_the_calendar_review_reports_months_without_a_window_and_pages_when_work_is_overdue(change_env, slack):
    # 2 May 2027: the last window was 7 February (84 days, more than max_wait_days 45).
    result = run_dag("maintenance_daily", datetime(2027, 5, 2, 4, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("calendar_review"))
    assert result.states["calendar_review"] == "success"
    summary = result.xcom("calendar_review")
    assert summary["months_without_window"] == ["2027-05", "2027-06"] and summary["days_since_last_window"] == 83
    assert summary["next_window"].startswith("window 2027-07 (planned maintenance): 2027-07-04 02:00 EDT")
    findings = dict(change_env.execute("SELECT check_name || ' ' || target, severity FROM maintenance.findings "
                                       "WHERE run_id = %s", (result.run.run_id,)))
    assert findings == {"no_window 2027-05": "warning", "no_window 2027-06": "warning",
                        "window_overdue planned_window": "critical"}
    (page,) = slack.messages("#ops-oncall")
    assert "Maintenance windows overdue" in page["text"] and "no planned window since 2027-02-07" in page["text"]
    # The next day's review reminds only after the policy's reminder interval: no second page.
    run_dag("maintenance_daily", datetime(2027, 5, 3, 4, tzinfo=UTC),
            mark_success_pattern=ALL_BUT.format("calendar_review"))
    assert len(slack.messages("#ops-oncall")) == 1


# --- the window's notice -------------------------------------------------------------------------

NY_DEC_6_WINDOW = datetime(2026, 12, 6, 7, tzinfo=UTC)  # Sunday 02:00 EST, December's window


def _at(monkeypatch, instant: datetime) -> None:
    from maintenance import clock

    monkeypatch.setattr(clock, "now", lambda: instant)


def test_the_notice_goes_out_once_seven_days_ahead_saying_what_will_run(change_env, slack, monkeypatch):
    from maintenance.ledger.schema import ensure_schema

    with change_env.connect() as conn:
        ensure_schema(conn, "maintenance")
        conn.execute("DELETE FROM maintenance.window_notices")
    _at(monkeypatch, datetime(2026, 11, 29, 5, tzinfo=UTC))  # the Sunday before, 00:00 EST: 7 days 2 hours ahead
    result = run_dag("maintenance_daily", datetime(2026, 11, 29, 5, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("window_notice"))
    summary = result.xcom("window_notice")
    assert summary["sent"] and not summary["late"] and summary["delivered"]
    (told,) = slack.messages("#maintenance-announcements")
    lines = told["text"].splitlines()
    assert lines[0] == ":calendar: *Planned maintenance window Sunday 2026-12-06 02:00-06:00 EST*"
    assert "• kubernetes nodes: not known (" in told["text"]  # no cluster here: said, not fatal
    assert any(li.startswith("Expected duration: ") for li in lines) and any(
        li.startswith("Systems affected: ") for li in lines)
    assert change_env.execute("SELECT window_start, channel, delivered FROM maintenance.window_notices") == [
        (NY_DEC_6_WINDOW, "#maintenance-announcements", True)]
    again = run_dag("maintenance_daily", datetime(2026, 11, 30, 5, tzinfo=UTC),
                    mark_success_pattern=ALL_BUT.format("window_notice"))
    assert not again.xcom("window_notice")["sent"] and len(slack.messages("#maintenance-announcements")) == 1
    assert again.xcom("window_notice")["why"] == "its notice went out 2026-11-29 00:00 EST"


def _scheduled_window_run(monkeypatch):
    _at(monkeypatch, datetime(2026, 12, 6, 8, tzinfo=UTC))  # 03:00 EST, inside the window
    return run_dag("maintenance_monthly", NY_DEC_6_WINDOW, queued_at=NY_DEC_6_WINDOW,
                   mark_success_pattern=r"^(?!(months_run_day|gate_window)$).*")


def test_a_scheduled_windows_disruptive_work_needs_its_notice_in_time(change_env, slack, monkeypatch):
    from maintenance.ledger import notices

    change_env.execute("DELETE FROM maintenance.window_notices")
    held = _scheduled_window_run(monkeypatch)
    assert held.states["gate_window"] == "skipped"
    (blocker,) = held.xcom("gate_window", key="gate_decision")["blockers"]
    assert blocker["kind"] == "notice" and blocker["reason"].startswith(
        "the notice of window 2026-12 (planned maintenance): 2026-12-06 02:00 EST until 2026-12-06 06:00 EST was "
        "not sent (7 days ahead, procedures 1.1)")
    with change_env.connect() as conn:  # told, but three days ahead only: still held
        notices.record(conn, "maintenance", window_start=NY_DEC_6_WINDOW, window_end=datetime(2026, 12, 6, 11,
                       tzinfo=UTC), sent_at=datetime(2026, 12, 3, 5, tzinfo=UTC), channel="#x", text="late",
                       parts={}, delivered=True, run_id="late")
    late = _scheduled_window_run(monkeypatch)
    assert late.states["gate_window"] == "skipped"
    assert "less than 7 days ahead" in late.xcom("gate_window", key="gate_decision")["blockers"][0]["reason"]
    change_env.execute("UPDATE maintenance.window_notices SET sent_at = '2026-11-29 05:00+00'")
    told = _scheduled_window_run(monkeypatch)
    assert told.states["gate_window"] == "success", told.xcom("gate_window", key="gate_decision")
