"""Prometheus housekeeping (procedures 6.1): what a person who keeps a Prometheus looks at.

Scrape targets that are down (with their last error and how long the scrape took), the TSDB's
series (the metrics and labels with the most, and growth week over week from the ledger), and
the dashboards under ``include/grafana/``: every panel's query is asked of Prometheus over the
last day, and a query that does not parse or returns nothing is a finding. Read-only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from maintenance.findings import Finding
from maintenance.security.http import ServiceUnavailable, get_json


def _data(base: str, path: str, timeout: float):
    answer = get_json(f"{base.rstrip('/')}{path}", timeout=timeout)
    if not answer or answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}{path.split('?', 1)[0]}: {answer and answer.get('error')}")
    return answer["data"]


def unhealthy_targets(base: str, *, timeout: float) -> list[dict]:
    """Active scrape targets whose last scrape failed (one not scraped yet, 'unknown', is not)."""
    found = []
    for target in _data(base, "/api/v1/targets?state=active", timeout)["activeTargets"]:
        if target.get("health") == "down":
            found.append({"job": target["labels"].get("job", target.get("scrapePool", "")),
                          "instance": target["labels"].get("instance", ""), "url": target.get("scrapeUrl", ""),
                          "health": target.get("health"), "last_error": target.get("lastError", ""),
                          "scrape_seconds": round(float(target.get("lastScrapeDuration") or 0), 3)})
    return found


def tsdb(base: str, *, timeout: float, top: int = 10) -> dict:
    data = _data(base, "/api/v1/status/tsdb", timeout)
    return {"series": int(data["headStats"]["numSeries"]),
            "by_metric": [(d["name"], int(d["value"])) for d in data.get("seriesCountByMetricName", [])[:top]],
            "by_label": [(d["name"], int(d["value"])) for d in data.get("labelValueCountByLabelName", [])[:top]]}


def growth(now_value: float, week_ago: float | None) -> float | None:
    return None if not week_ago else now_value / week_ago - 1


def panels(folder: Path) -> list[dict]:
    """Every query of every panel of the Grafana dashboards (JSON) in ``folder``, rows included."""
    found = []

    def walk(items, title: str, file: str) -> None:
        for panel in items or []:
            walk(panel.get("panels"), title, file)
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append({"dashboard": title, "file": file, "panel": panel.get("title", "?"),
                                  "ref": target.get("refId", ""), "expr": target["expr"]})

    for path in sorted(folder.glob("*.json")):
        board = json.loads(path.read_text())
        walk(board.get("panels"), board.get("title", path.stem), path.name)
    return found


def ask(base: str, expr: str, *, now: datetime, timeout: float) -> str:
    """'ok' (data over the last day), 'no data', or Prometheus's error for a query that fails."""
    params = urlencode({"query": expr, "start": (now - timedelta(days=1)).timestamp(), "end": now.timestamp(),
                        "step": "300"})
    request = urllib.request.Request(f"{base.rstrip('/')}/api/v1/query_range?{params}",
                                     headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            data = json.loads(answer.read())["data"]
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 422):  # Prometheus's answer to a query it cannot parse or run
            try:
                return "error: " + json.loads(exc.read()).get("error", str(exc))
            except ValueError:
                return f"error: HTTP {exc.code}"
        raise ServiceUnavailable(f"{base}/api/v1/query_range: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(f"{base}/api/v1/query_range: {getattr(exc, 'reason', exc)}") from exc
    return "ok" if data["result"] else "no data"


def _names_in(exprs: list[str]) -> set[str]:
    """Metric and rule names an expression mentions (identifiers, colons allowed)."""
    import re

    return {m for e in exprs for m in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e)}


def recording_rules(base: str, *, timeout: float) -> list[dict]:
    found = []
    for group in _data(base, "/api/v1/rules", timeout)["groups"]:
        for rule in group["rules"]:
            found.append({"name": rule["name"], "type": rule.get("type"), "group": group["name"],
                          "query": rule.get("query", ""), "seconds": float(rule.get("evaluationTime") or 0)})
    return found


