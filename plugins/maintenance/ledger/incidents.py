"""Recording incidents from the Airflow UI: the form's fields, validated, into the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maintenance.errors import InputError
from maintenance.operator import MaintenanceOperator

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


@dataclass(frozen=True)
class IncidentForm:
    action: str
    severity: str
    summary: str
    outage: bool
    planned: bool
    started_at: datetime
    ended_at: datetime | None
    incident_id: int | None
    cause: str | None
    caused_by_action: int | None


def _when(name: str, value, default: datetime | None) -> datetime | None:
    if value in (None, ""):
        return default
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{name}: not a date and time (ISO 8601), got {value!r}") from None
    if parsed.tzinfo is None:
        raise InputError(f"{name}: give a timezone offset, e.g. 2026-11-27T03:10:00-05:00")
    return parsed


def parse_form(params: dict, now: datetime) -> IncidentForm:
    action = params.get("action", "open")
    if action not in ("open", "resolve"):
        raise InputError(f"action: must be 'open' or 'resolve', got {action!r}")
    severity = params.get("severity", "sev3")
    if severity not in SEVERITIES:
        raise InputError(f"severity: must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    summary = (params.get("summary") or "").strip()
    incident_id = params.get("incident_id")
    if action == "open" and not summary:
        raise InputError("summary: say what happened (required to open an incident)")
    if action == "resolve" and incident_id in (None, ""):
        raise InputError("incident_id: which incident to resolve (its number from the open run's log)")
    started = _when("started_at", params.get("started_at"), now)
    ended = _when("ended_at", params.get("ended_at"), now if action == "resolve" else None)
    if ended is not None and action == "open" and ended < started:
        raise InputError(f"ended_at: {ended.isoformat()} is before started_at {started.isoformat()}")
    return IncidentForm(action, severity, summary, bool(params.get("outage")), bool(params.get("planned")),
                        started, ended, int(incident_id) if incident_id not in (None, "") else None,
                        (params.get("cause") or "").strip() or None,
                        int(params["caused_by_action"]) if params.get("caused_by_action") not in (None, "") else None)


class RecordIncidentOperator(MaintenanceOperator):
    """Opens or resolves an incident in the ledger from the DAG's trigger form."""

    def run(self, context, ledger, dry_run: bool) -> dict:
        from maintenance import clock
        from maintenance.ledger.store import open_incident, resolve_incident

        form = parse_form(context["params"], clock.now())
        schema = ledger.schema_name
        if form.action == "open":
            incident_id = open_incident(
                ledger.conn, schema, severity=form.severity, summary=form.summary, opened_at=form.started_at,
                outage=form.outage, planned=form.planned, cause=form.cause,
                caused_by_action=form.caused_by_action, external_key=context["ti"].run_id)
            if form.ended_at is not None:
                resolve_incident(ledger.conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s opened (%s, outage=%s): %s", incident_id, form.severity, form.outage,
                          form.summary)
        else:
            incident_id = form.incident_id
            resolve_incident(ledger.conn, schema, incident_id, form.ended_at, form.cause)
            self.log.info("Incident %s resolved at %s", incident_id, form.ended_at.isoformat())
        return {"incident_id": incident_id, "action": form.action}

    def describe(self, summary: dict) -> str:
        verb = {"open": "opened", "resolve": "resolved"}[summary["action"]]
        return f"incident {summary['incident_id']} {verb}"
