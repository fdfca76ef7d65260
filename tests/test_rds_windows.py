"""RDS maintenance follows the calendar: windows in a blackout move to the planned window's slot
(moto's RDS), pending maintenance is opted in only in the planned window (RDS's pending-action
calls answered by devtools/rds_maintenance_server.py in front of moto, which has none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from maintenance import clock
from maintenance.aws.rds_windows import WeeklyWindow, for_period
from maintenance.calendar import MaintenanceCalendar
from maintenance.policy import load_policy

from devtools.rds_maintenance_server import PendingState, start_rds_maintenance_server
from tests.conftest import set_conn, use_policy
from tests.support.airflow_runs import run_dag

OUTSIDE = datetime(2026, 12, 10, 7, 0, tzinfo=UTC)  # Thursday 02:00 New York
IN_WINDOW = datetime(2027, 1, 10, 8, 0, tzinfo=UTC)  # Sunday 03:00 EST: January's window (moved off the holidays)


def test_weekly_windows_read_and_written_as_rds_does():
    window = WeeklyWindow.parse("Sun:23:30-mon:00:30")
    assert window.text() == "sun:23:30-mon:00:30"
    first, second = window.occurrences(datetime(2026, 12, 7, 0, 0, tzinfo=UTC), 2)  # a Monday, mid-window
    assert first == (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), datetime(2026, 12, 7, 0, 30, tzinfo=UTC))
    assert second[0] == datetime(2026, 12, 13, 23, 30, tzinfo=UTC)
    for bad in ("sun 07:00-sun 11:00", "sunday:07:00-sunday:08:00", "", "sun:25:00-sun:26:00"):
        with pytest.raises(ValueError, match="PreferredMaintenanceWindow: not ddd:hh24:mi-ddd:hh24:mi"):
            WeeklyWindow.parse(bad)
    calendar = MaintenanceCalendar.from_policy(load_policy())
    assert for_period(calendar.window_in(2027, 1)) == "sun:07:00-sun:11:00"  # 02:00-06:00 EST
    assert for_period(calendar.window_in(2027, 7)) == "sun:06:00-sun:10:00"  # EDT in summer


@pytest.fixture
def rds(s3_server, platform_db, slack, airflow_db, tmp_path, monkeypatch):
    import boto3

    state = PendingState(moto_url=s3_server)
    server = start_rds_maintenance_server(state)
    set_conn("platform_aws", {"conn_type": "aws", "login": "testing", "password": "testing",
                              "extra": {"region_name": "us-east-1", "endpoint_url": state.url}})
    client = boto3.client("rds", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    for db in client.describe_db_instances()["DBInstances"]:
        client.delete_db_instance(DBInstanceIdentifier=db["DBInstanceIdentifier"], SkipFinalSnapshot=True)
    for name, window in (("platform", "sun:07:00-sun:11:00"), ("reports", "wed:03:00-wed:04:00")):
        client.create_db_instance(DBInstanceIdentifier=name, Engine="postgres", EngineVersion="16.4",
                                  DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="admin",
                                  MasterUserPassword="password123", PreferredMaintenanceWindow=window)
    arn = {db["DBInstanceIdentifier"]: db["DBInstanceArn"] for db in client.describe_db_instances()["DBInstances"]}
    state.pending[arn["platform"]] = [
        {"Action": "system-update", "Description": "New Operating System update is available",
         "AutoAppliedAfterDate": None, "OptInStatus": None},
        {"Action": "db-upgrade", "Description": "Minor version upgrade", "AutoAppliedAfterDate": None,
         "OptInStatus": "next-maintenance"}]
    use_policy(tmp_path, monkeypatch, rds_maintenance={"enabled": True})
    yield client, state, arn
    server.shutdown()
    set_conn("platform_aws", {"conn_type": "aws", "login": "testing", "password": "testing",
                              "extra": {"region_name": "us-east-1", "endpoint_url": s3_server}})


def _windows(client) -> dict[str, str]:
    return {db["DBInstanceIdentifier"]: db["PreferredMaintenanceWindow"]
            for db in client.describe_db_instances()["DBInstances"]}


def _run(monkeypatch, at: datetime, conf: dict | None = None):
    monkeypatch.setattr(clock, "now", lambda: at)
    return run_dag("maintenance_rds", at, conf or {})


def test_a_window_in_a_blackout_moves_to_the_planned_slot_and_nothing_is_opted_in_outside_the_window(
        rds, monkeypatch, platform_db):
    client, state, _ = rds
    result = _run(monkeypatch, OUTSIDE)
    assert result.states["rds_windows"] == "success" and result.states["pending_maintenance"] == "skipped"
    # Wednesdays 03:00 UTC fall in the holidays on 2026-12-22 and -29: moved to Sunday 07:00-11:00 UTC,
    # the slot of the next planned window (2027-01-10 02:00 EST); platform is already there.
    assert _windows(client) == {"platform": "sun:07:00-sun:11:00", "reports": "sun:07:00-sun:11:00"}
    summary = {i["instance"]: i for i in result.xcom("rds_windows")["instances"]}
    assert summary["reports"]["conflicts"][0] == "2026-12-22 22:00 EST in blackout holidays"
    assert summary["platform"]["proposed"] is None and summary["platform"]["conflicts"]
    assert platform_db.execute("SELECT target, action, outcome FROM maintenance.actions WHERE system = 'rds'") == [
        ("reports", "move_maintenance_window", "applied")]
    assert not [r for r in state.requests if r[2] == "ApplyPendingMaintenanceAction"]


def test_in_the_window_pending_maintenance_is_opted_in_for_the_next_maintenance(rds, monkeypatch, platform_db):
    _, state, arn = rds
    result = _run(monkeypatch, IN_WINDOW)
    assert result.states["pending_maintenance"] == "success", result.states
    applied = [r for r in state.requests if r[2] == "ApplyPendingMaintenanceAction"]
    assert len(applied) == 1  # the one not already opted in
    assert [a["OptInStatus"] for a in state.pending[arn["platform"]]] == ["next-maintenance", "next-maintenance"]
    assert result.xcom("pending_maintenance")["opted_in"] == [f"{arn['platform']} system-update"]
    assert platform_db.execute("SELECT action, outcome FROM maintenance.actions WHERE system = 'rds' AND "
                               "action = 'opt_in_pending_maintenance'") == [("opt_in_pending_maintenance", "applied")]


def test_a_dry_run_changes_no_window_and_opts_nothing_in(rds, monkeypatch):
    client, state, arn = rds
    _run(monkeypatch, OUTSIDE, {"dry_run": True})
    _run(monkeypatch, IN_WINDOW, {"dry_run": True})
    assert _windows(client)["reports"] == "wed:03:00-wed:04:00"
    assert {r[2] for r in state.requests} <= {"DescribeDBInstances", "DescribePendingMaintenanceActions"}
    assert state.pending[arn["platform"]][0]["OptInStatus"] is None


def test_off_by_default_it_asks_aws_nothing(rds, monkeypatch, tmp_path):
    _, state, _ = rds
    use_policy(tmp_path, monkeypatch)
    result = _run(monkeypatch, IN_WINDOW)
    assert result.states["rds_windows"] == "skipped" and result.states["pending_maintenance"] == "skipped"
    assert state.requests == []
