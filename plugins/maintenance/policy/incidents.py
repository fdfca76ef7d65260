"""Incidents: who hears of each severity, and which page on-call (procedures 7.1)."""

from __future__ import annotations

from pydantic import Field, model_validator

from maintenance.policy.base import _Strict

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


class SeverityRule(_Strict):
    meaning: str = ""
    channel: str = Field(min_length=1, description="the Slack channel told when it opens, is acknowledged and resolves")
    page: bool = Field(False, description="also page on-call through PagerDuty")


class AlertSeverity(_Strict):
    """An alert whose labels hold all of ``match`` opens an incident of ``severity``."""

    match: dict[str, str] = Field(min_length=1)
    severity: str

    @model_validator(mode="after")
    def _known(self) -> AlertSeverity:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity: one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        return self


class Incidents(_Strict):
    severities: dict[str, SeverityRule] = {
        "sev1": SeverityRule(meaning="platform down or data at risk", channel="#incidents", page=True),
        "sev2": SeverityRule(meaning="a major feature down for many students", channel="#incidents", page=True),
        "sev3": SeverityRule(meaning="degraded, with a workaround", channel="#ops-maintenance"),
        "sev4": SeverityRule(meaning="minor, no student impact", channel="#ops-maintenance"),
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

    def severity_of(self, labels: dict[str, str]) -> str:
        return next((rule.severity for rule in self.from_alerts
                     if all(labels.get(k) == v for k, v in rule.match.items())), "sev4")

    @model_validator(mode="after")
    def _every_severity(self) -> Incidents:
        if sorted(self.severities) != list(SEVERITIES):
            given = ", ".join(sorted(self.severities))
            raise ValueError(f"severities: give exactly {', '.join(SEVERITIES)}, got {given}")
        return self
