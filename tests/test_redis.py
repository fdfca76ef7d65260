"""Redis maintenance against real servers the tests start (one with maxmemory, a replica pair)."""

import shutil
import time
from datetime import UTC, datetime

import pytest
import redis
from maintenance import clock
from maintenance.policy import load_policy
from maintenance.redis import engine

from devtools import servers
from tests.conftest import set_conn, use_policy
from tests.support.airflow_runs import BACKUP_TASKS, run_dag

CFG = load_policy().redis
DAY = datetime(2026, 11, 24, 5, tzinfo=UTC)


@pytest.fixture
def server(redis_server):
    """The suite's Redis, registered as ``platform_redis`` (tests that point elsewhere restore it)."""
    set_conn("platform_redis", redis_server.conn_json())
    return redis_server


@pytest.fixture
def r(server):
    client = redis.Redis(port=server.port)
    client.flushall()
    return client


def plant(client):
    client.set("report:cache:yearly", "y" * 2_000_000)
    client.rpush("leaderboard:global", *[f"student-{n}" for n in range(20000)])
    with client.pipeline(transaction=False) as pipe:
        for n in range(300):
            pipe.set(f"session:{n}", "s" * 40, ex=1800)
        for n in range(200):
            pipe.hset(f"pathiq:student:{n}", mapping={"mastery": n, "pace": n})
        pipe.set("orphan", "x")
        pipe.execute()


def test_big_keys_finds_planted_keys_and_exact_namespace_totals(r):
    plant(r)
    result = engine.big_keys(r, CFG.big_keys.model_copy(update={"batch": 50, "pause_ms": 0}))
    assert result.complete and result.scanned == 503
    assert [k for _, k, _ in result.top[:2]] == ["report:cache:yearly", "leaderboard:global"]
    expected = {}
    for key in r.scan_iter(count=1000):
        space = engine.namespace(key.decode(), ":")
        count, total = expected.get(space, (0, 0))
        expected[space] = (count + 1, total + r.memory_usage(key))
    assert {p: (v["count"], v["bytes"]) for p, v in result.namespaces.items()} == expected
    assert expected["session:"][0] == 300 and expected["(no namespace)"][0] == 1
    assert result.top_by_type["list"][0][1] == "leaderboard:global"


def test_big_keys_resumes_from_a_saved_cursor(r):
    plant(r)
    cfg = CFG.big_keys.model_copy(update={"batch": 20, "pause_ms": 0, "time_budget_s": 1})
    def stepping_clock():
        ticks = iter(range(0, 10**6, 2))  # every reading is 2 s later: one batch per call
        return lambda: next(ticks)

    first = engine.big_keys(r, cfg, clock=stepping_clock())
    assert not first.complete and 0 < first.scanned < 503
    passes, state = 1, first
    while not state.complete:
        state = engine.big_keys(r, cfg, resume=state.as_dict(), clock=stepping_clock())
        passes += 1
    full = engine.big_keys(r, cfg.model_copy(update={"time_budget_s": 600}))
    assert passes > 2
    assert state.scanned == full.scanned == 503
    assert state.namespaces == full.namespaces


def test_ttl_sample_uses_scan_and_buckets(r):
    plant(r)
    sample = engine.sample_ttls(r, 1000)
    assert sample["sampled"] == 503
    assert sample["buckets"]["under_1h"] == 300
    assert sample["no_expiry_fraction"] == pytest.approx(203 / 503)


def failed_save(client) -> None:
    """Ask for an RDB save whose folder is gone, and wait for it to fail."""
    client.set("k", "v")
    client.bgsave()
    for _ in range(100):
        if client.info("persistence")["rdb_bgsave_in_progress"] == 0:
            return
        time.sleep(0.05)


def test_persistence_failure_is_a_critical_finding(work_dir):
    doomed = servers.start_redis(work_dir / "redis-doomed")
    client = redis.Redis(port=doomed.port)
    try:
        assert engine.persistence_and_replication(client, CFG, time.time()) == []
        shutil.rmtree(doomed.dir)  # the save has nowhere to go
        failed_save(client)
        findings = engine.persistence_and_replication(client, CFG, time.time())
        assert [f["check"] for f in findings] == ["rdb_save"]
        assert findings[0]["severity"] == "critical" and "failed" in findings[0]["message"]
    finally:
        doomed.stop()


