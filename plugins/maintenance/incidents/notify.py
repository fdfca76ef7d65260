"""Telling people about an incident: its severity's Slack channel, and PagerDuty for the
severities that page (Events API v2 through the Airflow PagerDuty provider). One dedup key per
incident, so acknowledging and resolving it in the ledger acknowledges and resolves the page."""

from __future__ import annotations

# PagerDuty's severities for ours.
PAGERDUTY_SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}


def spoken(seconds: float) -> str:
    """A duration as on-call says it: 40 s, 12 min, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def dedup_key(incident_id: int) -> str:
    return f"pathfinity-incident-{incident_id}"


def message(event: str, incident: dict, *, run_url: str, minutes: float | None = None) -> str:
    head = {"open": ":rotating_light: Incident", "acknowledge": ":eyes: Incident",
            "resolve": ":white_check_mark: Incident"}
    verb = {"open": "opened", "acknowledge": "acknowledged", "resolve": "resolved"}[event]
    after = f" after {spoken(minutes * 60)}" if minutes is not None else ""
    outage = " (platform down)" if incident.get("outage") else ""
    return (f"{head[event]} {incident['id']} {verb}{after}: *{incident['severity']}*{outage} {incident['summary']}\n"
            f"Run: <{run_url}|{run_url.rsplit('/', 1)[-1]}>")


def page(conn_id: str, event: str, incident: dict, *, source: str = "pathfinity-maintenance") -> str:
    """Trigger, acknowledge or resolve the incident's page; returns its dedup key."""
    import pagerduty
    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data

    hook = PagerdutyEventsHook(pagerduty_events_conn_id=conn_id)
    # The provider's client always posts to events.pagerduty.com; a connection that names a
    # host (a proxy, a regional endpoint, a test server) is honoured, and the extra ``verify``
    # (a CA bundle, for a proxy with its own certificate authority).
    conn = hook.get_connection(conn_id)
    client = pagerduty.EventsApiV2Client(hook.integration_key, base_url=conn.host or None,
                                         verify=conn.extra_dejson.get("verify", True))
    key = dedup_key(incident["id"])
    if event != "open":
        return client.acknowledge(key) if event == "acknowledge" else client.resolve(key)
    data = prepare_event_data(summary=f"{incident['severity']}: {incident['summary']}"[:1024],
                              severity=PAGERDUTY_SEVERITY[incident["severity"]], source=source,
                              custom_details={"incident": incident["id"], "outage": incident["outage"]},
                              action="trigger", dedup_key=key)
    return client.send_event(data.pop("action"), **data)
