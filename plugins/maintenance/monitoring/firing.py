"""Which of the policy's selected alerts are firing now, from Alertmanager (the alert gate).

kured's alert gating of reboots is the model: disruptive work does not start while the
platform is already unwell. Silenced and inhibited alerts do not count: maintenance silences
its own (maintenance.monitoring.silences), and those must not hold the next step back.
"""

from __future__ import annotations

from maintenance.security.http import ServiceUnavailable, get_json


def firing(base: str, selectors: list[dict[str, str]], *, timeout: float) -> list[str]:
    """``alertname{labels}`` of every active, unsilenced, uninhibited alert whose labels hold all of
    one selector's; ServiceUnavailable when Alertmanager cannot be asked."""
    answer = get_json(f"{base.rstrip('/')}/api/v2/alerts?active=true&silenced=false&inhibited=false",
                      timeout=timeout)
    if answer is None:
        raise ServiceUnavailable(f"{base}/api/v2/alerts: not found")
    found = []
    for alert in answer:
        labels = alert.get("labels", {})
        if alert.get("status", {}).get("state") == "suppressed":  # unprocessed (just received) counts
            continue
        if any(all(labels.get(k) == v for k, v in selector.items()) for selector in selectors):
            shown = ",".join(f"{k}={labels[k]}" for k in sorted(labels) if k != "alertname")
            found.append(f"{labels.get('alertname', '?')}{{{shown}}}")
    return sorted(found)
