"""Alerts open incidents, end to end: a real Alertmanager posts its webhook to the intake that
the project's plugin mounts on a real Airflow API server (`airflow standalone`); the incident
DAG runs under the scheduler, records the incident with its severity, tells Slack and pages
PagerDuty; the alert's resolution resolves it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from devtools import prom
from tests.support.standalone import ROOT, standalone, wait_until_finished

TOKEN = "alert-intake-test-token"


def _post(url: str, body, *, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def airflow_with_intake(platform_db, slack, pagerduty, tmp_path):
    only = tmp_path / "dags"
    only.mkdir()
    (only / "maintenance_incident.py").symlink_to(ROOT / "dags" / "maintenance_incident.py")
    with standalone(tmp_path / "airflow", only, ["maintenance_incident"],
                    AIRFLOW_VAR_MAINTENANCE_ALERT_TOKEN=TOKEN) as (env, airflow_db):
        yield f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}", airflow_db


def _incident(db, key_start: str):
    rows = db.execute("SELECT id, severity, summary, outage, opened_at, resolved_at FROM maintenance.incidents "
                      "WHERE external_key LIKE %s", (f"alert:%@{key_start}%",))
    return rows[0] if rows else None


def test_a_firing_alert_opens_an_incident_and_its_resolution_resolves_it(airflow_with_intake, platform_db, slack,
                                                                          pagerduty, tmp_path):
    api, airflow_db = airflow_with_intake
    intake = f"{api}/maintenance/alertmanager"
    assert _post(intake, {"alerts": []})[0] == 401  # no token
    assert _post(intake, {"alerts": []}, token="wrong")[0] == 401
    assert _post(intake, {"nothing": 1}, token=TOKEN)[0] == 422

    alertmanager = prom.start_alertmanager(tmp_path / "alertmanager", webhook=intake, webhook_token=TOKEN)
    try:
        starts = datetime.now(UTC).replace(microsecond=0)
        alert = {"labels": {"alertname": "PostgresDown", "severity": "critical", "system": "postgres",
                            "instance": "db:9187"},
                 "annotations": {"summary": "PostgreSQL db:9187 does not answer the exporter"},
                 "startsAt": starts.isoformat(), "endsAt": (starts + timedelta(hours=1)).isoformat()}
        assert _post(f"{alertmanager.url}/api/v2/alerts", [alert])[0] == 200
        opened = wait_until_finished(airflow_db, "maintenance_incident", count=1, timeout=180)
        assert [(kind, state) for _, kind, state in opened] == [("manual", "success")], opened
        incident = _incident(platform_db, starts.strftime("%Y-%m-%dT%H:%M:%S"))
        assert incident is not None, platform_db.execute("SELECT external_key FROM maintenance.incidents")
        incident_id, severity, summary, outage, opened_at, resolved_at = incident
        assert (severity, outage, resolved_at) == ("sev1", False, None) and opened_at == starts
        assert summary.startswith("PostgresDown: PostgreSQL db:9187 does not answer the exporter (instance=db:9187")
        assert any(m["text"].startswith(f":rotating_light: Incident {incident_id} opened: *sev1*")
                   for m in slack.messages("#incidents"))
        assert pagerduty.alerts == {f"pathfinity-incident-{incident_id}": "triggered"}

        # Alertmanager repeats a firing alert: the same incident, no second run.
        with urllib.request.urlopen(f"{alertmanager.url}/api/v2/alerts", timeout=5) as answer:
            (held,) = json.loads(answer.read())
        again = _post(intake, {"alerts": [alert | {"status": "firing", "fingerprint": held["fingerprint"]}]},
                      token=TOKEN)
        assert again[0] == 200 and again[1]["runs"][0]["outcome"] == "already", again

        ends = datetime.now(UTC).replace(microsecond=0)
        assert _post(f"{alertmanager.url}/api/v2/alerts", [alert | {"endsAt": ends.isoformat()}])[0] == 200
        deadline = time.monotonic() + 180
        while _incident(platform_db, starts.strftime("%Y-%m-%dT%H:%M:%S"))[5] is None:
            assert time.monotonic() < deadline, "the resolved alert did not resolve the incident"
            time.sleep(2)
        runs = wait_until_finished(airflow_db, "maintenance_incident", count=2, timeout=180)
        assert all(state == "success" for *_, state in runs), runs
    finally:
        alertmanager.stop()
    assert _incident(platform_db, starts.strftime("%Y-%m-%dT%H:%M:%S"))[5] == ends
    assert pagerduty.alerts == {f"pathfinity-incident-{incident_id}": "resolved"}
    assert any(m["text"].startswith(f":white_check_mark: Incident {incident_id} resolved")
               for m in slack.messages("#incidents"))
