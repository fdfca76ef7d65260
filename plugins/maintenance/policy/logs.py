"""Logs and S3 lifecycle rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from maintenance.policy.base import _Strict


class LogFolder(_Strict):
    """A folder of application logs rotated daily (procedures 2.1, 00:00)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="the log's name in S3 keys")
    path: str = Field(min_length=1)
    patterns: list[str] = Field(["*.log"], min_length=1)
    method: Literal["copytruncate", "rename"] = "copytruncate"
    pidfile: str | None = Field(None, description="rename: the writer's pid file, signalled to reopen")
    reopen_signal: Literal["HUP", "USR1", "USR2"] = "HUP"
    min_bytes: int = Field(1, ge=0, description="smaller active logs are not rotated")
    retention_days: float = Field(7, ge=0, description="verified copies kept locally this long")
    retention_mb: float = Field(1024, ge=0, description="...and within this total size")

    @model_validator(mode="after")
    def _rename_needs_pidfile(self) -> LogFolder:
        if self.method == "rename" and not self.pidfile:
            raise ValueError("method 'rename' needs a pidfile: the writer must be told to reopen its log")
        return self


class Logs(_Strict):
    host: str | None = Field(None, description="the host's name in S3 keys; default: this machine's")
    bucket: str = Field("pathfinity-logs", min_length=3)
    prefix: str = "logs/"
    settle_seconds: float = Field(2, ge=0, description="a rotated file still growing this long is left for later")
    folders: list[LogFolder] = []
    lock_wait_seconds: float = Field(
        300, ge=0, description="wait for another actor's lock on a log folder or a bucket's lifecycle rules, then skip")


class LifecycleBucket(_Strict):
    name: str = Field(min_length=3)
    logs_prefix: str | None = Field("logs/", description="objects under it expire; None: no expiry rule")


class S3Lifecycle(_Strict):
    """S3 lifecycle rules the procedures set (5.2), merged into each bucket's own rules."""

    buckets: list[LifecycleBucket] = []
    logs_expire_days: int = Field(90, gt=0)
    infrequent_access_after_days: int = Field(30, ge=30, description="S3 allows STANDARD_IA after 30 days")
    abort_multipart_after_days: int = Field(7, gt=0)
    noncurrent_version_expire_days: int = Field(30, gt=0, description="versioned buckets: old versions")
