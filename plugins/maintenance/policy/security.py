"""Security: compliance controls, certificates, audited buckets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from maintenance.policy.base import _Strict


class Control(_Strict):
    """A compliance control evaluated from the ledger."""

    name: str = Field(min_length=1)
    kind: Literal["task_succeeded", "findings_closed", "log_retention"]
    task_pattern: str | None = Field(None, description="task_succeeded: a SQL LIKE pattern of task ids")
    within_days: float = Field(8, gt=0)
    days: int = Field(90, gt=0, description="log_retention: logs kept at least this long")

    @model_validator(mode="after")
    def _task(self) -> Control:
        if self.kind == "task_succeeded" and not self.task_pattern:
            raise ValueError("kind task_succeeded needs task_pattern (e.g. '%verify_backup%')")
        return self


class Certificates(_Strict):
    endpoints: list[str] = Field([], description="host:port of TLS endpoints")
    warn_days: float = Field(30, gt=0)
    critical_days: float = Field(7, gt=0)
    timeout_s: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _bands(self) -> Certificates:
        if self.critical_days > self.warn_days:
            raise ValueError(f"critical_days ({self.critical_days:g}) is above warn_days ({self.warn_days:g}): "
                             "a certificate would page before it warns")
        return self


class Security(_Strict):
    lock_files: list[str] = Field([], description="npm package-lock.json and Python requirement/lock files")
    osv_url: str = "https://api.osv.dev"
    pypi_url: str = "https://pypi.org"
    npm_url: str = "https://registry.npmjs.org"
    http_timeout_s: float = Field(30, gt=0)
    page_severities: list[Literal["critical", "high", "medium", "low"]] = ["critical"]
    certificates: Certificates = Certificates()
    s3_buckets: list[str] = Field([], description="buckets the monthly posture audit checks")
    backup_buckets: list[str] = Field(["pathfinity-backups"], description="...which must also keep versions")
    controls: list[Control] = []
