"""Redis maintenance engines: plain functions over a redis-py client.

Nothing here deletes or changes a key the policy did not name: relief deletes
only under disposable prefixes and only stale keys; default TTLs go only to keys
matching the mapped patterns. Passes over the keyspace use SCAN in batches with
pauses, never KEYS, and never RANDOMKEY for sampling (it favours some buckets).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- memory ---------------------------------------------------------------------------------

@dataclass
class MemoryHealth:
    used: int
    maxmemory: int
    fragmentation: float
    waste_mb: float
    actions: list[str] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)

    @property
    def used_fraction(self) -> float | None:
        return self.used / self.maxmemory if self.maxmemory else None


def memory_health(client, cfg) -> MemoryHealth:
    info = client.info("memory")
    used, rss = int(info["used_memory"]), int(info.get("used_memory_rss", 0))
    frag = float(info.get("mem_fragmentation_ratio", 1.0))
    health = MemoryHealth(used, int(info.get("maxmemory", 0)), frag, max(rss - used, 0) / 2**20)
    if frag > cfg.fragmentation_ratio and health.waste_mb >= cfg.fragmentation_min_waste_mb:
        health.actions.append("memory_purge")
        if cfg.allow_active_defrag:
            health.actions.append("enable_activedefrag")
        else:
            health.proposals.append(
                f"fragmentation {frag:.2f} wastes {health.waste_mb:.0f} MB: enable activedefrag, or restart "
                "the instance in the planned window (never done automatically)")
    if health.used_fraction is not None and health.used_fraction > cfg.memory_high_fraction:
        health.actions.append("relieve_memory")
    return health


def purge_memory(client, allow_defrag: bool) -> list[str]:
    done = []
    client.execute_command("MEMORY", "PURGE")
    done.append("MEMORY PURGE")
    if allow_defrag:
        try:
            client.config_set("activedefrag", "yes")
            done.append("activedefrag yes")
        except Exception as exc:  # builds without jemalloc refuse it
            done.append(f"activedefrag not supported: {exc}")
    return done


def _scan_batches(client, pattern: str, batch: int):
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=batch)
        if keys:
            yield keys
        if cursor == 0:
            return


def glob_literal(text: str) -> str:
    """``text`` as a SCAN MATCH pattern matching itself only: Redis's glob characters escaped."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def stale_disposable_keys(client, disposable, batch: int, limit: int) -> list:
    """Keys under a disposable prefix idle at least that prefix's stale time (at most ``limit``).

    A prefix is literal: ``api:content?`` means those eleven characters, never a glob."""
    found = []
    for rule in disposable:
        prefix = rule.prefix.encode()
        for matched in _scan_batches(client, glob_literal(rule.prefix) + "*", batch):
            # SCAN's matching is the server's; the prefix test is ours, so a slip in either stays harmless.
            keys = [k for k in matched if (k if isinstance(k, bytes) else k.encode()).startswith(prefix)]
            if not keys:
                continue
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.object("idletime", key)
                idle = pipe.execute()
            found += [k for k, i in zip(keys, idle, strict=True) if i is not None and i >= rule.stale_idle_seconds]
            if len(found) >= limit:
                return found[:limit]
    return found


def unlink(client, keys: list, batch: int) -> int:
    deleted = 0
    for start in range(0, len(keys), batch):
        deleted += client.unlink(*keys[start:start + batch])
    return deleted


# -- big keys ---------------------------------------------------------------------------------

@dataclass
class BigKeys:
    cursor: int = 0
    scanned: int = 0
    complete: bool = False
    top: list[tuple[int, str, str]] = field(default_factory=list)        # (bytes, key, type)
    top_by_type: dict[str, list] = field(default_factory=dict)
    namespaces: dict[str, dict] = field(default_factory=dict)              # prefix -> count, bytes, biggest

    def as_dict(self) -> dict:
        return {"cursor": self.cursor, "scanned": self.scanned, "complete": self.complete,
                "top": [{"key": k, "bytes": b, "type": t} for b, k, t in self.top],
                "top_by_type": {t: [{"key": k, "bytes": b} for b, k in v] for t, v in self.top_by_type.items()},
                "namespaces": self.namespaces}


def namespace(key: str, separator: str) -> str:
    head, sep, _ = key.partition(separator)
    return head + sep if sep else "(no namespace)"


