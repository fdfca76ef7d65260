"""Incidents: who hears of each severity, which page on-call, the playbooks that recover without
a person, post-mortems, and the availability series the KPIs read (procedures 7.1, 7.2, 9.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from maintenance.policy.base import _Strict

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


class SeverityRule(_Strict):
    meaning: str = ""
    channel: str = Field(min_length=1, description="the Slack channel told when it opens, is acknowledged and resolves")
    page: bool = Field(False, description="also page on-call through PagerDuty")
    page_unrecovered: bool = Field(True, description="page on-call when no playbook recovers it (none matches, "
                                                     "or a step fails its check)")


class AlertSeverity(_Strict):
    """An alert whose labels hold all of ``match`` opens an incident of ``severity``."""

    match: dict[str, str] = Field(min_length=1)
    severity: str

    @model_validator(mode="after")
    def _known(self) -> AlertSeverity:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity: one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        return self


# A playbook step's recovery actions and the parameters each needs.
STEP_NEEDS = {
    "terminate_idle_in_transaction": ("conn_id",),
    "cancel_blocking_maintenance": ("conn_id",),
    "redis_memory_relief": (),
    "rollout_restart": ("namespace", "deployment"),
}


class PlaybookCheck(_Strict):
    """What proves a step worked; exactly one of ``promql`` (passes when the query returns no
    series), ``sql`` (passes when its first value is 0, false or NULL, or it returns no row),
    ``redis_used_below`` (used memory under this fraction of maxmemory) or ``deployment_ready``.
    It is tried until it passes or ``within_seconds`` have passed."""

    promql: str | None = None
    sql: str | None = None
    conn_id: str | None = Field(None, description="for sql: the connection; default: the step's")
    redis_used_below: float | None = Field(None, gt=0, le=1)
    deployment_ready: bool | None = None
    within_seconds: float = Field(120, gt=0, le=3600)
    every_seconds: float = Field(5, gt=0, le=300)

    @model_validator(mode="after")
    def _one(self) -> PlaybookCheck:
        given = [k for k in ("promql", "sql", "redis_used_below", "deployment_ready") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of promql, sql, redis_used_below, deployment_ready"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("promql", "sql", "redis_used_below", "deployment_ready") if getattr(self, k))


class PlaybookStep(_Strict):
    """One recovery action, then its check. ``max_sessions`` caps what one step may end: a step
    that finds more refuses, naming them (a person decides)."""

    action: Literal["terminate_idle_in_transaction", "cancel_blocking_maintenance", "redis_memory_relief",
                    "rollout_restart"]
    conn_id: str | None = Field(None, description="PostgreSQL steps: the database's connection")
    older_than_seconds: int = Field(300, ge=0, description="terminate_idle_in_transaction: idle this long")
    max_sessions: int = Field(20, ge=1)
    namespace: str | None = None
    deployment: str | None = None
    check: PlaybookCheck

    @model_validator(mode="after")
    def _needs(self) -> PlaybookStep:
        missing = [k for k in STEP_NEEDS[self.action] if not getattr(self, k)]
        if missing:
            raise ValueError(f"{self.action} needs {', '.join(missing)}")
        if self.check.deployment_ready and self.action != "rollout_restart":
            raise ValueError("check.deployment_ready: only after rollout_restart (it checks that deployment)")
        if self.check.sql and not (self.check.conn_id or self.conn_id):
            raise ValueError("check.sql needs check.conn_id (or the step's conn_id)")
        return self


class Playbook(_Strict):
    """Recovery for the incidents whose alert labels hold all of ``match``."""

    name: str = Field(min_length=1)
    match: dict[str, str] = Field(min_length=1)
    steps: list[PlaybookStep] = Field(min_length=1)


class Availability(_Strict):
    """The platform's availability in Prometheus: a query whose value, at each step, is below
    ``down_below`` while the platform is down (for example ``min(probe_success{job="health"})``)."""

    query: str = Field(min_length=1)
    down_below: float = 0.5
    step_seconds: int = Field(60, ge=1, le=3600)


class Incidents(_Strict):
    severities: dict[str, SeverityRule] = {
        "sev1": SeverityRule(meaning="platform down or data at risk", channel="#incidents", page=True),
        "sev2": SeverityRule(meaning="a major feature down for many students", channel="#incidents", page=True),
        "sev3": SeverityRule(meaning="degraded, with a workaround", channel="#ops-maintenance"),
        "sev4": SeverityRule(meaning="minor, no student impact", channel="#ops-maintenance", page_unrecovered=False),
    }
    from_alerts: list[AlertSeverity] = Field(
        [AlertSeverity(match={"severity": "critical", "system": "postgres"}, severity="sev1"),
         AlertSeverity(match={"severity": "critical", "system": "api"}, severity="sev1"),
         AlertSeverity(match={"severity": "critical"}, severity="sev2"),
         AlertSeverity(match={"severity": "warning"}, severity="sev3")],
        description="the first whose labels an alert holds gives its incident's severity; none: sev4")
    alert_token_variable: str = Field("maintenance_alert_token", min_length=1,
                                      description="the Airflow Variable holding the bearer token Alertmanager sends")
    pagerduty_conn_id: str = Field("pagerduty_events", description="an Airflow connection of type pagerduty_events "
                                                                   "(its password: the integration key); empty: none")

    playbooks: list[Playbook] = Field([], description="recovery steps, declared in their own YAML file under "
                                                      "include/ (the policy names it) and validated with it")
    raise_above_users: int | None = Field(
        10_000, ge=0, description="an alert's incident opened while the load probe (decision.load.probe) counts more "
                                  "active users than this is one severity worse (never above sev1); none: labels only")
    playbooks_run_below: str = Field("sev1", description="playbooks run only for severities less severe than this")
    post_mortem_severities: list[str] = Field(["sev1", "sev2"], description="a post-mortem is written when these "
                                                                            "resolve")
    action_item_reminder_days: int = Field(7, ge=1, description="overdue action items are reminded this often")
    availability: Availability | None = Field(None, description="uptime from Prometheus (monitoring.prometheus_url)"
                                                                "; none: from outage incidents only")

    def severity_of(self, labels: dict[str, str]) -> str:
        return next((rule.severity for rule in self.from_alerts
                     if all(labels.get(k) == v for k, v in rule.match.items())), "sev4")

    def playbook_for(self, labels: dict[str, str]) -> Playbook | None:
        return next((p for p in self.playbooks if all(labels.get(k) == v for k, v in p.match.items())), None)

    def critical(self, severity: str) -> bool:
        """Too severe for a playbook: sev1 .. playbooks_run_below."""
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.playbooks_run_below)

    @model_validator(mode="after")
    def _every_severity(self) -> Incidents:
        if sorted(self.severities) != list(SEVERITIES):
            given = ", ".join(sorted(self.severities))
            raise ValueError(f"severities: give exactly {', '.join(SEVERITIES)}, got {given}")
        for field, values in (("playbooks_run_below", [self.playbooks_run_below]),
                              ("post_mortem_severities", self.post_mortem_severities)):
            wrong = [v for v in values if v not in SEVERITIES]
            if wrong:
                raise ValueError(f"{field}: one of {', '.join(SEVERITIES)}, got {', '.join(wrong)}")
        names = [p.name for p in self.playbooks]
        if len(set(names)) != len(names):
            raise ValueError(f"playbooks: names must be unique, got {', '.join(names)}")
        return self
