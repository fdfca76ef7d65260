"""RecordIncidentOperator: an incident opened, acknowledged or resolved from the trigger form,
into the ledger, and told to the people its severity names."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class RecordIncidentOperator(MaintenanceOperator):
    """Opens, acknowledges or resolves an incident in the ledger from the DAG's trigger form; its
    severity's channel hears of it, and PagerDuty for the severities that page. A re-run of the
    same run changes nothing twice: the incident is keyed by the run, the page by the incident."""

    def run(self, run) -> dict:
        from maintenance import clock
        from maintenance.form import IncidentForm
        from maintenance.ledger import store

        form = IncidentForm.of(run.context, clock.now())
        conn, schema = run.ledger.conn, run.ledger.schema_name
        if form.action == "open":
            incident_id = store.open_incident(
                conn, schema, severity=form.severity, summary=form.summary, opened_at=form.started_at,
                outage=form.outage, planned=form.planned, cause=form.cause,
                caused_by_action=form.caused_by_action,
                external_key=f"alert:{form.alert_key}" if form.alert_key else run.ti.run_id)
            if form.ended_at is not None:  # recorded after the fact: told, not paged
                store.resolve_incident(conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s opened (%s, outage=%s): %s", incident_id, form.severity, form.outage,
                          form.summary)
        elif form.action == "acknowledge":
            incident_id = form.incident_id or store.incident_by_key(conn, schema, f"alert:{form.alert_key}")
            at = store.acknowledge_incident(conn, schema, incident_id, clock.now())
            self.log.info("Incident %s acknowledged at %s", incident_id, at.isoformat())
        else:
            incident_id = form.incident_id or store.incident_by_key(conn, schema, f"alert:{form.alert_key}")
            store.resolve_incident(conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s resolved at %s", incident_id, form.ended_at.isoformat())
        told = self.tell(run, form.action, store.incident(conn, schema, incident_id), after_the_fact=(
            form.action == "open" and form.ended_at is not None))
        return {"incident_id": incident_id, "action": form.action, **told}

    def tell(self, run, event: str, incident: dict, *, after_the_fact: bool) -> dict:
        from maintenance.incidents import notify
        from maintenance.notify import slack

        policy = run.policy
        rule = policy.incidents.severities[incident["severity"]]
        minutes = None
        if event == "resolve" and incident["resolved_at"]:
            minutes = (incident["resolved_at"] - incident["opened_at"]).total_seconds() / 60
        text = notify.message(event, incident, minutes=minutes,
                              run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        told = {"channel": rule.channel, "delivered": slack.post(policy.connections.slack, rule.channel, text),
                "paged": None}
        if rule.page and policy.incidents.pagerduty_conn_id and not after_the_fact:
            told["paged"] = notify.page(policy.incidents.pagerduty_conn_id, event, incident)
            self.log.info("PagerDuty: %s %s", event, told["paged"])
        return told

    def describe(self, summary: dict) -> str:
        verb = {"open": "opened", "acknowledge": "acknowledged", "resolve": "resolved"}[summary["action"]]
        paged = f", paged ({summary['paged']})" if summary.get("paged") else ""
        return f"incident {summary['incident_id']} {verb}; told {summary['channel']}{paged}"