def big_keys(client, cfg, *, cursor: int = 0, resume: dict | None = None, sleep=time.sleep,
             clock=time.monotonic) -> BigKeys:
    """Measure every key with SCAN + pipelined MEMORY USAGE; stop at the time budget with a cursor.

    ``resume`` is an earlier, incomplete result's ``as_dict()``: the pass continues from its
    cursor and adds to its totals.
    """
    result = BigKeys(cursor=cursor)
    heap: list[tuple[int, str, str]] = []
    by_type: dict[str, list] = defaultdict(list)
    spaces: dict[str, dict] = defaultdict(lambda: {"count": 0, "bytes": 0, "biggest": None, "biggest_bytes": 0})
    if resume:
        result.cursor, result.scanned = resume["cursor"], resume["scanned"]
        heap = [(t["bytes"], t["key"], t["type"]) for t in resume["top"]]
        for kind, items in resume["top_by_type"].items():
            by_type[kind] = [(i["bytes"], i["key"]) for i in items]
        for prefix, totals in resume["namespaces"].items():
            spaces[prefix] = dict(totals)
    started = clock()
    while True:
        result.cursor, keys = client.scan(cursor=result.cursor, count=cfg.batch)
        if keys:
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.memory_usage(key)
                    pipe.type(key)
                answers = pipe.execute()
            for key, size, raw_kind in zip(keys, answers[::2], answers[1::2], strict=True):
                if size is None:  # expired between SCAN and MEMORY USAGE
                    continue
                name, kind = _text(key), _text(raw_kind)
                result.scanned += 1
                _push(heap, (size, name, kind), cfg.top_n)
                _push(by_type[kind], (size, name), cfg.top_n)
                space = spaces[namespace(name, cfg.namespace_separator)]
                space["count"] += 1
                space["bytes"] += size
                if size > space["biggest_bytes"]:
                    space["biggest"], space["biggest_bytes"] = name, size
        if result.cursor == 0:
            result.complete = True
            break
        if clock() - started > cfg.time_budget_s:
            break
        if cfg.pause_ms:
            sleep(cfg.pause_ms / 1000)
    result.top = sorted(heap, reverse=True)
    result.top_by_type = {k: sorted(v, reverse=True) for k, v in by_type.items()}
    result.namespaces = dict(sorted(spaces.items(), key=lambda kv: -kv[1]["bytes"]))
    return result


def _push(heap: list, item: tuple, limit: int) -> None:
    if len(heap) < limit:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


# -- TTL audit --------------------------------------------------------------------------------

TTL_BUCKETS = ("no_expiry", "under_1h", "1h_to_1d", "1d_to_7d", "over_7d")


def ttl_bucket(ttl: int) -> str:
    if ttl < 0:
        return "no_expiry"
    if ttl < 3600:
        return "under_1h"
    if ttl < 86400:
        return "1h_to_1d"
    if ttl < 7 * 86400:
        return "1d_to_7d"
    return "over_7d"


OWN_PREFIX = b"maintenance:lock:"  # keys this project writes (maintenance.redis.lock)


def _ours(key) -> bool:
    return (key if isinstance(key, bytes) else str(key).encode()).startswith(OWN_PREFIX)


def sample_ttls(client, size: int, batch: int = 500) -> dict:
    """TTL distribution of ``size`` keys taken in SCAN order (hash order: not biased by bucket size)."""
    keys = []
    cursor = 0
    while len(keys) < size:
        cursor, found = client.scan(cursor=cursor, count=min(batch, size))
        keys.extend(k for k in found if not _ours(k))  # the maintenance's own lock is not the platform's
        if cursor == 0:
            break
    keys = keys[:size]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.ttl(key)
        ttls = pipe.execute()
    counts = Counter(ttl_bucket(t) for t in ttls if t != -2)
    total = sum(counts.values())
    return {"sampled": total, "buckets": {b: counts.get(b, 0) for b in TTL_BUCKETS},
            "no_expiry_fraction": counts.get("no_expiry", 0) / total if total else 0.0}


def ttl_audit_due(audit: dict, cfg) -> bool:
    """Default TTLs are applied when more of the sample than the policy allows has no expiry."""
    return audit["no_expiry_fraction"] > cfg.ttl_audit.max_no_ttl_fraction


def keys_missing_ttl(client, pattern: str, batch: int, limit: int) -> list:
    found = []
    for keys in _scan_batches(client, pattern, batch):
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.ttl(key)
            ttls = pipe.execute()
        found += [k for k, t in zip(keys, ttls, strict=True) if t == -1]
        if len(found) >= limit:
            return found[:limit]
    return found


