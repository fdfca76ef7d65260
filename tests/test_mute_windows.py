"""The planned windows as a real Alertmanager's mute time interval (Debian's Alertmanager 0.25):
written into its configuration file, reloaded, read back from its running configuration; a
receiver the routes do not know is refused by name; a configuration Alertmanager refuses puts
the previous file back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from maintenance import clock
from maintenance.calendar import MaintenanceCalendar
from maintenance.monitoring import mute_windows
from maintenance.policy import load_policy

from devtools import prom
from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = {"route": {"receiver": "maintenance", "group_wait": "1s",
                    "routes": [{"receiver": "platform-pager", "matchers": ['team="platform"']},
                               {"receiver": "maintenance", "matchers": ['severity="critical"']}]},
          "receivers": [{"name": "maintenance"}, {"name": "platform-pager"}]}


@pytest.fixture
def alertmanager(tmp_path, monkeypatch, platform_db, slack, airflow_db):
    server = prom.start_alertmanager(tmp_path / "am")
    path = tmp_path / "am" / "alertmanager.yml"
    path.write_text(json.dumps(CONFIG))
    mute_windows.get_json(f"{server.url}/-/reload", timeout=10, method="POST")
    use_policy(tmp_path, monkeypatch, monitoring={"alertmanager_url": server.url, "alertmanager_config_file": str(path),
                                                  "mute_windows_receivers": ["platform-pager"]})
    monkeypatch.setattr(clock, "now", lambda: NOW)
    yield server, path
    server.stop()


def _running(server) -> dict:
    status = mute_windows.get_json(f"{server.url}/api/v2/status", timeout=10)
    return yaml.safe_load(status["config"]["original"])


def test_the_windows_are_muted_on_the_named_routes_and_alertmanager_runs_them(alertmanager, platform_db):
    server, path = alertmanager
    expected = mute_windows.window_specs(MaintenanceCalendar.from_policy(load_policy()), NOW, 12)
    # The twelve months from December 2026: its window is over, March to June have none (the testing
    # blackouts): seven windows, the first on January's second Sunday (its first is in the holidays).
    assert len(expected) == 7
    assert expected[0] == {"times": [{"start_time": "02:00", "end_time": "06:00"}], "days_of_month": ["10"],
                           "months": ["january"], "years": ["2027"], "location": "America/New_York"}
    result = run_dag("maintenance_calendar_sync", NOW)
    assert result.states["alertmanager_windows"] == "success", result.states
    running = _running(server)
    (interval,) = [t for t in running["time_intervals"] if t["name"] == mute_windows.INTERVAL]
    assert len(interval["time_intervals"]) == 7 and interval["time_intervals"][0]["days_of_month"] == ["10"]
    routes = {r["receiver"]: r.get("mute_time_intervals") for r in running["route"]["routes"]}
    assert routes == {"platform-pager": [mute_windows.INTERVAL], "maintenance": None}
    assert platform_db.execute("SELECT action, outcome FROM maintenance.actions WHERE system = 'alertmanager'") == [
        ("mute_time_intervals", "applied")]
    written = path.stat().st_mtime_ns
    again = run_dag("maintenance_calendar_sync", NOW)  # nothing new: the file is not touched
    assert again.xcom("alertmanager_windows")["changed"] is False and path.stat().st_mtime_ns == written


def test_a_receiver_no_route_knows_is_refused_by_name_and_nothing_is_written(alertmanager, tmp_path, monkeypatch):
    server, path = alertmanager
    use_policy(tmp_path, monkeypatch, monitoring={"alertmanager_url": server.url, "alertmanager_config_file": str(path),
                                                  "mute_windows_receivers": ["platform-pagr"]})
    before = path.read_text()
    result = run_dag("maintenance_calendar_sync", NOW)
    assert result.states["alertmanager_windows"] == "failed"
    assert path.read_text() == before and "time_intervals" not in _running(server)


def test_a_configuration_alertmanager_refuses_puts_the_previous_one_back(alertmanager):
    server, path = alertmanager
    before = path.read_text()
    broken = CONFIG | {"route": CONFIG["route"] | {"receiver": "nobody"}}  # a receiver that does not exist
    with pytest.raises(RuntimeError, match="Alertmanager refused the new configuration"):
        mute_windows.apply(path, server.url, broken, timeout=10)
    assert path.read_text() == before
    assert _running(server)["route"]["receiver"] == "maintenance"  # still running the good one


def test_a_dry_run_writes_nothing(alertmanager):
    _, path = alertmanager
    before = path.read_text()
    result = run_dag("maintenance_calendar_sync", NOW, {"dry_run": True})
    assert result.states["alertmanager_windows"] == "success" and result.xcom("alertmanager_windows")["changed"]
    assert path.read_text() == before
