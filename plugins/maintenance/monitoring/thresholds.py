"""Which alert thresholds need a look: rules Prometheus cannot evaluate, rules firing so much
of the time that they are noise (the threshold is too tight, or the problem is real and
lasting), and rules that never fired over the period (worth checking they still can).

Through Prometheus's HTTP API: ``/api/v1/rules`` and ``/api/v1/query``.
"""

from __future__ import annotations

from urllib.parse import quote

from maintenance.security.http import ServiceUnavailable, get_json


def review(base_url: str, *, lookback_days: float, noisy_fraction: float, timeout: float) -> dict:
    base = base_url.rstrip("/")
    answer = get_json(f"{base}/api/v1/rules?type=alert", timeout=timeout)
    if not answer or answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}/api/v1/rules: {answer and answer.get('error')}")
    window = f"{int(lookback_days * 24)}h"
    # How much of the window each alert was firing: the share of ALERTS samples present.
    query = (f'avg_over_time((max by (alertname) (ALERTS{{alertstate="firing"}}) > bool 0)[{window}:5m])')
    result = get_json(f"{base}/api/v1/query?query={quote(query)}", timeout=timeout)
    if not result or result.get("status") != "success":
        raise ServiceUnavailable(f"{base}/api/v1/query: {result and result.get('error')}")
    firing = {r["metric"].get("alertname"): float(r["value"][1]) for r in result["data"]["result"]}
    unhealthy, noisy, silent, rules = [], [], [], []
    for group in answer["data"]["groups"]:
        for rule in group["rules"]:
            if rule.get("type") != "alerting":
                continue
            name = rule["name"]
            share = firing.get(name, 0.0)
            item = {"rule": name, "group": group["name"], "query": rule.get("query"),
                    "for": rule.get("duration", 0), "firing_share": round(share, 4), "health": rule.get("health")}
            rules.append(item)
            if rule.get("health") not in (None, "ok", "unknown"):
                unhealthy.append(item | {"error": rule.get("lastError", "")})
            elif share > noisy_fraction:
                noisy.append(item)
            elif share == 0:
                silent.append(item)
    return {"rules": rules, "unhealthy": unhealthy, "noisy": noisy, "silent": silent, "window": window}
