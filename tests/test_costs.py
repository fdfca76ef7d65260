"""Monday's cost review: Cost Explorer (moto's server, answers queued through its API) against
the students the platform's database saw each day."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest
from maintenance.costs.review import review

from tests.support.airflow_runs import run_dag

MONDAY = datetime(2026, 11, 30, 6, tzinfo=UTC)  # reviews 2026-11-23..29 against 2026-11-16..22


def day_costs(first: date, days: int, services: dict[str, float]) -> dict[date, dict[str, float]]:
    return {first + timedelta(days=n): dict(services) for n in range(days)}


def test_the_review_prices_each_student_day_and_ranks_what_grew():
    end = date(2026, 11, 30)
    costs = (day_costs(date(2026, 11, 16), 7, {"Amazon EC2": 100.0, "Amazon RDS": 50.0})
             | day_costs(date(2026, 11, 23), 6, {"Amazon EC2": 130.0, "Amazon RDS": 50.0, "Amazon S3": 5.0}))
    students = {date(2026, 11, 23) + timedelta(days=n): 3000 for n in range(7)} | {date(2026, 11, 29): 4000}
    found = review(costs, students, end=end, days=7, target=0.05)
    assert (found.cost, found.previous_cost) == (6 * 185.0, 7 * 150.0)
    assert found.student_days == 6 * 3000 + 4000 and found.per_student_day == round(1110 / 22000, 4)
    assert [d["day"] for d in found.days_over_target] == [f"2026-11-{d}" for d in range(23, 29)]
    assert found.days_without_costs == ["2026-11-29"]  # Cost Explorer lags a day
    assert [(s.service, s.cost, s.previous) for s in found.services] == [
        ("Amazon EC2", 780.0, 700.0), ("Amazon RDS", 300.0, 350.0), ("Amazon S3", 30.0, 0.0)]
    assert found.services[2].growth is None  # new this week: no ratio to speak of


def queue_cost_explorer_answer(endpoint: str, first: date, services_by_week: list[dict[str, float]]) -> None:
    """What moto's Cost Explorer answers next: 14 days by service."""
    periods = []
    for n in range(14):
        day = first + timedelta(days=n)
        periods.append({"TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
                        "Total": {}, "Estimated": False, "Groups": [
                            {"Keys": [name], "Metrics": {"UnblendedCost": {"Amount": str(amount), "Unit": "USD"}}}
                            for name, amount in services_by_week[n // 7].items()]})
    request = urllib.request.Request(f"{endpoint}/moto-api/static/ce/cost-and-usage-results", method="POST",
                                     data=json.dumps({"results": [{"ResultsByTime": periods}]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 201


@pytest.fixture
def week_of_students(platform_db):
    platform_db.execute("TRUNCATE learning_sessions RESTART IDENTITY")
    platform_db.execute("""
        INSERT INTO learning_sessions (student_id, career_id, created_at, ended_at)
        SELECT s, 1, d + interval '17 hours', d + interval '18 hours'
        FROM generate_series(timestamptz '2026-11-23 00:00+00', '2026-11-29 00:00+00', interval '1 day') d,
             generate_series(1, 3000) s""")
    yield platform_db
    platform_db.execute("TRUNCATE learning_sessions RESTART IDENTITY")


def test_monday_reviews_the_week_and_records_what_is_over_target(s3_server, week_of_students, airflow_db, slack):
    db = week_of_students
    queue_cost_explorer_answer(s3_server, date(2026, 11, 16), [
        {"Amazon EC2": 100.0, "Amazon RDS": 50.0}, {"Amazon EC2": 130.0, "Amazon RDS": 50.0, "Amazon S3": 5.0}])
    result = run_dag("maintenance_weekly", MONDAY, {"theme": "auto"},
                     mark_success_pattern=r"^monday\.(gate|redis_big_keys|s3_lifecycle)$")
    assert result.states["monday.cost_review"] == "success", result.states
    found = result.xcom("monday.cost_review")
    assert (found["start"], found["end"], found["cost"], found["previous_cost"]) == (
        "2026-11-23", "2026-11-30", 7 * 185.0, 7 * 150.0)
    assert found["student_days"] == 7 * 3000 and found["per_student_day"] == round(185 / 3000, 4)
    findings = dict(db.execute("SELECT check_name, message FROM maintenance.findings WHERE run_id = %s",
                               (result.run.run_id,)))
    assert findings["cost_per_student"].startswith("0.0617 USD per student per day")
    assert findings["cost_growth"] == "cost rose 23% over the previous 7 days; most: Amazon EC2 +30%"
    metrics = dict(db.execute("SELECT name, value FROM maintenance.metrics WHERE run_id = %s AND system = 'costs'",
                              (result.run.run_id,)))
    assert metrics == {"cost": 1295.0, "student_days": 21000.0, "cost_per_student_day": 0.0617}
    summary = slack.messages("#ops-maintenance")[0]["text"]
    assert "1,295.00 USD from 2026-11-23 to 2026-11-30, 0.0617 per student per day (target 0.05)" in summary
