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
        record = store.incident(conn, schema, incident_id)
        after_the_fact = form.action == "open" and form.ended_at is not None
        diagnostics = self.diagnostics(run, record) if form.action == "open" and not after_the_fact else None
        told = self.tell(run, form.action, record, after_the_fact=after_the_fact, diagnostics=diagnostics)
        return {"incident_id": incident_id, "action": form.action, "diagnostics": diagnostics, **told}

    def diagnostics(self, run, incident: dict) -> str:
        """Gather the bundle and store it in S3 as one file; its s3:// address, or why it is not there."""
        import gzip
        import json

        from maintenance import clock, s3files
        from maintenance.incidents import diagnostics
        from maintenance.pgsession import session
        from maintenance.redis.operators import RedisCacheOptimizationOperator

        policy, now = run.policy, clock.now()

        def postgres(conn_id):
            with session(conn_id) as conn:
                return diagnostics.postgres(conn)

        def kubernetes():
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
            from kubernetes import client

            return diagnostics.kubernetes(client.CoreV1Api(KubernetesHook(conn_id=policy.kubernetes.conn_id)
                                                           .get_conn()), now=now)

        parts = {f"postgres {db.conn_id}": (postgres, db.conn_id) for db in policy.postgres.databases}
        parts |= {"redis": (lambda: diagnostics.redis(RedisCacheOptimizationOperator.client(policy.redis)),),
                  "kubernetes": (kubernetes,),
                  "maintenance": (lambda: diagnostics.ledger(run.ledger.conn, run.ledger.schema_name, now=now,
                                                             systems=None),)}
        document = diagnostics.bundle(incident=incident, now=now, parts=parts)
        key = f"incidents/{incident['id']}/diagnostics-{now:%Y%m%dT%H%M%SZ}.json.gz"
        try:
            s3 = s3files.client(policy)
            s3files.ensure_bucket(s3, policy.reports.bucket)
            s3.put_object(Bucket=policy.reports.bucket, Key=key, ContentType="application/json",
                          ContentEncoding="gzip", Body=gzip.compress(json.dumps(document, default=str).encode()))
        except Exception as exc:  # the incident is told anyway; the bundle's absence is said
            self.log.warning("Diagnostics not stored: %s", exc)
            return f"not stored: {type(exc).__name__}: {exc}"[:300]
        missing = [name for name, part in document.items() if isinstance(part, dict) and "error" in part]
        self.log.info("Diagnostics in s3://%s/%s%s", policy.reports.bucket, key,
                      f" (not gathered: {', '.join(missing)})" if missing else "")
        return f"s3://{policy.reports.bucket}/{key}"

    def tell(self, run, event: str, incident: dict, *, after_the_fact: bool, diagnostics: str | None = None) -> dict:
        from maintenance.incidents import notify
        from maintenance.notify import slack

        policy = run.policy
        rule = policy.incidents.severities[incident["severity"]]
        minutes = None
        if event == "resolve" and incident["resolved_at"]:
            minutes = (incident["resolved_at"] - incident["opened_at"]).total_seconds() / 60
        text = notify.message(event, incident, minutes=minutes,
                              run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        if diagnostics:
            text += f"\nDiagnostics: {diagnostics}"
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