def apply_ttl(client, keys: list, ttl: int, batch: int) -> int:
    """EXPIRE ... NX: a key that got a TTL meanwhile keeps it."""
    applied = 0
    for start in range(0, len(keys), batch):
        with client.pipeline(transaction=False) as pipe:
            for key in keys[start:start + batch]:
                pipe.expire(key, ttl, nx=True)
            applied += sum(1 for ok in pipe.execute() if ok)
    return applied


# -- persistence, replication, metrics ------------------------------------------------------------

def persistence_and_replication(client, cfg, now: float) -> list[dict]:
    """Findings with figures for what is outside the policy's limits."""
    findings = []
    persistence = client.info("persistence")
    if persistence.get("rdb_last_bgsave_status") != "ok":
        findings.append({"check": "rdb_save", "severity": "critical",
                         "message": f"last RDB save failed (status {persistence.get('rdb_last_bgsave_status')})",
                         "evidence": {"rdb_last_bgsave_status": persistence.get("rdb_last_bgsave_status")}})
    age_h = (now - int(persistence.get("rdb_last_save_time", now))) / 3600
    if persistence.get("rdb_changes_since_last_save", 0) and age_h > cfg.max_rdb_age_hours:
        findings.append({"check": "rdb_age", "severity": "warning",
                         "message": f"last RDB save {age_h:.0f} h ago (limit {cfg.max_rdb_age_hours:g} h)",
                         "evidence": {"age_hours": age_h}})
    if persistence.get("aof_enabled") and persistence.get("aof_last_write_status") not in (None, "ok"):
        findings.append({"check": "aof_write", "severity": "critical",
                         "message": f"AOF write status {persistence.get('aof_last_write_status')}",
                         "evidence": {"aof_last_write_status": persistence.get("aof_last_write_status")}})
    replication = client.info("replication")
    role = replication.get("role")
    if role in ("slave", "replica"):
        if replication.get("master_link_status") != "up":
            findings.append({"check": "replica_link", "severity": "critical",
                             "message": f"replication link to {replication.get('master_host')}:"
                                        f"{replication.get('master_port')} is {replication.get('master_link_status')}",
                             "evidence": {k: replication.get(k) for k in
                                          ("master_host", "master_port", "master_link_status",
                                           "master_link_down_since_seconds")}})
    else:
        replicas = int(replication.get("connected_slaves", 0))
        if replicas < cfg.min_replicas:
            findings.append({"check": "replicas", "severity": "warning",
                             "message": f"{replicas} connected replicas (policy wants {cfg.min_replicas})",
                             "evidence": {"connected_slaves": replicas}})
        master_offset = int(replication.get("master_repl_offset", 0))
        for n in range(replicas):
            replica = replication.get(f"slave{n}", {})
            lag = master_offset - int(replica.get("offset", master_offset))
            if lag > cfg.max_replica_lag_bytes:
                findings.append({"check": "replica_lag", "severity": "warning",
                                 "message": f"replica {replica.get('ip')}:{replica.get('port')} is {lag} bytes behind",
                                 "evidence": {"lag_bytes": lag}})
    return findings


# What on-call is paged for: the cache can no longer save or replicate its data.
PAGED_CHECKS = ("rdb_save", "aof_write", "replica_link")


def pages_for(findings: list[dict]) -> dict[str, str]:
    """The findings on-call is paged for, check -> message."""
    return {f["check"]: f["message"] for f in findings if f["check"] in PAGED_CHECKS}


def metrics(client) -> dict[str, float]:
    stats, memory = client.info("stats"), client.info("memory")
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    return {
        "hit_ratio": hits / (hits + misses) if hits + misses else None,
        "evicted_keys": int(stats.get("evicted_keys", 0)),
        "expired_keys": int(stats.get("expired_keys", 0)),
        "used_memory_mb": int(memory["used_memory"]) / 2**20,
        "fragmentation": float(memory.get("mem_fragmentation_ratio", 1.0)),
    }


def prewarm(base_url: str, paths: list[str], timeout: float) -> list[dict]:
    """Request the critical paths so the caches behind them are warm; status and latency of each."""
    import urllib.error
    import urllib.request

    results = []
    for path in paths:
        url = base_url.rstrip("/") + path
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                reply.read()
                status = reply.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = f"error: {exc}"
        results.append({"path": path, "status": status, "ms": round((time.perf_counter() - started) * 1000, 1)})
    return results
