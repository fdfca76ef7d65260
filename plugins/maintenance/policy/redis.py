"""Redis: disposable prefixes, default TTLs, big keys, the TTL audit."""

from __future__ import annotations

from pydantic import Field, field_validator

from maintenance.policy.base import _Strict


class DisposablePrefix(_Strict):
    prefix: str = Field(min_length=1, description="literal: glob characters in it match only themselves")
    stale_idle_seconds: int = Field(gt=0, description="idle at least this long (OBJECT IDLETIME) to be deleted")


class DefaultTtl(_Strict):
    pattern: str = Field(min_length=1, description="a SCAN MATCH pattern, e.g. api:content:*")
    ttl_seconds: int = Field(gt=0)

    @field_validator("pattern")
    @classmethod
    def _starts_with_a_namespace(cls, value: str) -> str:
        # A pattern that starts with a glob reaches into every namespace ("*" is the whole keyspace).
        if value[0] in "*?[":
            raise ValueError(f"{value!r} starts with a glob and would match keys of every namespace; start it "
                             "with the literal namespace it is for, e.g. api:content:*")
        return value


class RedisBigKeys(_Strict):
    top_n: int = Field(20, gt=0)
    batch: int = Field(100, gt=0, le=10_000)
    pause_ms: float = Field(0, ge=0)
    namespace_separator: str = Field(":", min_length=1)
    time_budget_s: float = Field(600, gt=0, description="then stop and resume from the saved cursor next run")


class RedisTtlAudit(_Strict):
    sample: int = Field(1000, gt=0)
    max_no_ttl_fraction: float = Field(0.1, ge=0, le=1)
    default_ttls: list[DefaultTtl] = []
    max_keys_per_run: int = Field(100_000, gt=0)


class RedisSettings(_Strict):
    conn_id: str = "platform_redis"
    lock_wait_seconds: float = Field(300, ge=0, description="wait for another actor's lock on the cache, then skip")
    fragmentation_ratio: float = Field(1.5, gt=1)
    fragmentation_min_waste_mb: float = Field(64, ge=0)
    allow_active_defrag: bool = False
    memory_high_fraction: float = Field(0.8, gt=0, le=1)
    disposable: list[DisposablePrefix] = []
    max_relief_deletes: int = Field(100_000, gt=0)
    big_keys: RedisBigKeys = RedisBigKeys()
    ttl_audit: RedisTtlAudit = RedisTtlAudit()
    max_rdb_age_hours: float = Field(26, gt=0)
    min_replicas: int = Field(0, ge=0)
    max_replica_lag_bytes: int = Field(1_048_576, ge=0)
    prewarm_base_url: str = ""
    prewarm_paths: list[str] = ["/api/careers/pool", "/api/content/popular", "/api/dashboard/student"]
    prewarm_timeout_s: float = Field(5, gt=0)
