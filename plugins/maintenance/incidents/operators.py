"""RecordIncidentOperator: an incident opened or resolved from the trigger form, into the ledger."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class RecordIncidentOperator(MaintenanceOperator):
    """Opens or resolves an incident in the ledger from the DAG's trigger form."""

    def run(self, run) -> dict:
        from maintenance import clock
        from maintenance.form import IncidentForm
        from maintenance.ledger.store import open_incident, resolve_incident

        form = IncidentForm.of(run.context, clock.now())
        schema = run.ledger.schema_name
        if form.action == "open":
            incident_id = open_incident(
                run.ledger.conn, schema, severity=form.severity, summary=form.summary, opened_at=form.started_at,
                outage=form.outage, planned=form.planned, cause=form.cause,
                caused_by_action=form.caused_by_action, external_key=run.ti.run_id)
            if form.ended_at is not None:
                resolve_incident(run.ledger.conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s opened (%s, outage=%s): %s", incident_id, form.severity, form.outage,
                          form.summary)
        else:
            incident_id = form.incident_id
            resolve_incident(run.ledger.conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s resolved at %s", incident_id, form.ended_at.isoformat())
        return {"incident_id": incident_id, "action": form.action}

    def describe(self, summary: dict) -> str:
        verb = {"open": "opened", "resolve": "resolved"}[summary["action"]]
        return f"incident {summary['incident_id']} {verb}"
