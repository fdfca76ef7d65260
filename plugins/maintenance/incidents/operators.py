"""The incident DAG's operators: record (open, acknowledge, resolve, action items), run the
playbook, write the post-mortem. Each re-run of the same run changes nothing twice: the incident
is keyed by its run or alert, its events and page by the incident."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowSkipException

from maintenance.operator import MaintenanceOperator

RECORD_TASK = "record_incident"


def _form(run):
    from maintenance import clock
    from maintenance.form import IncidentForm

    return IncidentForm.of(run.context, clock.now())


def _told(run, incident: dict, kind: str, text: str, *, channel: str | None = None, key: str) -> bool:
    """Post ``text`` to the incident's channel (or ``channel``) and record it in its timeline."""
    from maintenance.ledger import incident_log
    from maintenance.notify import slack

    channel = channel or run.policy.incidents.severities[incident["severity"]].channel
    delivered = slack.post(run.policy.connections.slack, channel, text)
    incident_log.record_event(run.ledger.conn, run.ledger.schema_name, incident["id"], kind,
                              f"Slack {channel}: {text}", detail={"delivered": delivered}, key=key)
    return delivered


def _page(run, incident: dict, event: str, why: str, *, key: str) -> str | None:
    """Trigger, acknowledge or resolve the incident's page (a trigger only once per incident);
    recorded in its timeline. None: PagerDuty is not configured (the policy's
    ``incidents.pagerduty_conn_id`` is empty), which Slack then says."""
    from maintenance.incidents import notify
    from maintenance.ledger import incident_log

    conn_id = run.policy.incidents.pagerduty_conn_id
    conn, schema = run.ledger.conn, run.ledger.schema_name
    if not conn_id:
        return None
    if event == "open" and incident_log.was_paged(conn, schema, incident["id"]):
        return notify.dedup_key(incident["id"])
    dedup = notify.page(conn_id, event, incident)
    incident_log.record_event(conn, schema, incident["id"], "paged" if event == "open" else f"page {event}",
                              f"PagerDuty {event}: {why}", detail={"dedup_key": dedup}, key=key)
    return dedup


def _active_users(run) -> int | None:
    """The load probe now (None: it failed, which is logged; the incident goes on)."""
    from maintenance.probes import active_users

    try:
        return active_users(run.policy.decision.load.probe)
    except Exception as exc:  # impact is unknown then
        run.context["ti"].log.warning("Active-users probe failed: %s", exc)
        return None


def _assessed(severity: str, users: int | None, above: int | None) -> tuple[str, str | None]:
    """An alert's severity, one level worse while more students than ``above`` are active."""
    from maintenance.policy.incidents import SEVERITIES

    if above is None or users is None or users <= above or severity == SEVERITIES[0]:
        return severity, None
    raised = SEVERITIES[SEVERITIES.index(severity) - 1]
    return raised, f"{severity} raised to {raised}: {users:,} active users (> {above:,})"


