"""The maintenance policy as typed, validated models.

Every model forbids unknown keys, so a typo in the YAML is an error that names
the field rather than a setting silently ignored. Times of day are local to the
policy's timezone; calendar dates in blackouts are month-day pairs that recur
every year.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator, model_validator

from maintenance.policy.archive import (
    Archive,
    ArchiveBatching,
    ArchiveChild,
    ArchiveExport,
    ArchiveTable,
    Partitioning,
    QualifiedName,
)
from maintenance.policy.backups import Backups, SmokeQuery
from maintenance.policy.base import WEEKDAYS, MonthDay, TimeOfDay, _Strict
from maintenance.policy.incidents import Incidents
from maintenance.policy.kubernetes import Kubernetes, MemoryRestarts, NodeMaintenance, PodCleanup
from maintenance.policy.logs import LifecycleBucket, LogFolder, Logs, S3Lifecycle
from maintenance.policy.monitoring import Monitoring
from maintenance.policy.platform import Connections, Notifications
from maintenance.policy.postgres import (
    MEMORY,
    Postgres,
    PostgresDatabase,
    PostgresSafety,
    PostgresThresholds,
    UnusedIndexRules,
)
from maintenance.policy.records import KpiTargets, LedgerSettings, Reports
from maintenance.policy.redis import DefaultTtl, DisposablePrefix, RedisBigKeys, RedisSettings, RedisTtlAudit
from maintenance.policy.reviews import (
    Costs,
    DocFolder,
    Documentation,
    RdsMaintenance,
    StudentsQuery,
    UpdateReview,
)
from maintenance.policy.schedule import Blackout, Decision, Emergency, Freeze, LoadProbe, LoadRule, PlannedWindow
from maintenance.policy.security import Certificates, Control, Security

# The section models live beside this file, one module per capability; importable from here too.
__all__ = [
    "MEMORY",
    "WEEKDAYS",
    "Archive",
    "ArchiveBatching",
    "ArchiveChild",
    "ArchiveExport",
    "ArchiveTable",
    "Backups",
    "Blackout",
    "Certificates",
    "Connections",
    "Control",
    "Costs",
    "Decision",
    "DefaultTtl",
    "DisposablePrefix",
    "DocFolder",
    "Documentation",
    "Emergency",
    "Freeze",
    "Incidents",
    "KpiTargets",
    "Kubernetes",
    "LedgerSettings",
    "LifecycleBucket",
    "LoadProbe",
    "LoadRule",
    "LogFolder",
    "Logs",
    "MemoryRestarts",
    "Monitoring",
    "MonthDay",
    "NodeMaintenance",
    "Notifications",
    "Partitioning",
    "PlannedWindow",
    "PodCleanup",
    "Policy",
    "Postgres",
    "PostgresDatabase",
    "PostgresSafety",
    "PostgresThresholds",
    "QualifiedName",
    "RdsMaintenance",
    "RedisBigKeys",
    "RedisSettings",
    "RedisTtlAudit",
    "Reports",
    "S3Lifecycle",
    "Security",
    "SmokeQuery",
    "StudentsQuery",
    "TimeOfDay",
    "UnusedIndexRules",
    "UpdateReview",
]


class Policy(_Strict):
    version: Literal[1] = 1
    timezone: str = "America/New_York"
    planned_window: PlannedWindow = PlannedWindow()
    blackouts: list[Blackout] = []
    freezes: list[Freeze] = []
    decision: Decision
    emergency: Emergency = Emergency()
    connections: Connections = Connections()
    notifications: Notifications = Notifications()
    ledger: LedgerSettings = LedgerSettings()
    postgres: Postgres = Postgres()
    redis: RedisSettings = RedisSettings()
    reports: Reports = Reports()
    backups: Backups = Backups()
    archive: Archive = Archive()
    logs: Logs = Logs()
    s3_lifecycle: S3Lifecycle = S3Lifecycle()
    security: Security = Security()
    kubernetes: Kubernetes = Kubernetes()
    monitoring: Monitoring = Monitoring()
    incidents: Incidents = Incidents()
    costs: Costs = Costs()
    documentation: Documentation = Documentation()
    update_review: UpdateReview = UpdateReview()
    rds_maintenance: RdsMaintenance = RdsMaintenance()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as America/New_York)") from None
        # EST, EST5EDT, Etc/GMT+5: fixed offsets or POSIX rules, not a place's clock. The procedures'
        # times are New York's, daylight saving included.
        if value != "UTC" and ("/" not in value or value.startswith("Etc/")):
            raise ValueError(f"{value!r} is an abbreviation or a fixed offset, not a place's clock: use the "
                             "IANA name of the place (America/New_York keeps EST in winter and EDT in summer)")
        return value

    @field_validator("blackouts", "freezes")
    @classmethod
    def _unique_names(cls, value: list) -> list:
        names = [item.name for item in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique, repeated: {', '.join(dupes)}")
        return value

    @field_validator("blackouts")
    @classmethod
    def _apart(cls, value: list[Blackout]) -> list[Blackout]:
        for i, one in enumerate(value):
            for other in value[i + 1:]:
                shared = sorted(one.days() & other.days())
                if shared:
                    first = f"{shared[0][0]:02d}-{shared[0][1]:02d}"
                    raise ValueError(f"{one.name} and {other.name} overlap ({len(shared)} days from {first}): "
                                     "make them one blackout, or move one's end")
        return value

    @model_validator(mode="after")
    def _dates_clear(self) -> Policy:
        """An explicit window inside a blackout or freeze would be a window nothing may use."""
        for i, day in enumerate(self.planned_window.dates):
            inside = [b.name for b in self.blackouts if (day.month, day.day) in b.days()]
            inside += [f.name for f in self.freezes if f.start <= day <= f.end]
            if inside:
                raise ValueError(f"planned_window.dates[{i}]: {day} is in {', '.join(inside)}: pick a day outside "
                                 "every blackout and freeze")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