def test_replica_link_down_is_a_finding(work_dir):
    master = servers.start_redis(work_dir / "redis-master")
    replica = servers.start_redis(work_dir / "redis-replica", args=["--replicaof", "127.0.0.1", str(master.port)])
    client = redis.Redis(port=replica.port)
    try:
        for _ in range(100):
            if client.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.1)
        assert engine.persistence_and_replication(client, CFG, time.time()) == []
        master_findings = engine.persistence_and_replication(
            redis.Redis(port=master.port), CFG.model_copy(update={"min_replicas": 2}), time.time())
        assert [f["check"] for f in master_findings] == ["replicas"]
        master.stop()
        for _ in range(100):
            if client.info("replication").get("master_link_status") != "up":
                break
            time.sleep(0.1)
        findings = engine.persistence_and_replication(client, CFG, time.time())
        assert [(f["check"], f["severity"]) for f in findings] == [("replica_link", "critical")]
        assert f"127.0.0.1:{master.port} is down" in findings[0]["message"]
    finally:
        replica.stop()
        master.stop()


# --- the daily cache optimization through its DAG ---------------------------------------------

def policy_with(tmp_path, monkeypatch, **redis_overrides):
    use_policy(tmp_path, monkeypatch, redis=redis_overrides)


@pytest.fixture
def daily(platform_db, airflow_db, slack, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: DAY)
    return platform_db


def seed_ttl_case(r):
    with r.pipeline(transaction=False) as pipe:
        for n in range(400):
            pipe.set(f"api:content:popular:{n}", "c")
        for n in range(300):
            pipe.set(f"user:profile:{n}", "u")
        for n in range(300):
            pipe.set(f"session:{n}", "s", ex=3600)
        pipe.execute()


def test_ttl_audit_dry_run_changes_nothing(r, daily):
    seed_ttl_case(r)
    result = run_dag("maintenance_daily", DAY, {"dry_run": True}, mark_success_pattern=BACKUP_TASKS)
    assert result.states["cache_optimization"] == "success"
    assert all(r.ttl(f"api:content:popular:{n}") == -1 for n in range(400))
    planned = daily.execute("SELECT outcome, plan->>'keys' FROM maintenance.actions WHERE run_id = %s "
                            "AND action = 'apply_default_ttl'", (result.run.run_id,))
    assert planned == [("planned", "400")]


def test_ttl_audit_applies_only_to_mapped_patterns(r, daily):
    seed_ttl_case(r)
    result = run_dag("maintenance_daily", datetime(2026, 11, 23, 5, tzinfo=UTC), mark_success_pattern=BACKUP_TASKS)
    assert result.states["cache_optimization"] == "success", result.states
    assert all(0 < r.ttl(f"api:content:popular:{n}") <= 86400 for n in range(400))
    assert all(r.ttl(f"user:profile:{n}") == -1 for n in range(300))  # not mapped: never touched
    audit = result.xcom("cache_optimization")["ttl_audit"]
    assert audit["before"]["no_expiry_fraction"] == pytest.approx(0.7)
    assert audit["after"]["no_expiry_fraction"] == pytest.approx(0.3)
    metrics = dict(daily.execute("SELECT name, value FROM maintenance.metrics WHERE run_id = %s",
                                 (result.run.run_id,)))
    assert {"used_memory_mb", "fragmentation", "evicted_keys", "expired_keys"} <= set(metrics)


