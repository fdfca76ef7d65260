"""Monday's performance and capacity review (procedures 2.2 and 4.2), from Prometheus. Read-only.

- Memory-leak suspects: containers whose working set grew steadily over the week (more than the
  policy's share), with the restarts that reset it.
- CPU: the containers throttled most of their periods, and the busiest ones (hotspots).
- The platform's p95 latency, throughput and error rate against the policy's targets.
- Capacity headroom (connections, memory, disk as the policy lists them): how much is left, and
  at the week's trend, in how many days it runs out.
- Web bundles (procedures 4.2): files over the policy's size (1 MB).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from maintenance.findings import Finding
from maintenance.security.http import ServiceUnavailable, get_json


def query(base: str, expr: str, *, now: datetime, timeout: float) -> list[tuple[dict, float]]:
    answer = get_json(f"{base.rstrip('/')}/api/v1/query?query={quote(expr)}&time={now.timestamp():.3f}",
                      timeout=timeout)
    if not answer or answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}/api/v1/query ({expr}): {answer and answer.get('error')}")
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


def _one(base: str, expr: str, *, now: datetime, timeout: float) -> float | None:
    found = query(base, expr, now=now, timeout=timeout)
    return found[0][1] if found else None


def _who(metric: dict) -> str:
    return "/".join(metric.get(k, "?") for k in ("namespace", "pod", "container") if k in metric) or str(metric)


def leak_suspects(base: str, *, now: datetime, days: float, growth: float, timeout: float) -> list[dict]:
    """Containers whose working set grew by more than ``growth`` of its level a week ago, steadily:
    the linear fit over the window explains the growth (its slope times the window), and the
    restarts in the window are counted (a restart that resets the memory is the classic sign)."""
    window = f"{int(days * 86400)}s"
    selector = 'container_memory_working_set_bytes{container!="",container!="POD"}'
    slope = {_who(m): v for m, v in query(base, f"deriv({selector}[{window}])", now=now, timeout=timeout)}
    low = {_who(m): v for m, v in query(base, f"min_over_time({selector}[{window}])", now=now, timeout=timeout)}
    high = {_who(m): v for m, v in query(base, f"max_over_time({selector}[{window}])", now=now, timeout=timeout)}
    restarts = {_who(m): v for m, v in query(
        base, f"increase(kube_pod_container_status_restarts_total[{window}])", now=now, timeout=timeout)}
    found = []
    for who, rate in slope.items():
        gained = rate * days * 86400
        if low.get(who) and gained > growth * low[who]:
            found.append({"container": who, "grew_bytes": round(gained), "from_bytes": low[who],
                          "to_bytes": high.get(who), "growth": round(gained / low[who], 3),
                          "restarts": round(restarts.get(who, 0))})
    return sorted(found, key=lambda f: -f["growth"])


def throttled(base: str, *, now: datetime, fraction: float, timeout: float) -> list[dict]:
    by = "namespace, pod, container"
    expr = (f"sum by ({by}) (rate(container_cpu_cfs_throttled_periods_total[1h])) / "
            f"sum by ({by}) (rate(container_cpu_cfs_periods_total[1h]))")
    return sorted(({"container": _who(m), "throttled": round(v, 3)} for m, v in
                   query(base, expr, now=now, timeout=timeout) if v > fraction), key=lambda f: -f["throttled"])


def hotspots(base: str, *, now: datetime, top: int, timeout: float) -> list[dict]:
    expr = (f'topk({top}, sum by (namespace, pod, container) '
            f'(rate(container_cpu_usage_seconds_total{{container!=""}}[1h])))')
    return [{"container": _who(m), "cores": round(v, 3)} for m, v in query(base, expr, now=now, timeout=timeout)]


def service_levels(base: str, slis, *, now: datetime, timeout: float) -> list[dict]:
    """Each of the policy's service level indicators now, against its target."""
    found = []
    for sli in slis:
        value = _one(base, sli.query, now=now, timeout=timeout)
        missed = value is not None and ((sli.max is not None and value > sli.max)
                                        or (sli.min is not None and value < sli.min))
        found.append({"name": sli.name, "value": value, "max": sli.max, "min": sli.min, "missed": missed,
                      "query": sli.query})
    return found


def headroom(base: str, resources, *, now: datetime, days: float, timeout: float) -> list[dict]:
    """Each resource's use against its limit, and at the trend of the last ``days`` the days until
    it runs out (None: not growing)."""
    window = f"{int(days * 86400)}s"
    found = []
    for r in resources:
        used = _one(base, r.used, now=now, timeout=timeout)
        limit = _one(base, r.limit, now=now, timeout=timeout)
        if used is None or not limit:
            found.append({"name": r.name, "used": used, "limit": limit, "share": None, "days_left": None,
                          "note": "no data"})
            continue
        rate = _one(base, f"deriv(({r.used})[{window}:5m])", now=now, timeout=timeout) or 0.0
        days_left = (limit - used) / (rate * 86400) if rate > 0 else None
        found.append({"name": r.name, "used": used, "limit": limit, "share": round(used / limit, 4),
                      "per_day": round(rate * 86400, 3),
                      "days_left": None if days_left is None else round(days_left, 1)})
    return found


def big_bundles(folder: Path, *, max_bytes: int, patterns: tuple[str, ...] = ("*.js", "*.css")) -> list[dict]:
    """Built web bundles over ``max_bytes``."""
    files = sorted({p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()})
    return [{"file": str(p.relative_to(folder)), "bytes": p.stat().st_size} for p in files
            if p.stat().st_size > max_bytes]


def findings(found: dict, cap) -> list[Finding]:
    """What the review found that a person should look at, by the policy's thresholds."""
    out = [Finding("memory_leak_suspect", item["container"], "warning",
                   f"working set {item['growth']:+.0%} in {cap.lookback_days:g} days "
                   f"({item['from_bytes'] / 2**20:.0f} -> {item['to_bytes'] / 2**20:.0f} MB), "
                   f"{item['restarts']} restart(s)", item) for item in found["leaks"]]
    out += [Finding("cpu_throttling", item["container"], "warning",
                    f"CPU throttled in {item['throttled']:.0%} of its periods: raise its limit or look at its hot path",
                    item) for item in found["throttled"]]
    for item in found["service_levels"]:
        if item["missed"]:
            target = f"<= {item['max']:g}" if item["max"] is not None else f">= {item['min']:g}"
            out.append(Finding("service_level_missed", item["name"], "warning",
                               f"{item['name']} is {item['value']:.4g}, target {target}", item))
    for item in found["headroom"]:
        if item["share"] is None:
            continue
        soon = item["days_left"] is not None and item["days_left"] < cap.runs_out_within_days
        if soon or item["share"] > cap.full_share:
            when = f"; runs out in {item['days_left']:g} days at the week's trend" if soon else ""
            out.append(Finding("capacity_headroom", item["name"], "warning",
                               f"{item['share']:.0%} used ({item['used']:.3g} of {item['limit']:.3g}){when}", item))
    out += [Finding("bundle_too_large", item["file"], "info",
                    f"{item['bytes'] / 2**20:.2f} MB, over {cap.bundle_max_bytes / 2**20:.0f} MB: split or trim it",
                    item) for item in found["bundles"]]
    return out