class RecordIncidentOperator(MaintenanceOperator):
    """Opens, acknowledges or resolves an incident in the ledger from the DAG's trigger form (or
    the alert intake), or adds or closes a post-mortem action item. Its severity's channel hears
    of it; PagerDuty is paged for the severities that page, and acknowledged and resolved with it."""

    def run(self, run) -> dict:
        from maintenance import clock
        from maintenance.ledger import incident_log, store

        form = _form(run)
        conn, schema = run.ledger.conn, run.ledger.schema_name
        if run.dry_run:
            rule = run.policy.incidents.severities[form.severity]
            return {"action": form.action, "incident_id": form.incident_id, "would": {
                "severity": form.severity, "channel": rule.channel, "page": rule.page}}
        if form.action in ("add_action_item", "close_action_item"):
            return self.action_item(run, form)
        users = _active_users(run) if form.action in ("open", "resolve") and not form.after_the_fact else None
        if form.action == "open":
            # An alert's labels say how bad it is for the system; the probe says for how many.
            severity, raised = _assessed(form.severity, users, run.policy.incidents.raise_above_users) \
                if form.alert_key else (form.severity, None)
            incident_id = store.open_incident(
                conn, schema, severity=severity, summary=form.summary, opened_at=form.started_at,
                outage=form.outage, planned=form.planned, cause=form.cause, caused_by_action=form.caused_by_action,
                external_key=f"alert:{form.alert_key}" if form.alert_key else run.ti.run_id, labels=form.labels)
            incident_log.record_event(conn, schema, incident_id, "opened",
                                      f"opened ({form.severity}): {form.summary}" + (
                                          " from Alertmanager" if form.alert_key else " from the form"),
                                      at=form.started_at, key=f"{incident_id}:opened")
            if raised:
                incident_log.record_event(conn, schema, incident_id, "assessed", raised, key=f"{incident_id}:raised")
                self.log.info("Severity %s", raised)
            if form.after_the_fact:  # recorded after the fact: told, not paged
                store.resolve_incident(conn, schema, incident_id, form.ended_at, form.cause)
                incident_log.record_event(conn, schema, incident_id, "resolved", "resolved (recorded after the fact)",
                                          at=form.ended_at, key=f"{incident_id}:resolved")
            self.log.info("Incident %s opened (%s, outage=%s): %s", incident_id, severity, form.outage,
                          form.summary)
        else:
            incident_id = form.incident_id or store.incident_by_key(conn, schema, f"alert:{form.alert_key}")
            if form.action == "acknowledge":
                at = store.acknowledge_incident(conn, schema, incident_id, clock.now())
                incident_log.record_event(conn, schema, incident_id, "acknowledged",
                                          f"acknowledged by {self._who(run)}", at=at, key=f"{incident_id}:acknowledged")
                self.log.info("Incident %s acknowledged at %s", incident_id, at.isoformat())
            else:
                store.resolve_incident(conn, schema, incident_id, form.ended_at, form.cause)
                incident_log.record_event(conn, schema, incident_id, "resolved", "resolved" + (
                    " (the alert resolved)" if form.alert_key else f" by {self._who(run)}")
                    + (f"; cause: {form.cause}" if form.cause else ""), at=form.ended_at,
                    key=f"{incident_id}:resolved")
                self.log.info("Incident %s resolved at %s", incident_id, form.ended_at.isoformat())
        if users is not None:  # the post-mortem's impact: the probe's samples while it was open
            run.ledger.record_metrics("platform", f"incident {incident_id} {form.action}", {"active_users": users})
        record = store.incident(conn, schema, incident_id)
        diagnostics = self.diagnostics(run, record) if form.action == "open" and not form.after_the_fact else None
        told = self.tell(run, form.action, record, after_the_fact=form.after_the_fact, diagnostics=diagnostics)
        return {"incident_id": incident_id, "action": form.action, "diagnostics": diagnostics, **told}

    @staticmethod
    def _who(run) -> str:
        run_obj = run.context.get("dag_run")
        return getattr(run_obj, "triggering_user_name", None) or "the incident form"

    def action_item(self, run, form) -> dict:
        from maintenance import clock
        from maintenance.ledger import incident_log, store

        conn, schema = run.ledger.conn, run.ledger.schema_name
        if form.action == "add_action_item":
            incident_id = form.incident_id or store.incident_by_key(conn, schema, f"alert:{form.alert_key}")
            store.incident(conn, schema, incident_id)  # refuses a number that is no incident
            item_id = incident_log.add_action_item(conn, schema, incident_id, title=form.item, owner=form.owner,
                                                   due=form.due)
            incident_log.record_event(conn, schema, incident_id, "action item",
                                      f"action item #{item_id} added: {form.item} ({form.owner}, due {form.due})",
                                      key=f"{incident_id}:item:{item_id}:added")
            self.log.info("Action item %s of incident %s: %s (%s, due %s)", item_id, incident_id, form.item,
                          form.owner, form.due)
            return {"action": form.action, "incident_id": incident_id, "action_item_id": item_id}
        item = incident_log.close_action_item(conn, schema, form.action_item_id, at=clock.now(), by=self._who(run))
        incident_log.record_event(conn, schema, item["incident_id"], "action item",
                                  f"action item #{item['id']} closed by {item['closed_by']}: {item['title']}",
                                  key=f"{item['incident_id']}:item:{item['id']}:closed")
        self.log.info("Action item %s closed at %s by %s", item["id"], item["closed_at"], item["closed_by"])
        return {"action": form.action, "incident_id": item["incident_id"], "action_item_id": item["id"]}

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
            from maintenance.kubernetes.clients import clients

            return diagnostics.kubernetes(clients(policy.kubernetes.conn_id)["core"], now=now)

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
        from maintenance.ledger import incident_log

        policy = run.policy
        rule = policy.incidents.severities[incident["severity"]]
        minutes = None
        if event == "resolve" and incident["resolved_at"]:
            minutes = (incident["resolved_at"] - incident["opened_at"]).total_seconds() / 60
        text = notify.message(event, incident, minutes=minutes,
                              run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        if diagnostics:
            text += f"\nDiagnostics: {diagnostics}"
        told = {"channel": rule.channel, "paged": None,
                "delivered": _told(run, incident, "told", text, key=f"{incident['id']}:told:{event}")}
        paged_before = incident_log.was_paged(run.ledger.conn, run.ledger.schema_name, incident["id"])
        if event == "open" and rule.page and not after_the_fact:
            told["paged"] = _page(run, incident, "open", f"{incident['severity']} pages on-call",
                                  key=f"{incident['id']}:paged")
        elif event != "open" and paged_before:  # the page follows the incident
            told["paged"] = _page(run, incident, event, f"incident {event}d", key=f"{incident['id']}:page:{event}")
        if told["paged"]:
            self.log.info("PagerDuty: %s %s", event, told["paged"])
        return told

    def describe(self, summary: dict) -> str:
        if "would" in summary:
            w = summary["would"]
            return f"would {summary['action']} a {w['severity']} incident; tell {w['channel']}" + (
                ", page on-call" if w["page"] else "")
        if "action_item_id" in summary:
            verb = "added to" if summary["action"] == "add_action_item" else "closed for"
            return f"action item {summary['action_item_id']} {verb} incident {summary['incident_id']}"
        verb = {"open": "opened", "acknowledge": "acknowledged", "resolve": "resolved"}[summary["action"]]
        paged = f", paged ({summary['paged']})" if summary.get("paged") else ""
        return f"incident {summary['incident_id']} {verb}; told {summary['channel']}{paged}"


class RunPlaybookOperator(MaintenanceOperator):
    """When an incident opens, its playbook (the first whose match its alert labels hold) runs one
    step at a time, each proven by its check; the first failed check stops it. Playbooks never
    run for critical severities. On-call is paged when the severity is critical, no playbook
    matches, or a step fails. Dry run: the playbook is shown, nothing runs."""

    def run(self, run) -> dict:
        from maintenance.ledger import store

        form = _form(run)
        if form.action != "open" or form.after_the_fact:
            raise AirflowSkipException(f"playbooks run when an incident opens, not on {form.action}"
                                       + (" (already over)" if form.after_the_fact else ""))
        settings = run.policy.incidents
        if run.dry_run:
            incident = {"id": None, "severity": form.severity, "labels": form.labels or {}}
        else:
            incident_id = run.ti.xcom_pull(task_ids=RECORD_TASK)["incident_id"]
            incident = store.incident(run.ledger.conn, run.ledger.schema_name, incident_id)
        playbook = settings.playbook_for(incident["labels"] or {})
        shown = {"playbook": playbook.name if playbook else None,
                 "steps": [s.model_dump(exclude_none=True) for s in playbook.steps] if playbook else []}
        if settings.critical(incident["severity"]):
            why = f"{incident['severity']} is critical: playbooks run only below {settings.playbooks_run_below}"
        elif playbook is None:
            labels = ", ".join(f"{k}={v}" for k, v in sorted((incident["labels"] or {}).items())) or "no labels"
            why = f"no playbook matches this incident ({labels})"
        else:
            why = None
        if run.dry_run:
            return shown | {"would_run": why is None, "page": why}
        results = [] if why else self.steps(run, incident, playbook)
        failed = next((r for r in results if not r["passed"]), None)
        if failed:
            why = f"playbook {playbook.name} step {failed['step']} ({failed['action']}) failed: {failed['why']}"
        rule = settings.severities[incident["severity"]]
        page = bool(why) and (rule.page or rule.page_unrecovered or settings.critical(incident["severity"]))
        if not why:
            text = (f":wrench: Incident {incident['id']}: playbook *{playbook.name}* recovered it: "
                    f"{len(results)} step(s), every check passed")
        elif page:
            text = f":sos: Incident {incident['id']}: {why}; on-call is paged" + (
                "" if settings.pagerduty_conn_id else " (no PagerDuty connection in the policy: page them by hand)")
        else:
            text = f":information_source: Incident {incident['id']}: {why}; {incident['severity']} pages nobody"
        _told(run, incident, "playbook", text, key=f"{incident['id']}:playbook:told")
        paged = _page(run, incident, "open", why, key=f"{incident['id']}:paged") if page else None
        return shown | {"incident_id": incident["id"], "results": results, "recovered": bool(playbook) and not why,
                        "paged_because": why if page else None, "not_recovered": why, "paged": paged}

    def steps(self, run, incident: dict, playbook) -> list[dict]:
        from maintenance.ledger import incident_log

        results = []
        for number, step in enumerate(playbook.steps, 1):
            result = {"step": number, "action": step.action, "passed": False}
            results.append(result)
            try:
                result["done"] = self.apply(run, step)
            except Exception as exc:  # recorded as failed by the step; the playbook stops, on-call decides
                result["why"] = f"{type(exc).__name__}: {exc}"[:500]
                incident_log.record_event(run.ledger.conn, run.ledger.schema_name, incident["id"], "playbook step",
                                          f"{playbook.name} step {number} {step.action} failed: {result['why']}",
                                          key=f"{incident['id']}:step:{number}")
                return results
            incident_log.record_event(run.ledger.conn, run.ledger.schema_name, incident["id"], "playbook step",
                                      f"{playbook.name} step {number} {step.action}: {self.said(result['done'])}",
                                      detail=result["done"], key=f"{incident['id']}:step:{number}")
            check = self.check(run, incident, step)
            result["check"] = check.as_dict()
            incident_log.record_event(run.ledger.conn, run.ledger.schema_name, incident["id"], "playbook check",
                                      f"{playbook.name} step {number} check {step.check.kind}: "
                                      f"{'passed' if check.passed else 'FAILED'} (saw {check.seen!r} after "
                                      f"{check.seconds:.0f}s)", detail=check.as_dict(),
                                      key=f"{incident['id']}:check:{number}")
            if not check.passed:
                result["why"] = f"its check ({step.check.kind}) still saw {check.seen!r} after {check.seconds:.0f}s"
                return results
            result["passed"] = True
        return results

    @staticmethod
    def said(done: dict) -> str:
        if "ended" in done:
            return f"ended {len(done['ended'])} of {len(done['found'])} session(s) {done['ended']}"
        if "restarted" in done:
            return "restarted" if done["restarted"] else f"not in a crash or OOM loop ({done['looping'] or 'none'})"
        return f"purged, {done['deleted']} stale disposable key(s) deleted"

    def apply(self, run, step) -> dict:
        from maintenance import clock
        from maintenance.incidents import playbooks

        policy = run.policy
        if step.action in ("terminate_idle_in_transaction", "cancel_blocking_maintenance"):
            from maintenance.pgsession import session

            with session(step.conn_id) as conn, run.step("postgres", step.conn_id, step.action,
                                                         step.model_dump(exclude={"check"})) as act:
                if step.action == "terminate_idle_in_transaction":
                    done = playbooks.terminate_idle_in_transaction(
                        conn, older_than_seconds=step.older_than_seconds, max_sessions=step.max_sessions, apply=True)
                else:
                    done = playbooks.cancel_blocking_maintenance(conn, max_sessions=step.max_sessions, apply=True)
                act.plan, act.rows_affected = act.plan | done, len(done["ended"])
            return done
        if step.action == "redis_memory_relief":
            from maintenance.redis.operators import RedisCacheOptimizationOperator

            client = RedisCacheOptimizationOperator.client(policy.redis)
            with run.step("redis", policy.redis.conn_id, "memory_relief") as act:
                done = playbooks.redis_memory_relief(client, policy.redis, apply=True)
                act.plan, act.rows_affected = done, done["deleted"]
            return done
        from maintenance.kubernetes.clients import clients

        k = clients(policy.kubernetes.conn_id)
        target = f"Deployment {step.namespace}/{step.deployment}"
        with run.step("kubernetes", target, "rollout_restart", step.model_dump(exclude={"check"})) as act:
            done = playbooks.rollout_restart(k["apps"], k["core"], namespace=step.namespace,
                                             deployment=step.deployment, now=clock.now(), apply=True)
            act.plan = act.plan | done
            if not done["restarted"]:
                act.outcome = "skipped"
        return done

    def check(self, run, incident: dict, step):
        from contextlib import ExitStack

        from maintenance import clock
        from maintenance.incidents import playbooks

        policy, check = run.policy, step.check
        with ExitStack() as stack, run.ledger.action("incident", f"incident {incident['id']}", "playbook_check",
                                                     check.model_dump(exclude_none=True)) as act:
            if check.sql:
                from maintenance.pgsession import session

                conn = stack.enter_context(session(check.conn_id or step.conn_id))
                probe = lambda: playbooks.sql_check(conn, check.sql)  # noqa: E731
            elif check.promql:
                if not policy.monitoring.prometheus_url:
                    raise ValueError("check.promql: monitoring.prometheus_url is not set in the policy")
                probe = lambda: playbooks.promql_check(policy.monitoring.prometheus_url, check.promql,  # noqa: E731
                                                       now=clock.now())
            elif check.redis_used_below:
                from maintenance.redis.operators import RedisCacheOptimizationOperator

                client = RedisCacheOptimizationOperator.client(policy.redis)
                probe = lambda: playbooks.redis_used_check(client, check.redis_used_below)  # noqa: E731
            else:
                from maintenance.kubernetes.clients import clients

                k = clients(policy.kubernetes.conn_id)
                probe = lambda: playbooks.deployment_ready_check(k["apps"], step.namespace, step.deployment)  # noqa: E731
            result = playbooks.until_passes(probe, within=check.within_seconds, every=check.every_seconds)
            act.plan = act.plan | result.as_dict()
            if not result.passed:
                act.outcome, act.error = "failed", f"still saw {result.seen!r} after {result.seconds:.0f}s"
        return result

    def describe(self, summary: dict) -> str:
        if summary.get("dry_run"):
            return (f"playbook {summary['playbook']} ({len(summary['steps'])} step(s))" if summary["would_run"]
                    else f"no playbook would run: {summary['page']}")
        if summary["recovered"]:
            return f"playbook {summary['playbook']} recovered incident {summary['incident_id']}"
        return (f"on-call paged: {summary['paged_because']}" if summary["paged_because"]
                else f"not recovered, nobody paged: {summary['not_recovered']}")


class PostMortemOperator(MaintenanceOperator):
    """When an incident of a severity the policy names resolves, its post-mortem document: the
    timeline, the impact, the sections the review completes, its action items; Markdown and HTML
    in S3, linked in its channel. An incident type no runbook mentions is a finding."""

    def run(self, run) -> dict:
        from maintenance.ledger import store

        form = _form(run)
        settings = run.policy.incidents
        if form.action != "resolve" and not form.after_the_fact:
            raise AirflowSkipException(f"a post-mortem is written when an incident resolves, not on {form.action}")
        if run.dry_run:
            raise AirflowSkipException("dry run: nothing was resolved, so no post-mortem")
        incident_id = run.ti.xcom_pull(task_ids=RECORD_TASK)["incident_id"]
        incident = store.incident(run.ledger.conn, run.ledger.schema_name, incident_id)
        if incident["severity"] not in settings.post_mortem_severities:
            raise AirflowSkipException(f"{incident['severity']} needs no post-mortem (incidents.post_mortem_severities:"
                                       f" {', '.join(settings.post_mortem_severities)})")
        return self.write(run, incident)

    def write(self, run, incident: dict) -> dict:
        from datetime import timedelta
        from pathlib import Path

        from maintenance import clock, s3files
        from maintenance.incidents import postmortem
        from maintenance.ledger import incident_log

        policy, conn, schema = run.policy, run.ledger.conn, run.ledger.schema_name
        opened, resolved = incident["opened_at"], incident["resolved_at"] or clock.now()
        timeline = [{"at": e["at"], "source": "incident", "text": f"{e['kind']}: {e['text']}"}
                    for e in incident_log.events(conn, schema, incident["id"])]
        timeline += postmortem.maintenance_around(conn, schema, opened - postmortem.LOOK_BACK, resolved)
        kind = postmortem.incident_type(incident)
        if policy.monitoring.prometheus_url and (incident["labels"] or {}).get("alertname"):
            try:
                timeline += postmortem.alert_states(policy.monitoring.prometheus_url, kind,
                                                    opened - timedelta(minutes=30), resolved)
            except Exception as exc:  # the rest of the timeline stands; the gap is said
                timeline.append({"at": opened, "source": "prometheus", "text": f"alert states not read: {exc}"[:300]})
        timeline.sort(key=lambda e: e["at"])
        runbooks = policy.documentation.runbooks
        files = sorted(p for pattern in runbooks.patterns for p in Path(runbooks.path).rglob(pattern)) \
            if runbooks and Path(runbooks.path).is_dir() else []
        runbook = postmortem.runbook_for(kind, files)
        markdown = postmortem.render_markdown(
            incident, timeline, users=postmortem.affected_users(conn, schema, opened, resolved),
            items=incident_log.action_items(conn, schema, incident_id=incident["id"]), runbook=runbook,
            tz=policy.tz, generated=clock.now(), run_url=policy.notifications.run_url(run.ti.dag_id, run.ti.run_id))
        title = f"Post-mortem: incident {incident['id']} ({incident['severity']})"
        bucket, prefix = policy.reports.bucket, f"incidents/{incident['id']}/post-mortem"
        s3 = s3files.client(policy)
        with run.step("s3", f"s3://{bucket}/{prefix}.html", "store_report") as act:
            s3files.ensure_bucket(s3, bucket)
            html = postmortem.render_html(markdown, title)
            s3.put_object(Bucket=bucket, Key=f"{prefix}.md", Body=markdown.encode(),
                          ContentType="text/markdown; charset=utf-8")
            s3.put_object(Bucket=bucket, Key=f"{prefix}.html", Body=html.encode(),
                          ContentType="text/html; charset=utf-8")
            act.bytes_affected = len(markdown) + len(html)
        link = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"{prefix}.html"},
                                         ExpiresIn=7 * 86400)
        if runbook is None:
            where = runbooks.path if runbooks else "documentation.runbooks is not set in the policy"
            run.ledger.record_finding("runbook_missing", kind, "warning",
                                      f"incident {incident['id']} ({kind}) has no runbook ({where}): write one",
                                      {"incident": incident["id"]})
        _told(run, incident, "post-mortem", f":memo: Post-mortem of incident {incident['id']} written: {link}\n"
              "Fill in the five whys, contributing factors and lessons; add action items from the incident form.",
              key=f"{incident['id']}:post-mortem")
        return {"incident_id": incident["id"], "key": f"s3://{bucket}/{prefix}.html", "link": link,
                "timeline": len(timeline), "runbook": runbook}

    def describe(self, summary: dict) -> str:
        return f"post-mortem of incident {summary['incident_id']}: {summary['key']} ({summary['timeline']} events)"
