"""CostReviewOperator: Monday's cost review, read-only."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class CostReviewOperator(MaintenanceOperator):
    """The last week's AWS cost (Cost Explorer) per student per day against the policy's target,
    the change from the week before, and the services that cost most; findings in the ledger."""

    def run(self, run):
        from datetime import datetime, time, timedelta

        from airflow.providers.postgres.hooks.postgres import PostgresHook

        from maintenance.aws.clients import client
        from maintenance.costs.review import daily_costs, review

        policy = run.policy
        settings = policy.costs
        if not settings.enabled:
            self.log.info("The cost review is off in the policy (costs.enabled)")
            return {"enabled": False}
        # The days before the run's date: a re-run or backfill of a date reviews the same days.
        end = run.logical_date.astimezone(policy.tz).date()
        first = end - timedelta(days=2 * settings.review_days)
        costs, currency = daily_costs(client(policy, "ce"), first, end, settings.metric)
        window = {"start": datetime.combine(first, time(0), policy.tz),
                  "end": datetime.combine(end, time(0), policy.tz), "timezone": policy.timezone}
        try:
            rows = PostgresHook(postgres_conn_id=settings.students.conn_id).get_records(settings.students.sql, window)
        except Exception as exc:
            raise RuntimeError(f"costs.students.sql on connection {settings.students.conn_id!r} failed: {exc}") from exc
        found = review(costs, {day: int(n) for day, n in rows}, end=end, days=settings.review_days,
                       target=settings.target_per_student_per_day, currency=currency, top=settings.top_services)
        target = f"{found.start}..{found.end}"
        if found.per_student_day is not None and found.per_student_day > found.target:
            run.ledger.record_finding("cost_per_student", target, "warning",
                                      f"{found.per_student_day:.4f} {currency} per student per day over the period "
                                      f"(target {found.target} {currency})", found.as_dict())
        if found.growth is not None and found.growth > settings.growth_warning_fraction:
            grown = [s for s in found.services if s.growth is not None and s.growth > settings.growth_warning_fraction]
            most = ", ".join(f"{s.service} {s.growth:+.0%}" for s in grown[:3]) or "spread"
            run.ledger.record_finding("cost_growth", target, "warning",
                                      f"cost rose {found.growth:.0%} over the previous {settings.review_days} days; "
                                      f"most: {most}", found.as_dict())
        if found.days_without_costs:
            self.log.warning("Cost Explorer had no figures for %s", ", ".join(found.days_without_costs))
        metrics = {"cost": found.cost, "student_days": found.student_days}
        if found.per_student_day is not None:
            metrics["cost_per_student_day"] = found.per_student_day
        run.ledger.record_metrics("costs", "aws", metrics)
        return found.as_dict()

    def describe(self, summary):
        if not summary.get("enabled", True):
            return "off in the policy"
        per = summary["per_student_day"]
        growth = summary["growth"]
        return (f"{summary['cost']:,.2f} {summary['currency']} from {summary['start']} to {summary['end']}"
                + (f", {per:.4f} per student per day (target {summary['target']})" if per is not None else
                   ", no students recorded")
                + (f", {growth:+.0%} on the period before" if growth is not None else ""))
