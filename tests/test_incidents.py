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
from pathlib import Path

import pytest

from devtools import prom
from tests.support.standalone import ROOT, standalone, wait_until_finished
from tests.support.standalone import runs as runs_of

TOKEN = "alert-intake-test-token"

IDLE_PLAYBOOK = {"name": "idle-in-transaction", "match": {"alertname": "PostgresIdleInTransaction"}, "steps": [{
    "action": "terminate_idle_in_transaction", "conn_id": "platform_db", "older_than_seconds": 2,
    "check": {"sql": "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                     "AND application_name = 'platform-api'", "within_seconds": 30, "every_seconds": 1}}]}


def _post(url: str, body, *, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _incident_dag_only(tmp_path: Path) -> Path:
    """A DAG folder with only the incident DAG: the scheduler parses it in a moment."""
    only = tmp_path / "dags"
    only.mkdir()
    (only / "maintenance_incident.py").symlink_to(ROOT / "dags" / "maintenance_incident.py")
    return only


@pytest.fixture(scope="module")
def airflow_with_intake(platform_db, slack_server, pagerduty_server, s3, tmp_path_factory):
    """One Airflow for the module (starting one takes a minute): the incident DAG alone, the
    policy with the idle-in-transaction playbook; a test may rewrite the policy file (the tasks
    read it again when it changes). Yields the API's address, the metadata DB and the policy."""
    import yaml

    from tests.conftest import use_policy

    tmp_path = tmp_path_factory.mktemp("intake")
    with pytest.MonkeyPatch.context() as monkeypatch:
        policy = use_policy(tmp_path, monkeypatch, incidents={"playbooks": [IDLE_PLAYBOOK]})
        assert yaml.safe_load(policy.read_text())["incidents"]["playbooks"]
        with standalone(tmp_path / "airflow", _incident_dag_only(tmp_path), ["maintenance_incident"],
                        AIRFLOW_VAR_MAINTENANCE_ALERT_TOKEN=TOKEN) as (env, airflow_db):
            yield f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}", airflow_db, policy


def _incident(db, key_start: str):
    rows = db.execute("SELECT id, severity, summary, outage, opened_at, resolved_at FROM maintenance.incidents "
                      "WHERE external_key LIKE %s", (f"alert:%@{key_start}%",))
    return rows[0] if rows else None


def test_a_firing_alert_opens_an_incident_and_its_resolution_resolves_it(airflow_with_intake, platform_db, slack,
                                                                          pagerduty, tmp_path):
    api, airflow_db, _ = airflow_with_intake
    before = len(runs_of(airflow_db, "maintenance_incident"))
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
        opened = wait_until_finished(airflow_db, "maintenance_incident", count=before + 1, timeout=180)[before:]
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
        runs = wait_until_finished(airflow_db, "maintenance_incident", count=before + 2, timeout=180)
        assert all(state == "success" for *_, state in runs), runs
    finally:
        alertmanager.stop()
    assert _incident(platform_db, starts.strftime("%Y-%m-%dT%H:%M:%S"))[5] == ends
    assert pagerduty.alerts == {f"pathfinity-incident-{incident_id}": "resolved"}
    assert any(m["text"].startswith(f":white_check_mark: Incident {incident_id} resolved")
               for m in slack.messages("#incidents"))


# --- from a rule in Prometheus to the post-mortem ----------------------------------------------------

IDLE_RULE = """groups:
  - name: e2e
    rules:
      - alert: PostgresIdleInTransaction
        expr: max by (instance) (pg_stat_activity_max_tx_duration{state="idle in transaction"}) > 2
        labels: {severity: critical, system: database, outage: "true"}
        annotations: {summary: "A session idles in a transaction"}
"""


def _wait_for_resolution(db, log: Path, timeout: float) -> tuple:
    from maintenance.ledger.schema import ensure_schema

    with db.connect() as conn:
        ensure_schema(conn, "maintenance")  # read before the first task makes it
    deadline, row = time.monotonic() + timeout, None
    while row is None or row[5] is None:
        assert time.monotonic() < deadline, (row, log.read_text()[-3000:])
        time.sleep(2)
        found = db.execute("SELECT id, severity, summary, outage, opened_at, resolved_at FROM maintenance.incidents "
                           "WHERE labels->>'alertname' = 'PostgresIdleInTransaction'")
        row = found[0] if found else None
    return row


def test_a_rule_firing_in_prometheus_runs_its_playbook_resolves_and_gets_its_post_mortem(
        airflow_with_intake, platform_db, slack, pagerduty, s3, redis_server, tmp_path):
    """The procedures' incident loop on real servers: the rule fires in Prometheus (reading the
    PostgreSQL exporter), Alertmanager posts to the intake on Airflow's API server, the incident
    opens as sev2 (told, paged, diagnostics in S3), its playbook ends the idle session and its
    check passes, the rule stops firing, the resolved notification resolves the incident, and
    its post-mortem is written with a timeline that has all of it."""
    import gzip

    import psycopg
    import yaml

    from tests.conftest import empty_bucket

    api, airflow_db, policy = airflow_with_intake
    before = len(runs_of(airflow_db, "maintenance_incident"))
    empty_bucket(s3, "pathfinity-maintenance")
    (tmp_path / "rules.yml").write_text(IDLE_RULE)
    started, stuck = [], None
    try:
        started.append(prom.start_exporter(tmp_path / "exporter", "postgres", platform_db.dsn + "?sslmode=disable"))
        started.append(prom.start_alertmanager(tmp_path / "alertmanager", webhook=f"{api}/maintenance/alertmanager",
                                               webhook_token=TOKEN))
        started.append(prom.start_prometheus(
            tmp_path / "prometheus", rule_files=[tmp_path / "rules.yml"], scrape_self=False,
            scrape={"postgres": [started[0].url.removeprefix("http://")]}, scrape_interval="1s",
            evaluation_interval="1s", alertmanager=started[1].url))
        # The post-mortem reads the alert's states from this Prometheus (the policy file is re-read).
        data = yaml.safe_load(policy.read_text())
        data["monitoring"]["prometheus_url"] = started[2].url
        policy.write_text(yaml.safe_dump(data))
        stuck = psycopg.connect(platform_db.dsn, application_name="platform-api")
        stuck.execute("SELECT count(*) FROM learning_sessions")  # and idles in its transaction
        row = _wait_for_resolution(platform_db, policy.parent / "airflow" / "standalone.log", 240)
        runs = wait_until_finished(airflow_db, "maintenance_incident", count=before + 2, timeout=240)[before:]
    finally:
        for server in reversed(started):
            server.stop()
        if stuck is not None:
            stuck.close()
    assert all(state == "success" for *_, state in runs), runs
    incident_id, severity, summary, outage, opened_at, resolved_at = row
    assert (severity, outage) == ("sev2", True) and summary.startswith("PostgresIdleInTransaction: A session idles")
    # Told and paged when it opened; the page resolved with it.
    texts = [m["text"] for m in slack.messages("#incidents")]
    assert any(t.startswith(f":rotating_light: Incident {incident_id} opened: *sev2*") for t in texts), texts
    assert any(t.startswith(f":wrench: Incident {incident_id}: playbook *idle-in-transaction* recovered it")
               for t in texts), texts
    assert pagerduty.alerts == {f"pathfinity-incident-{incident_id}": "resolved"}
    # The diagnostics bundle is in S3.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="pathfinity-maintenance",
                                                  Prefix=f"incidents/{incident_id}/")["Contents"]]
    bundle_key = next(k for k in keys if "/diagnostics-" in k)
    bundle = json.loads(gzip.decompress(s3.get_object(Bucket="pathfinity-maintenance", Key=bundle_key)["Body"].read()))
    assert any(s["state"] == "idle in transaction" for s in bundle["postgres platform_db"]["sessions"])
    # The playbook's step and check are in the ledger; the session is gone.
    steps = platform_db.execute("SELECT action, outcome, rows_affected FROM maintenance.actions "
                                "WHERE task_id = 'run_playbook' ORDER BY id")
    assert steps == [("terminate_idle_in_transaction", "applied", 1), ("playbook_check", "applied", None)]
    # Resolved by the alert's resolution, its time to resolve in the ledger, counted as an outage's MTTR.
    from maintenance.ledger import kpis

    with platform_db.connect() as conn:
        k = kpis.compute(conn, "maintenance", opened_at - timedelta(hours=1), resolved_at + timedelta(hours=1),
                         now=resolved_at + timedelta(hours=1))
    assert k.mttr_minutes == pytest.approx((resolved_at - opened_at).total_seconds() / 60)
    assert 0 < (resolved_at - opened_at).total_seconds() < 240
    # The post-mortem: every source in one timeline.
    markdown = s3.get_object(Bucket="pathfinity-maintenance",
                             Key=f"incidents/{incident_id}/post-mortem.md")["Body"].read().decode()
    timeline = markdown.split("## Timeline")[1].split("## Five whys")[0]
    for seen in ("| prometheus | alert PostgresIdleInTransaction firing", "| incident | opened: opened (sev2)",
                 "| incident | paged: PagerDuty open", "| incident | playbook step: idle-in-transaction step 1 "
                 "terminate_idle_in_transaction: ended 1 of 1 session(s)", "| incident | playbook check:",
                 "| incident | resolved: resolved (the alert resolved)"):
        assert seen in timeline, timeline