def rule_and_metric_use(rules: list[dict], panel_exprs: list[str]) -> set[str]:
    """Every name that a rule or a dashboard panel reads."""
    return _names_in([r["query"] for r in rules] + panel_exprs)


def unused_recordings(rules: list[dict], used: set[str], *, slow_seconds: float) -> tuple[list[dict], list[dict]]:
    """Recording rules nothing reads (no rule, no panel: ``used``), and those slower to evaluate
    than ``slow_seconds``."""
    recordings = [r for r in rules if r["type"] == "recording"]
    return ([r for r in recordings if r["name"] not in used],
            [r for r in recordings if r["seconds"] > slow_seconds])


def unused_heavy_metrics(by_metric: list[tuple[str, int]], used: set[str], *, min_series: int) -> list[dict]:
    """Metrics with many series that no rule and no panel reads: candidates to drop at scrape time."""
    return [{"metric": name, "series": count,
             "proposal": f"metric_relabel_configs: [{{source_labels: [__name__], regex: {name}, action: drop}}]"}
            for name, count in by_metric if count >= min_series and name not in used
            and not name.startswith(("up", "scrape_", "prometheus_", "ALERTS"))]


def review(base: str, settings, *, now: datetime, week_ago_series: float | None) -> dict:
    """Everything the housekeeping looks at, with the policy's ``monitoring`` settings."""
    timeout = settings.http_timeout_s
    status = tsdb(base, timeout=timeout)
    status["growth"] = growth(status["series"], week_ago_series)
    panels_found = panels(settings.dashboards_path)
    rules = recording_rules(base, timeout=timeout)
    used = rule_and_metric_use(rules, [p["expr"] for p in panels_found])
    unused, slow = unused_recordings(rules, used, slow_seconds=settings.slow_rule_seconds)
    for panel in panels_found:
        panel["status"] = ask(base, panel["expr"], now=now, timeout=timeout)
    return {"targets_down": unhealthy_targets(base, timeout=timeout), "tsdb": status, "panels": panels_found,
            "unused_recordings": unused, "slow_recordings": slow,
            "unused_heavy_metrics": unused_heavy_metrics(status["by_metric"], used,
                                                         min_series=settings.unused_metric_min_series)}


def findings(found: dict, settings) -> list[Finding]:
    out = [Finding("scrape_target_down", f"{t['job']} {t['instance']}", "warning",
                   f"{t['url']}: {t['last_error'] or t['health']} (scrape took {t['scrape_seconds']}s)", t)
           for t in found["targets_down"]]
    status = found["tsdb"]
    if status["growth"] is not None and status["growth"] > settings.series_growth_warning:
        most = ", ".join(f"{n} ({c:,})" for n, c in status["by_metric"][:3])
        out.append(Finding("tsdb_series_growth", settings.prometheus_url, "warning",
                           f"{status['series']:,} series, {status['growth']:+.0%} on the week before; most: {most}",
                           status))
    out += [Finding("recording_rule_unused", r["name"], "info", "no alerting rule, recording rule or dashboard "
                    f"panel reads it: remove it from {r['group']}", r) for r in found["unused_recordings"]]
    out += [Finding("recording_rule_slow", r["name"], "warning", f"took {r['seconds']:.2f}s to evaluate "
                    f"(limit {settings.slow_rule_seconds:g}s)", r) for r in found["slow_recordings"]]
    out += [Finding("metric_unused_high_cardinality", m["metric"], "info", f"{m['series']:,} series that no rule or "
                    f"panel reads; drop it at scrape time: {m['proposal']}", m) for m in found["unused_heavy_metrics"]]
    for panel in found["panels"]:
        if panel["status"] != "ok":
            broken = panel["status"].startswith("error")
            out.append(Finding("dashboard_panel_broken" if broken else "dashboard_panel_no_data",
                               f"{panel['file']}: {panel['panel']}", "warning" if broken else "info",
                               f"{panel['dashboard']} / {panel['panel']} ({panel['ref']}): {panel['status']}", panel))
    return out
