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
        panels = housekeeping.panels(settings.dashboards_path)
        rules = housekeeping.recording_rules(base, timeout=timeout)
        used = housekeeping.rule_and_metric_use(rules, [p["expr"] for p in panels])
        unused, slow = housekeeping.unused_recordings(rules, used, slow_seconds=settings.slow_rule_seconds)
        for rule in unused:
            run.ledger.record_finding("recording_rule_unused", rule["name"], "info",
                                      f"no alerting rule, recording rule or dashboard panel reads it: remove it "
                                      f"from {rule['group']}", rule)
        for rule in slow:
            run.ledger.record_finding("recording_rule_slow", rule["name"], "warning",
                                      f"took {rule['seconds']:.2f}s to evaluate "
                                      f"(limit {settings.slow_rule_seconds:g}s)", rule)
        heavy = housekeeping.unused_heavy_metrics(status["by_metric"], used,
                                                  min_series=settings.unused_metric_min_series)
        for item in heavy:
            run.ledger.record_finding("metric_unused_high_cardinality", item["metric"], "info",
                                      f"{item['series']:,} series that no rule or panel reads; drop it at scrape "
                                      f"time: {item['proposal']}", item)
        for panel in panels:
            panel["status"] = housekeeping.ask(base, panel["expr"], now=now, timeout=timeout)
            checked.append(panel)
            if panel["status"] != "ok":
                run.ledger.record_finding(
                    "dashboard_panel_broken" if panel["status"].startswith("error") else "dashboard_panel_no_data",
                    f"{panel['file']}: {panel['panel']}", "warning" if panel["status"].startswith("error") else "info",
                    f"{panel['dashboard']} / {panel['panel']} ({panel['ref']}): {panel['status']}", panel)
        return {"targets_down": down, "tsdb": status, "panels": checked, "unused_recordings": unused,
                "slow_recordings": slow, "unused_heavy_metrics": heavy}

    def describe(self, summary):
        if summary["tsdb"] is None:
            return "no Prometheus configured"
        broken = sum(p["status"] != "ok" for p in summary["panels"])
        return (f"{len(summary['targets_down'])} scrape targets down; {summary['tsdb']['series']:,} series; "
                f"{broken} of {len(summary['panels'])} dashboard queries broken or empty")


class CapacityReviewOperator(MaintenanceOperator):
    """Monday: memory-leak suspects, CPU throttling and hotspots, the platform's service levels
    against their targets, capacity headroom with when it runs out, web bundles over 1 MB."""

    def run(self, run):
        from maintenance import clock
        from maintenance.monitoring import capacity
        from maintenance.policy.monitoring import PROJECT_ROOT

        settings = run.policy.monitoring
        cap = settings.capacity
        if not settings.prometheus_url:
            self.log.info("No Prometheus in the policy (monitoring.prometheus_url): nothing to review")
            return {"leaks": [], "throttled": [], "hotspots": [], "service_levels": [], "headroom": [], "bundles": []}
        base, now, timeout = settings.prometheus_url, clock.now(), settings.http_timeout_s
        found = {
            "leaks": capacity.leak_suspects(base, now=now, days=cap.lookback_days, growth=cap.leak_growth_fraction,
                                            timeout=timeout),
            "throttled": capacity.throttled(base, now=now, fraction=cap.throttling_fraction, timeout=timeout),
            "hotspots": capacity.hotspots(base, now=now, top=cap.hotspots, timeout=timeout) if cap.hotspots else [],
            "service_levels": capacity.service_levels(base, cap.service_levels, now=now, timeout=timeout),
            "headroom": capacity.headroom(base, cap.resources, now=now, days=cap.lookback_days, timeout=timeout),
            "bundles": []}
        if cap.bundles_folder:
            found["bundles"] = capacity.big_bundles(PROJECT_ROOT / cap.bundles_folder, max_bytes=cap.bundle_max_bytes)
        self.record(run.ledger, found, cap)
        return found

    @staticmethod
    def record(ledger, found: dict, cap) -> None:
        for item in found["leaks"]:
            ledger.record_finding("memory_leak_suspect", item["container"], "warning",
                                  f"working set {item['growth']:+.0%} in {cap.lookback_days:g} days "
                                  f"({item['from_bytes'] / 2**20:.0f} -> {item['to_bytes'] / 2**20:.0f} MB), "
                                  f"{item['restarts']} restart(s)", item)
        for item in found["throttled"]:
            ledger.record_finding("cpu_throttling", item["container"], "warning",
                                  f"CPU throttled in {item['throttled']:.0%} of its periods: raise its limit or "
                                  "look at its hot path", item)
        for item in found["service_levels"]:
            if item["value"] is not None:
                ledger.record_metrics("platform", "service_levels", {item["name"]: item["value"]})
            if item["missed"]:
                target = f"<= {item['max']:g}" if item["max"] is not None else f">= {item['min']:g}"
                ledger.record_finding("service_level_missed", item["name"], "warning",
                                      f"{item['name']} is {item['value']:.4g}, target {target}", item)
        for item in found["headroom"]:
            if item["share"] is None:
                continue
            ledger.record_metrics("capacity", item["name"], {"used_share": item["share"]})
            soon = item["days_left"] is not None and item["days_left"] < cap.runs_out_within_days
            if soon or item["share"] > cap.full_share:
                when = f"; runs out in {item['days_left']:g} days at the week's trend" if soon else ""
                ledger.record_finding("capacity_headroom", item["name"], "warning",
                                      f"{item['share']:.0%} used ({item['used']:.3g} of {item['limit']:.3g}){when}",
                                      item)
        for item in found["bundles"]:
            ledger.record_finding("bundle_too_large", item["file"], "info",
                                  f"{item['bytes'] / 2**20:.2f} MB, over {cap.bundle_max_bytes / 2**20:.0f} MB: split "
                                  "or trim it", item)

    def describe(self, summary):
        missed = [s["name"] for s in summary["service_levels"] if s["missed"]]
        soon = [h["name"] for h in summary["headroom"] if h.get("days_left") is not None]
        return (f"{len(summary['leaks'])} leak suspects, {len(summary['throttled'])} throttled; service levels "
                f"missed: {', '.join(missed) or 'none'}; growing toward a limit: {', '.join(soon) or 'none'}")


