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
        found = alerts.review(settings.prometheus_url, now=now, lookback_days=settings.lookback_days,
                              false_positive_minutes=settings.false_positive_minutes,
                              noisy_false_positive_rate=settings.noisy_false_positive_rate, incidents=incidents,
                              silences=silences, timeout=settings.http_timeout_s, rules_text=text,
                              rules_path=settings.rules_file,
                              rule_ages=(lambda names: alerts.rule_ages(path, names, now)) if text else None)
        run.ledger.record_findings(alerts.findings(found, settings.lookback_days))
        for item in found["rules"]:
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
        base, now = settings.prometheus_url, clock.now()
        week_ago = run.ledger.latest_metric("prometheus", base, "head_series", before=now - timedelta(days=6.5))
        found = housekeeping.review(base, settings, now=now, week_ago_series=week_ago[0] if week_ago else None)
        run.ledger.record_metrics("prometheus", base, {"head_series": found["tsdb"]["series"]})
        run.ledger.record_findings(housekeeping.findings(found, settings))
        return found

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
        from maintenance.monitoring import capacity

        for item in found["service_levels"]:
            if item["value"] is not None:
                ledger.record_metrics("platform", "service_levels", {item["name"]: item["value"]})
        for item in found["headroom"]:
            if item["share"] is not None:
                ledger.record_metrics("capacity", item["name"], {"used_share": item["share"]})
        ledger.record_findings(capacity.findings(found, cap))

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


class AlertmanagerWindowsOperator(MaintenanceOperator):
    """The planned windows of the next months as Alertmanager's mute time interval
    ``maintenance_planned_windows``, on the routes of ``monitoring.mute_windows_receivers``
    (maintenance.monitoring.mute_windows): planned, then (not in a dry run) the configuration
    file rewritten, Alertmanager reloaded and its running configuration read back."""

    def run(self, run):
        from pathlib import Path

        import yaml
        from airflow.sdk.exceptions import AirflowSkipException

        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.errors import InputError
        from maintenance.monitoring import mute_windows

        settings = run.policy.monitoring
        if not settings.alertmanager_config_file or not settings.alertmanager_url:
            raise AirflowSkipException("monitoring.alertmanager_config_file and alertmanager_url are not both set: "
                                       "Alertmanager's mute intervals are not managed")
        path = Path(settings.alertmanager_config_file)
        if not path.is_file():
            raise InputError(f"monitoring.alertmanager_config_file: no such file: {path}")
        config = yaml.safe_load(path.read_text()) or {}
        missing = mute_windows.missing_routes(config, settings.mute_windows_receivers)
        if missing:
            raise InputError("monitoring.mute_windows_receivers: no route below the root sends to "
                             f"{', '.join(missing)} in {path}")
        specs = mute_windows.window_specs(MaintenanceCalendar.from_policy(run.policy), clock.now(),
                                          settings.mute_windows_months)
        wanted = mute_windows.merged(config, specs, settings.mute_windows_receivers)
        summary = {"file": str(path), "windows": len(specs), "receivers": settings.mute_windows_receivers,
                   "changed": wanted != config}
        if wanted == config or run.dry_run:
            if wanted != config:
                run.ledger.record_finding("mute_windows_planned", str(path), "info",
                                          f"dry run: {len(specs)} windows would be written", summary)
            return summary
        with run.ledger.action("alertmanager", str(path), "mute_time_intervals", plan=summary):
            mute_windows.apply(path, settings.alertmanager_url, wanted, timeout=settings.http_timeout_s)
            loaded = mute_windows.loaded_intervals(settings.alertmanager_url, timeout=settings.http_timeout_s)
            if loaded.get(mute_windows.INTERVAL, 0) != len(specs):
                raise RuntimeError(f"Alertmanager runs {loaded.get(mute_windows.INTERVAL, 0)} planned windows after "
                                   f"the reload, not {len(specs)}")
        return summary

    def describe(self, summary):
        return (f"{summary['windows']} planned windows muted for {', '.join(summary['receivers']) or 'no route'}"
                + ("" if summary["changed"] else ", unchanged"))
