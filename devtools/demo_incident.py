"""`make demo-incident`: one incident from alert to post-mortem, on the running demo.

A session of the platform's database opens a transaction and idles in it. The demo's Prometheus
(the platform's rules, with PostgresIdleInTransaction's threshold at DEMO_IDLE_SECONDS instead of
5 minutes) fires the alert; Alertmanager posts it to the alert intake on the demo's Airflow;
``maintenance_incident`` opens the incident (told in Slack's stand-in, diagnostics in S3), its
playbook ends the idle session and checks that it is gone; the alert resolves, the incident with
it, and its post-mortem is written to S3. This prints each step as the ledger records it, and
the post-mortem's address at the end.

The demo's own changes to the shipped settings (both in ``.demo/``): the rule's threshold and
``for``, the playbook's idle time, and post-mortems for sev3 too (the alert is a warning).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

DEMO_IDLE_SECONDS = 20


def demo_rules(source: Path, target: Path) -> Path:
    """The platform's rules with the idle-in-transaction alert quick enough for a demo."""
    import yaml

    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "PostgresIdleInTransaction":
                rule["expr"] = rule["expr"].replace("> 300", f"> {DEMO_IDLE_SECONDS}")
                rule["for"] = "5s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def demo_incidents(policy: dict, playbooks_file: Path) -> None:
    """The shipped playbooks with the demo's idle time, and post-mortems for sev3 as well."""
    import yaml

    books = yaml.safe_load(playbooks_file.read_text())["playbooks"]
    for book in books:
        for step in book["steps"]:
            if step["action"] == "terminate_idle_in_transaction":
                step["older_than_seconds"] = DEMO_IDLE_SECONDS
                step["check"]["sql"] = step["check"]["sql"].replace("'300 seconds'", f"'{DEMO_IDLE_SECONDS} seconds'")
    policy["incidents"] |= {"playbooks": books, "post_mortem_severities": ["sev1", "sev2", "sev3"]}


def _ledger(dsn: str, query: str, params=()) -> list[tuple]:
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
    except psycopg.errors.UndefinedTable:  # the ledger is made by the first task that runs
        return []


def run(state: dict, env: dict[str, str], say) -> int:
    import psycopg

    from devtools.demo import DEMO

    if not state.get("prometheus_url"):
        say("this demo has no Prometheus (not installed?): the incident walk-through needs it")
        return 1
    dsn = json.loads(state["connections"]["AIRFLOW_CONN_PLATFORM_DB"])
    dsn = f"postgresql://{dsn['login']}@{dsn['host']}:{dsn['port']}/{dsn['schema']}"
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "dags", "unpause", "maintenance_incident"], env=env, check=True, capture_output=True)
    say("maintenance_incident unpaused: alerts can open incidents")
    session = psycopg.connect(dsn, application_name="platform-api")
    session.execute("SELECT count(*) FROM learning_sessions")
    say(f"a platform session opened a transaction and idles in it (pid {session.info.backend_pid}); "
        f"PostgresIdleInTransaction fires after {DEMO_IDLE_SECONDS}s idle")
    seen, deadline, incident = set(), time.monotonic() + 300, None
    try:
        while time.monotonic() < deadline:
            time.sleep(2)
            rows = _ledger(dsn, "SELECT id FROM maintenance.incidents WHERE labels->>'alertname' = "
                                "'PostgresIdleInTransaction' AND opened_at > now() - interval '10 minutes' "
                                "ORDER BY id DESC LIMIT 1")
            if not rows:
                continue
            incident = rows[0][0]
            for at, kind, text in _ledger(dsn, "SELECT at, kind, text FROM maintenance.incident_events "
                                               "WHERE incident_id = %s ORDER BY at, id", (incident,)):
                if (kind, text) not in seen:
                    seen.add((kind, text))
                    say(f"incident {incident} {at:%H:%M:%S} {kind}: {text.splitlines()[0][:160]}")
            if any(kind == "post-mortem" for kind, _ in seen):
                break
        else:
            say(f"no post-mortem after 5 minutes: see the maintenance_incident runs in the UI and {DEMO}/"
                "airflow-standalone.log")
            return 1
    finally:
        session.close()
    key = f"incidents/{incident}/post-mortem.html"
    say(f"post-mortem: {state['s3_endpoint']}/pathfinity-maintenance/{key} (the demo's S3; also in .demo/s3)")
    say(f"in the UI: {state['url']}/dags/maintenance_incident (its runs: open, then resolve)")
    return 0
