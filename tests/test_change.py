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