def test_memory_relief_deletes_only_stale_disposable_keys(work_dir, server, daily, tmp_path, monkeypatch):
    small = servers.start_redis(work_dir / "redis-small", args=["--maxmemory", "4mb",
                                                               "--maxmemory-policy", "noeviction"])
    set_conn("platform_redis", small.conn_json())
    client = redis.Redis(port=small.port)
    try:
        baseline = client.info("memory")["used_memory"]
        filler = max(int((3.6 * 2**20 - baseline) / 2), 100_000)
        with client.pipeline(transaction=False) as pipe:
            for n in range(filler // 10_000):
                pipe.set(f"api:content:old:{n}", "o" * 10_000)
            for n in range(filler // 10_000):
                pipe.set(f"user:keep:{n}", "k" * 10_000)
            pipe.execute()
        time.sleep(6)  # the api:content:old keys become stale (idle > 5 s)
        client.set("api:content:fresh", "f")
        policy_with(tmp_path, monkeypatch, disposable=[{"prefix": "api:content:", "stale_idle_seconds": 5}],
                    ttl_audit={"sample": 1000, "max_no_ttl_fraction": 1.0, "default_ttls": []})
        used = client.info("memory")["used_memory"] / (4 * 2**20)
        assert used > 0.8
        # Only the cache task runs, so the fresh key is still fresh (idle < 5 s) when relief comes.
        result = run_dag("maintenance_daily", datetime(2026, 11, 22, 5, tzinfo=UTC),
                         mark_success_pattern=r"^(backup|verify_backup|log_rotation|security_scan|(plan_)?db_statistics)$")
        assert result.states["cache_optimization"] == "success", result.states
        assert client.keys("api:content:old:*") == []
        assert client.get("api:content:fresh") == b"f"
        assert len(client.keys("user:keep:*")) == filler // 10_000
    finally:
        small.stop()
        set_conn("platform_redis", server.conn_json())


def test_persistence_failure_pages_oncall(work_dir, server, daily, slack):
    doomed = servers.start_redis(work_dir / "redis-doomed-dag")
    set_conn("platform_redis", doomed.conn_json())
    client = redis.Redis(port=doomed.port)
    try:
        shutil.rmtree(doomed.dir)
        failed_save(client)
        result = run_dag("maintenance_daily", datetime(2026, 11, 21, 5, tzinfo=UTC), mark_success_pattern=BACKUP_TASKS)
        assert result.states["cache_optimization"] == "success"
        pages = slack.messages("#ops-oncall")
        assert len(pages) == 1 and "last RDB save failed" in pages[0]["text"]
        finding = daily.execute("SELECT severity FROM maintenance.findings WHERE run_id = %s AND check_name = "
                                "'rdb_save'", (result.run.run_id,))
        assert finding == [("critical",)]
    finally:
        doomed.stop()
        set_conn("platform_redis", server.conn_json())


def test_prewarm_reports_status_and_latency_per_path():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Platform(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200 if self.path != "/api/dashboard/student" else 503)
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        results = engine.prewarm(f"http://127.0.0.1:{httpd.server_address[1]}", CFG.prewarm_paths, 5)
    finally:
        httpd.shutdown()
    assert [(r["path"], r["status"]) for r in results] == [
        ("/api/careers/pool", 200), ("/api/content/popular", 200), ("/api/dashboard/student", 503)]
    assert all(r["ms"] >= 0 for r in results)
    unreachable = engine.prewarm("http://127.0.0.1:9", ["/x"], 1)
    assert str(unreachable[0]["status"]).startswith("error:")


def test_a_disposable_prefix_is_literal_never_a_glob(r):
    """``api:content?`` is a prefix of eleven characters: it must not reach ``api:contentX:y``; nor
    may ``api:content:`` reach ``api:content-archive:1``."""
    from maintenance.policy.model import DisposablePrefix

    for key in ("api:content:a", "api:content?:b", "api:contentX:y", "api:content-archive:1", "api:content*z",
                "api:content[1]:c", "other"):
        r.set(key, "v")
    time.sleep(1.1)  # every key idle a second

    def stale(prefix):
        found = engine.stale_disposable_keys(r, [DisposablePrefix(prefix=prefix, stale_idle_seconds=1)], 10, 100)
        return sorted(k.decode() if isinstance(k, bytes) else k for k in found)

    assert stale("api:content?") == ["api:content?:b"]
    assert stale("api:content:") == ["api:content:a"]
    assert stale("api:content*") == ["api:content*z"]
    assert stale("api:content[1]") == ["api:content[1]:c"]
    assert engine.glob_literal("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"


@pytest.mark.parametrize("pattern", ["*", "**", "?*", "[a-z]*", "*:content:*"])
def test_a_default_ttl_pattern_reaching_every_namespace_is_refused_on_load(tmp_path, monkeypatch, pattern):
    from maintenance.policy import PolicyError

    path = use_policy(tmp_path, monkeypatch, redis=load_policy().redis.model_dump() | {
        "ttl_audit": load_policy().redis.ttl_audit.model_dump() | {
            "default_ttls": [{"pattern": pattern, "ttl_seconds": 60}]}})
    with pytest.raises(PolicyError, match=r"redis\.ttl_audit\.default_ttls\.0\.pattern: .* would match keys of every "
                                          "namespace"):
        load_policy(path)


def test_a_database_named_in_the_uri_is_the_one_audited(r, server, daily):
    """redis://host:port/15: the audit works on database 15, not silently on database 0."""
    import json
    import os

    on_15 = redis.Redis(port=server.port, db=15)
    on_15.flushdb()
    seed_ttl_case(on_15)
    os.environ["AIRFLOW_CONN_PLATFORM_REDIS"] = f"redis://127.0.0.1:{server.port}/15"
    try:
        result = run_dag("maintenance_daily", datetime(2026, 11, 22, 5, tzinfo=UTC), mark_success_pattern=BACKUP_TASKS)
        assert result.states["cache_optimization"] == "success", result.states
        assert result.xcom("cache_optimization")["ttl_audit"]["before"]["sampled"] == 1000
        assert all(0 < on_15.ttl(f"api:content:popular:{n}") <= 86400 for n in range(400))
        assert r.dbsize() == 0  # database 0 untouched

        set_conn("platform_redis", {"conn_type": "redis", "host": "127.0.0.1", "port": server.port,
                                    "schema": "15", "extra": json.dumps({"db": 3})})
        refused = run_dag("maintenance_daily", datetime(2026, 11, 21, 5, tzinfo=UTC),
                          mark_success_pattern=BACKUP_TASKS)
        assert refused.states["cache_optimization"] == "failed"
        outcome = refused.xcom("cache_optimization", "outcome")
        assert "platform_redis: the URI names database 15 but the extra says db=3: keep one" in outcome
    finally:
        set_conn("platform_redis", server.conn_json())
        on_15.flushdb()


def test_a_cache_another_actor_is_maintaining_is_left_alone_with_the_holder_named(r, daily, tmp_path,
                                                                                   monkeypatch):
    from maintenance.redis.lock import CacheBusy, cache_lock

    seed_ttl_case(r)
    use_policy(tmp_path, monkeypatch, redis=load_policy().redis.model_dump() | {"lock_wait_seconds": 0.5})
    with cache_lock(r, "platform_redis", holder="maintenance maintenance_daily backfill__w cache_optimization",
                    hold_s=60, wait_s=0):
        result = run_dag("maintenance_daily", datetime(2026, 11, 20, 5, tzinfo=UTC), mark_success_pattern=BACKUP_TASKS)
        assert result.states["cache_optimization"] == "skipped", result.states
        assert result.xcom("cache_optimization", "outcome").startswith(
            "platform_redis is being maintained by maintenance maintenance_daily backfill__w cache_optimization")
        assert all(r.ttl(f"api:content:popular:{n}") == -1 for n in range(400))  # untouched
        with pytest.raises(CacheBusy):  # held: a second taker waits, then gives up
            with cache_lock(r, "platform_redis", holder="someone else", hold_s=60, wait_s=0.2, poll_s=0.05):
                pass
    assert r.get("maintenance:lock:platform_redis") is None  # released by its holder
    done = run_dag("maintenance_daily", datetime(2026, 11, 19, 5, tzinfo=UTC), mark_success_pattern=BACKUP_TASKS)
    assert done.states["cache_optimization"] == "success"
    assert r.get("maintenance:lock:platform_redis") is None  # and the task let go of its own