class SeriesDeletionOperator(MaintenanceOperator):
    """Monthly, in the window: delete the series the policy's ``monitoring.delete_series`` select,
    after a TSDB snapshot, up to ``max_series_deleted_per_run``, then clean the tombstones and
    check that nothing selected is left."""

    def run(self, run):
        from maintenance.errors import InputError
        from maintenance.monitoring import tsdb_admin

        settings = run.policy.monitoring
        if not settings.prometheus_url or not settings.delete_series:
            self.log.info("No series to delete (monitoring.delete_series)")
            return {"planned": {}, "deleted": {}}
        base, timeout = settings.prometheus_url, settings.http_timeout_s
        planned = {m: tsdb_admin.series_count(base, m, timeout=timeout) for m in settings.delete_series}
        self.log.info("Series to delete: %s", planned)
        if run.dry_run or not any(planned.values()):
            return {"planned": planned, "deleted": {}}
        total = sum(planned.values())
        if total > settings.max_series_deleted_per_run:
            raise InputError(f"monitoring.max_series_deleted_per_run: the selectors select {total:,} series, the cap "
                             f"is {settings.max_series_deleted_per_run:,}; narrow them or raise the cap")
        with run.step("prometheus", base, "tsdb_snapshot") as act:
            act.plan = act.plan | {"snapshot": tsdb_admin.snapshot(base, timeout=timeout)}
        snapshot_name = act.plan["snapshot"]
        deleted = {}
        for matcher, count in planned.items():
            if not count:
                continue
            with run.step("prometheus", f"{base} {matcher}", "delete_series",
                          plan={"series": count, "snapshot": snapshot_name}) as act:
                tsdb_admin.delete(base, matcher, timeout=timeout)
                act.rows_affected = count
            deleted[matcher] = count
        tsdb_admin.clean_tombstones(base, timeout=timeout)
        left = {m: tsdb_admin.series_count(base, m, timeout=timeout) for m in deleted}
        if any(left.values()):
            raise RuntimeError(f"series still there after deletion: {left}; the snapshot {snapshot_name} holds them")
        return {"planned": planned, "deleted": deleted, "snapshot": snapshot_name}

    def describe(self, summary):
        if not summary["deleted"]:
            return f"{sum(summary['planned'].values()):,} series selected, none deleted"
        return f"{sum(summary['deleted'].values()):,} series deleted after snapshot {summary['snapshot']}"
