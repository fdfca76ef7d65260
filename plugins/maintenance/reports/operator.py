"""ReportOperator: the weekly health report and the monthly maintenance report."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class ReportOperator(MaintenanceOperator):
    """Render the period's report from the ledger, store it in S3 under a dated key, post it to Slack.

    The period and the S3 key come from the run's logical date, so a re-run or a
    backfill rewrites the same report rather than adding another.

    :param kind: ``weekly`` or ``monthly``: the period the report covers.
    """

    template_fields = ("kind",)

    def __init__(self, *, kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def run(self, run) -> dict:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from maintenance import clock
        from maintenance.notify import slack
        from maintenance.reports.data import collect, period_for
        from maintenance.reports.render import render, slack_text

        policy = run.policy
        tz, targets = policy.tz, policy.reports.kpi_targets
        start, end = period_for(self.kind, run.logical_date, tz)
        data = collect(run.ledger.conn, run.ledger.schema_name, self.kind, start, end, now=clock.now(), targets=targets,
                       probe_down=self.probe_down(policy, start, min(end, clock.now())))
        rendered = render(data, tz=tz, targets=targets, dag_id=run.ledger.key.dag_id, run_id=run.ledger.key.run_id,
                          generated=clock.now())
        prefix = f"{policy.reports.prefix}{self.kind}/{start.astimezone(tz):%Y-%m-%d}/"
        bucket = policy.reports.bucket
        summary = {"period": [start.isoformat(), end.isoformat()], "recommendations": len(data.recommendations),
                   "kpis": data.kpis.as_dict(), "key": f"s3://{bucket}/{prefix}index.html"}
        if run.dry_run:
            return summary | {"stored": False}

        hook = S3Hook(aws_conn_id=policy.connections.aws)
        with run.ledger.action("s3", f"s3://{bucket}/{prefix}", "store_report") as act:
            if not hook.check_for_bucket(bucket):
                hook.create_bucket(bucket)
            hook.get_conn().put_object(Bucket=bucket, Key=prefix + "index.html", Body=rendered.html.encode(),
                                       ContentType="text/html; charset=utf-8")
            act.bytes_affected = len(rendered.html)
        link = hook.generate_presigned_url("get_object", params={"Bucket": bucket, "Key": prefix + "index.html"},
                                           expires_in=7 * 86400) or summary["key"]
        conn_id, channel = policy.connections.slack, policy.notifications.summary_channel
        delivered = slack.post(conn_id, channel, slack_text(data, rendered, link, tz))
        for path in ("charts/kpis.png", "charts/downtime.png", "charts/actions.png"):
            delivered &= slack.upload(conn_id, channel, path.split("/")[-1], rendered.files[path], rendered.title)
        return summary | {"stored": True, "link": link, "slack_delivered": delivered}

    def probe_down(self, policy, start, end):
        """The availability series' down spans (None: the policy names none). Prometheus that
        cannot be asked fails the report: a report that silently read 100% uptime would lie."""
        settings = policy.incidents.availability
        if settings is None:
            return None
        if not policy.monitoring.prometheus_url:
            from maintenance.errors import InputError

            raise InputError("incidents.availability: needs monitoring.prometheus_url to read the series from")
        from maintenance.monitoring.availability import downtime

        found = downtime(policy.monitoring.prometheus_url, settings, start=start, end=end)
        if found["no_data_minutes"]:
            self.log.warning("Availability series %s has no sample for %.0f min of the period: that time counts as "
                             "up", settings.query, found["no_data_minutes"])
        return found["spans"]

    def describe(self, summary: dict) -> str:
        return f"{self.kind} report {summary['key']} ({summary['recommendations']} recommendations)"
