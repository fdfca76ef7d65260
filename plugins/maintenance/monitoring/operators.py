"""ThresholdReviewOperator: Thursday's monitoring threshold review, read-only."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class ThresholdReviewOperator(MaintenanceOperator):
    """Prometheus's alerting rules: unhealthy, noisy (firing too much of the week), silent."""

    def run(self, context, ledger, dry_run):
        from maintenance.monitoring.thresholds import review
        from maintenance.policy import load_policy

        settings = load_policy().monitoring
        if not settings.prometheus_url:
            self.log.info("No Prometheus in the policy (monitoring.prometheus_url): nothing to review")
            return {"rules": [], "unhealthy": [], "noisy": [], "silent": [], "window": None}
        found = review(settings.prometheus_url, lookback_days=settings.lookback_days,
                       noisy_fraction=settings.noisy_firing_fraction, timeout=settings.http_timeout_s)
        for item in found["unhealthy"]:
            ledger.record_finding("alert_rule_unhealthy", item["rule"], "warning",
                                  f"Prometheus cannot evaluate it: {item['error']}", item)
        for item in found["noisy"]:
            ledger.record_finding("alert_rule_noisy", item["rule"], "warning",
                                  f"firing {item['firing_share']:.0%} of the last {found['window']}: "
                                  "review its threshold (or the lasting problem)", item)
        for item in found["silent"]:
            self.log.info("Never fired over %s: %s (%s)", found["window"], item["rule"], item["query"])
        return found

    def describe(self, summary):
        return (f"{len(summary['rules'])} alert rules: {len(summary['unhealthy'])} unhealthy, "
                f"{len(summary['noisy'])} noisy, {len(summary['silent'])} never fired")
