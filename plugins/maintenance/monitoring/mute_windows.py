"""The planned windows as Alertmanager mute time intervals.

Alertmanager mutes a route's notifications during the time intervals the route names
(``mute_time_intervals``). This keeps one named interval, ``maintenance_planned_windows``, in
Alertmanager's configuration file: each planned window of the next months, in the policy's
zone, attached to the routes of the receivers the policy names. Alertmanager has no API for
its configuration: the file is rewritten (the previous one kept), Alertmanager reloads it
(``POST /-/reload``), and its status must then show the interval; a reload it refuses puts the
previous file back and reloads that.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

from maintenance.security.http import ServiceUnavailable, get_json

INTERVAL = "maintenance_planned_windows"
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


def window_specs(calendar, now: datetime, months: int) -> list[dict]:
    """Alertmanager time interval specs of the planned windows not over by ``now``, ``months`` ahead."""
    local = now.astimezone(calendar.tz)
    year, month, found = local.year, local.month, []
    for _ in range(months):
        window = calendar.window_in(year, month)
        if window is not None and window.end > now:
            start, end = window.start.astimezone(calendar.tz), window.end.astimezone(calendar.tz)
            found.append({"times": [{"start_time": f"{start:%H:%M}", "end_time": f"{end:%H:%M}"}],
                          "days_of_month": [str(start.day)], "months": [MONTHS[start.month - 1]],
                          "years": [str(start.year)], "location": calendar.tz.key})
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def merged(config: dict, specs: list[dict], receivers: list[str]) -> dict:
    """``config`` with the interval set to ``specs`` and named by the routes of ``receivers``
    (below the root route, which Alertmanager does not let mute); with no window ahead, the
    interval and every mention of it are removed (an empty interval would mute nothing, but say
    nothing either)."""
    new = copy.deepcopy(config)
    intervals = [t for t in new.get("time_intervals") or [] if t.get("name") != INTERVAL]
    if specs:
        intervals.append({"name": INTERVAL, "time_intervals": specs})
    if intervals:
        new["time_intervals"] = intervals
    else:
        new.pop("time_intervals", None)

    def walk(route: dict) -> None:
        for child in route.get("routes") or []:
            muted = [n for n in child.get("mute_time_intervals") or [] if n != INTERVAL]
            if specs and child.get("receiver") in receivers:
                muted.append(INTERVAL)
            if muted:
                child["mute_time_intervals"] = muted
            else:
                child.pop("mute_time_intervals", None)
            walk(child)

    walk(new.get("route") or {})
    return new


def missing_routes(config: dict, receivers: list[str]) -> list[str]:
    """The receivers named in the policy that no route below the root sends to."""
    seen = set()

    def walk(route: dict) -> None:
        for child in route.get("routes") or []:
            seen.add(child.get("receiver"))
            walk(child)

    walk(config.get("route") or {})
    return [r for r in receivers if r not in seen]


def apply(path: Path, base_url: str, config: dict, *, timeout: float) -> None:
    """Write ``config`` to ``path`` and have Alertmanager load it; refused: the previous file back."""
    import yaml

    previous = path.read_text()
    staged = path.with_name(path.name + ".maintenance-new")
    staged.write_text(yaml.safe_dump(config, sort_keys=False))
    staged.replace(path)  # atomic: Alertmanager never reads half a file
    try:
        get_json(f"{base_url.rstrip('/')}/-/reload", timeout=timeout, method="POST")
    except ServiceUnavailable as exc:
        path.write_text(previous)
        get_json(f"{base_url.rstrip('/')}/-/reload", timeout=timeout, method="POST")
        raise RuntimeError(f"Alertmanager refused the new configuration ({exc}); the previous one is back") from exc


def loaded_intervals(base_url: str, *, timeout: float) -> dict[str, int]:
    """The named time intervals of the configuration Alertmanager runs now: name -> how many specs."""
    import yaml

    status = get_json(f"{base_url.rstrip('/')}/api/v2/status", timeout=timeout) or {}
    running = yaml.safe_load((status.get("config") or {}).get("original") or "{}") or {}
    return {t["name"]: len(t.get("time_intervals") or []) for t in running.get("time_intervals") or []}
