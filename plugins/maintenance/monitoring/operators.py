"""AlertReviewOperator: Thursday's alert rule review, read-only (proposals wait for a person)."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class AlertReviewOperator(MaintenanceOperator):
    """Prometheus's alerting rules over its own history: unhealthy, noisy (too many false
    positives), never fired; each finding with a patch to the rules file, checked by promtool."""

    def run(self, run):
        from datetime import timedelta

        from maintenance import clock
        from maintenance.ledger.store import incidents_between
        from maintenance.monitoring import alerts

        settings = run.policy.monitoring
        if not settings.prometheus_url:
            self.log.info("No Prometheus in the policy (monitoring.prometheus_url): nothing to review")
            return {"window_days": None, "rules": [], "unhealthy": [], "noisy": [], "never_fired": []}
        now = clock.now()
        start = now - timedelta(days=settings.lookback_days)
        incidents = incidents_between(run.ledger.conn, run.ledger.schema_name, start, now) \
            if run.ledger.conn is not None else []
        silences = alerts.silences_for(settings.alertmanager_url, settings.http_timeout_s)
        path = settings.rules_path
        text = path.read_text() if path.exists() else None
        if text is None:
            self.log.warning("monitoring.rules_file: %s not found: findings without patches", path)
        names = [r["name"] for r in alerts.alerting_rules(settings.prometheus_url.rstrip("/"),
                                                           settings.http_timeout_s)]
        found = alerts.review(settings.prometheus_url, now=now, lookback_days=settings.lookback_days,
                              false_positive_minutes=settings.false_positive_minutes,
                              noisy_false_positive_rate=settings.noisy_false_positive_rate, incidents=incidents,
                              silences=silences, timeout=settings.http_timeout_s, rules_text=text,
                              rules_path=settings.rules_file,
                              rule_ages=alerts.rule_ages(path, names, now) if text is not None else None)
        for item in found["rules"]:
            evidence = {k: item[k] for k in ("group", "query", "for_seconds", "firing_share", "false_positives",
                                             "false_positive_rate", "proposal", "patch", "check", "age_days",
                                             "observed")} | {"episodes": item["episodes"][-20:]}
            if item["verdict"] == "unhealthy":
                run.ledger.record_finding("alert_rule_unhealthy", item["rule"], "warning",
                                          f"Prometheus cannot evaluate it: {item['error']}", evidence)
            elif item["verdict"] == "noisy":
                run.ledger.record_finding(
                    "alert_rule_noisy", item["rule"], "warning",
                    f"{item['false_positives']} of {len(item['episodes'])} firings in {settings.lookback_days:g} "
                    f"days were false positives ({item['false_positive_rate']:.0%}); proposed {item['proposal']}",
                    evidence)
            elif item["verdict"] == "never_fired":
                age = f", in the rules for {item['age_days']:g} days" if item["age_days"] is not None else ""
                run.ledger.record_finding("alert_rule_never_fired", item["rule"], "info",
                                          f"never fired in {settings.lookback_days:g} days{age}; {item['proposal']}",
                                          evidence)
            if item["patch"]:
                self.log.info("Proposed change to %s for %s (promtool: %s):\n%s", settings.rules_file, item["rule"],
                              item["check"], item["patch"])
        return found

    def describe(self, summary):
        return (f"{len(summary['rules'])} alert rules: {len(summary['unhealthy'])} unhealthy, "
                f"{len(summary['noisy'])} noisy, {len(summary['never_fired'])} never fired")
