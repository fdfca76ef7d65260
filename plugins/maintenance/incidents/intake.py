"""Alerts open incidents: Alertmanager's webhook, received on Airflow's API server.

Mounted by the plugin ``plugins/maintenance_alert_intake.py`` at ``/maintenance``, so
Alertmanager posts to ``<airflow>/maintenance/alertmanager`` with ``Authorization: Bearer
<token>``, the token kept in the Airflow Variable the policy names
(``incidents.alert_token_variable``). Each firing alert triggers a ``maintenance_incident`` run
that opens its incident (severity from the alert's labels, ``incidents.from_alerts``); its
resolved notification triggers the run that resolves it. The intake only triggers runs: the
ledger, Slack and PagerDuty are the incident DAG's, as for an incident typed into the form.
Alertmanager repeats its notifications; each alert's open and resolve runs have fixed run ids,
so a repeat triggers nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import FastAPI, Header, HTTPException, Request

INCIDENT_DAG = "maintenance_incident"

app = FastAPI(title="Pathfinity maintenance: alert intake",
              description="Alertmanager's webhook: firing alerts open incidents, resolved ones resolve them.")


def alert_key(alert: dict) -> str:
    """One alert's firing: its fingerprint and when it started, to the second in UTC however it
    is written (a later firing is a new incident)."""
    from datetime import UTC, datetime

    fingerprint = alert.get("fingerprint") or hashlib.sha256(str(sorted(alert["labels"].items())).encode()).hexdigest()
    started = alert.get("startsAt", "")
    try:
        started = datetime.fromisoformat(started.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise HTTPException(422, f"alerts[].startsAt: not a date and time: {started!r}") from None
    return f"{fingerprint[:16]}@{started}"


def conf_for(alert: dict, policy) -> tuple[str, dict]:
    """The incident DAG's form for one alert, and the action it asks."""
    labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
    key = alert_key(alert)
    if alert.get("status") == "resolved":
        return "resolve", {"action": "resolve", "alert_key": key, "ended_at": alert.get("endsAt")}
    severity = policy.incidents.severity_of(labels)
    summary = annotations.get("summary") or annotations.get("description") or labels.get("alertname", "alert")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return "open", {"action": "open", "alert_key": key, "severity": severity, "started_at": alert.get("startsAt"),
                    "summary": f"{labels.get('alertname', 'alert')}: {summary} ({shown})"[:500],
                    "outage": labels.get("outage") == "true", "labels": {k: str(v) for k, v in labels.items()}}


def _token(variable: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(variable, default_var=None)


def _trigger(run_id: str, conf: dict) -> str:
    """'triggered', or 'already' when this alert's run exists; a paused or missing DAG refuses."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagRunAlreadyExists
    from airflow.models import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    model = DagModel.get_current(INCIDENT_DAG)
    if model is None:
        raise HTTPException(503, f"{INCIDENT_DAG} is not known to this Airflow: is the project's DAG folder loaded?")
    if model.is_paused:
        # Queued behind a paused DAG, the incident would open nowhere: refuse, so Alertmanager
        # retries and its log says why.
        raise HTTPException(503, f"{INCIDENT_DAG} is paused: unpause it so alerts can open incidents")
    try:
        trigger_dag(INCIDENT_DAG, run_id=run_id, conf=conf, triggered_by=DagRunTriggeredByType.REST_API,
                    triggering_user_name="alertmanager")
    except DagRunAlreadyExists:
        return "already"
    return "triggered"


@app.post("/alertmanager")
async def alertmanager(request: Request, authorization: str | None = Header(default=None)) -> dict:
    import asyncio

    from maintenance.policy import load_policy

    policy = load_policy()
    expected = await asyncio.to_thread(_token, policy.incidents.alert_token_variable)
    if not expected:
        raise HTTPException(503, f"no token: set the Airflow Variable {policy.incidents.alert_token_variable}")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "a bearer token is required (Authorization: Bearer <token>)")
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise HTTPException(422, "alerts: expected Alertmanager's webhook payload (version 4)")
    done = []
    for alert in body["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise HTTPException(422, "alerts[]: each alert needs its labels")
        action, conf = conf_for(alert, policy)
        run_id = f"alert__{hashlib.sha256(conf['alert_key'].encode()).hexdigest()[:20]}__{action}"
        outcome = await asyncio.to_thread(_trigger, run_id, conf)
        done.append({"alert": alert["labels"].get("alertname"), "action": action, "run_id": run_id,
                     "outcome": outcome, **({"severity": conf["severity"]} if action == "open" else {})})
    return {"runs": done}
