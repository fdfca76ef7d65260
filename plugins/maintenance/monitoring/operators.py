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


class PrometheusHousekeepingOperator(MaintenanceOperator):
    """Scrape targets that are down, the TSDB's series and their growth, dashboards whose panels
    no longer work. Read-only: findings for a person."""

    def run(self, run):
        from datetime import timedelta

        from maintenance import clock
        from maintenance.monitoring import housekeeping

        settings = run.policy.monitoring
        if not settings.prometheus_url:
            self.log.info("No Prometheus in the policy (monitoring.prometheus_url): nothing to look after")
            return {"targets_down": [], "tsdb": None, "panels": []}
        base, timeout, now = settings.prometheus_url, settings.http_timeout_s, clock.now()
        down = housekeeping.unhealthy_targets(base, timeout=timeout)
        for target in down:
            run.ledger.record_finding("scrape_target_down", f"{target['job']} {target['instance']}", "warning",
                                      f"{target['url']}: {target['last_error'] or target['health']} "
                                      f"(scrape took {target['scrape_seconds']}s)", target)
        status = housekeeping.tsdb(base, timeout=timeout)
        week_ago = run.ledger.latest_metric("prometheus", base, "head_series", before=now - timedelta(days=6.5))
        status["growth"] = housekeeping.growth(status["series"], week_ago[0] if week_ago else None)
        run.ledger.record_metrics("prometheus", base, {"head_series": status["series"]})
        if status["growth"] is not None and status["growth"] > settings.series_growth_warning:
            run.ledger.record_finding("tsdb_series_growth", base, "warning",
                                      f"{status['series']:,} series, {status['growth']:+.0%} on the week before; "
                                      f"most: {', '.join(f'{n} ({c:,})' for n, c in status['by_metric'][:3])}",
                                      status)
        checked = []
        for panel in housekeeping.panels(settings.dashboards_path):
            panel["status"] = housekeeping.ask(base, panel["expr"], now=now, timeout=timeout)
            checked.append(panel)
            if panel["status"] != "ok":
                run.ledger.record_finding(
                    "dashboard_panel_broken" if panel["status"].startswith("error") else "dashboard_panel_no_data",
                    f"{panel['file']}: {panel['panel']}", "warning" if panel["status"].startswith("error") else "info",
                    f"{panel['dashboard']} / {panel['panel']} ({panel['ref']}): {panel['status']}", panel)
        return {"targets_down": down, "tsdb": status, "panels": checked}

    def describe(self, summary):
        if summary["tsdb"] is None:
            return "no Prometheus configured"
        broken = sum(p["status"] != "ok" for p in summary["panels"])
        return (f"{len(summary['targets_down'])} scrape targets down; {summary['tsdb']['series']:,} series; "
                f"{broken} of {len(summary['panels'])} dashboard queries broken or empty")
