"""Monitoring maintenance: Prometheus and Alertmanager (procedures 2.2 and 6.1)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from maintenance.policy.base import _Strict

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class Silences(_Strict):
    """Which alerts a disruptive step silences (maintenance.monitoring.silences)."""

    by_system: dict[str, dict[str, str]] = Field(
        {"postgres": {"system": "postgres"}, "redis": {"system": "redis"}, "kubernetes": {"system": "host"},
         "backup": {"system": "postgres"}},
        description="the ledger's system of the step -> the labels (all equal) of the alerts it silences")
    margin_minutes: float = Field(15, ge=0, description="added to the step's expected duration")
    default_minutes: float = Field(60, gt=0, description="a step that says nothing of its duration")
    include_critical: bool = Field(False, description="false: critical alerts are never silenced")

    @field_validator("by_system")
    @classmethod
    def _narrow(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for system, labels in _known_systems(value).items():
            if not labels or not all(k and v for k, v in labels.items()):
                raise ValueError(f"{system}: a silence needs at least one label with a value; without one it "
                                 "would silence every alert")
        return value


def _known_systems(value: dict) -> dict:
    from maintenance.actions import REGISTRY

    systems = sorted({system for system, _ in REGISTRY})
    for system in value:
        if system not in systems:
            raise ValueError(f"{system!r} is not a system of the maintenance actions ({', '.join(systems)})")
    return value


class HealthCheck(_Strict):
    """One health query of the watch after a disruptive step: its value must stay on its side of a limit."""

    name: str = Field(min_length=1)
    query: str = Field(min_length=1, description="PromQL; several series: the worst counts")
    above: float | None = Field(None, description="a regression when the value goes above this")
    below: float | None = Field(None, description="a regression when the value goes below this")

    @model_validator(mode="after")
    def _one_limit(self) -> HealthCheck:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"{self.name}: give exactly one of above or below")
        return self


class Watch(_Strict):
    """The watch after each disruptive step (maintenance.monitoring.watch)."""

    minutes: float = Field(2, ge=0, description="0: no watch")
    interval_seconds: float = Field(15, gt=0)
    by_system: dict[str, list[HealthCheck]] = {}

    @field_validator("by_system")
    @classmethod
    def _systems(cls, value: dict) -> dict:
        return _known_systems(value)


class ServiceLevel(_Strict):
    """One of the platform's indicators (procedures 9.1): a PromQL query and its target."""

    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None


class Resource(_Strict):
    """A resource that can run out: a query of what is used, and one of its limit."""

    name: str = Field(min_length=1)
    used: str = Field(min_length=1)
    limit: str = Field(min_length=1)


class Capacity(_Strict):
    """Monday's performance and capacity review (maintenance.monitoring.capacity)."""

    lookback_days: float = Field(7, gt=0)
    leak_growth_fraction: float = Field(0.2, gt=0, description="working set up more than this over the lookback")
    throttling_fraction: float = Field(0.25, gt=0, le=1)
    hotspots: int = Field(5, ge=0)
    runs_out_within_days: float = Field(30, gt=0, description="a resource that runs out sooner at its trend")
    full_share: float = Field(0.85, gt=0, le=1, description="a resource used beyond this share is a finding")
    service_levels: list[ServiceLevel] = []
    resources: list[Resource] = []
    bundles_folder: str = Field("", description="built web bundles to measure; empty: none")
    bundle_max_bytes: int = Field(1024 * 1024, gt=0)


_METRIC = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*\s*(\{.*\})?$")
_POSITIVE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')


def _narrow_matcher(value: str) -> str:
    """A series selector that names something: a metric name, or a label equal to (or matching) a
    value that is not everything."""
    text = value.strip()
    narrow = bool(_METRIC.match(text)) or any(
        v not in ("", ".*", ".+") for _, _, v in _POSITIVE.findall(text))
    if not narrow:
        raise ValueError(f"{value!r} would select every series (or none): name a metric or a label's value")
    return text


class Monitoring(_Strict):
    """Thursday's alert rule review over Prometheus's history, and Alertmanager's silences."""

    prometheus_url: str = Field("", description="empty: no review")
    alertmanager_url: str = Field("", description="its silences count in the review; empty: none")
    alertmanager_config_file: str = Field("", description="Alertmanager's configuration file, where the planned "
                                                          "windows are kept as a mute time interval; empty: not "
                                                          "managed")
    mute_windows_receivers: list[str] = Field([], description="the routes sending to these receivers are muted in "
                                                              "the planned windows")
    mute_windows_months: int = Field(12, ge=1, le=36, description="how many months of windows are written")
    rules_file: str = Field("include/prometheus/platform-rules.yml",
                            description="the alerting rules the review proposes patches to; relative to the project")
    lookback_days: float = Field(30, gt=0)
    false_positive_minutes: float = Field(5, gt=0, description="a firing over within this, with no incident "
                                                                "and no silence, was a false positive")
    noisy_false_positive_rate: float = Field(0.3, gt=0, le=1, description="more false positives than this: noisy")
    http_timeout_s: float = Field(30, gt=0)
    dashboards_folder: str = Field("include/grafana", description="Grafana dashboards (JSON) whose panels are "
                                                                  "checked; relative to the project")
    series_growth_warning: float = Field(0.2, gt=0, description="head series up more than this on the week "
                                                                "before: a finding")
    silences: Silences = Silences()
    watch: Watch = Watch()
    slow_rule_seconds: float = Field(1.0, gt=0, description="a recording rule slower to evaluate: a finding")
    unused_metric_min_series: int = Field(1000, ge=1, description="a metric no rule or panel reads, with at "
                                                                  "least this many series: proposed for dropping")
    delete_series: list[str] = Field([], description="series selectors deleted in the window (after a snapshot)")
    max_series_deleted_per_run: int = Field(100_000, ge=1)

    @field_validator("delete_series")
    @classmethod
    def _narrow_selectors(cls, value: list[str]) -> list[str]:
        return [_narrow_matcher(v) for v in value]
    capacity: Capacity = Capacity()
    gate_on_alerts: list[dict[str, str]] = Field(
        [{"severity": "critical"}],
        description="disruptive work waits while an alert holding all the labels of one of these fires "
                    "(Alertmanager's active, unsilenced alerts); empty: alerts do not hold it")

    @field_validator("gate_on_alerts")
    @classmethod
    def _selective(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, selector in enumerate(value):
            if not selector or not all(k and v for k, v in selector.items()):
                raise ValueError(f"[{i}]: give at least one label and its value; an empty selector would hold "
                                 "disruptive work back for any alert at all")
        return value

    @property
    def rules_path(self) -> Path:
        return _in_project(self.rules_file)

    @property
    def dashboards_path(self) -> Path:
        return _in_project(self.dashboards_folder)


def _in_project(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else PROJECT_ROOT / path
