"""Playbooks: recovery without a person (procedures 7.2), as plain functions over connections.

Each recovery action plans first (what it would end, restart or free), refuses when the plan is
over the step's cap, and applies only with ``apply``; each check answers (passed, what it saw) and
is tried until it passes or its time is up. The operator runs the steps one at a time, records
every step and check in the ledger, and stops at the first check that does not pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

# How this project's own PostgreSQL sessions name themselves (maintenance.postgres.safety and
# maintenance.ledger.holder_name): the ones a playbook may cancel for blocking the platform.
MAINTENANCE_SESSION = "(application_name LIKE 'pathfinity-maintenance%%' OR application_name LIKE 'maintenance %%')"


def _with_ours(text: str):
    """A statement with ``{ours}``: the condition that a session is this project's."""
    from psycopg import sql

    return sql.SQL(text).format(ours=sql.SQL(MAINTENANCE_SESSION))


class TooMany(RuntimeError):
    """A step's plan is over its cap: nothing was done, a person decides."""


@dataclass
class CheckResult:
    passed: bool
    seen: object
    tries: int
    seconds: float

    def as_dict(self) -> dict:
        return {"passed": self.passed, "seen": self.seen, "tries": self.tries, "seconds": round(self.seconds, 1)}


def _sessions(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def shown(sessions: list[dict]) -> list[dict]:
    """Sessions as the ledger and the log keep them (times as text)."""
    return [{k: v if isinstance(v, int | str | type(None)) else str(v) for k, v in s.items()} for s in sessions]


def _capped(found: list[dict], cap: int, what: str) -> list[dict]:
    if len(found) > cap:
        raise TooMany(f"{len(found)} {what}, more than the step's max_sessions ({cap}): none ended; "
                      f"first ones: {[s['pid'] for s in found[:10]]}")
    return found


IDLE = """
    SELECT pid, usename, application_name, backend_start, now() - state_change AS idle_for, left(query, 200) AS query
    FROM pg_stat_activity
    WHERE state = 'idle in transaction' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND state_change < now() - make_interval(secs => %(older)s)
    ORDER BY state_change"""


def terminate_idle_in_transaction(conn, *, older_than_seconds: int, max_sessions: int, apply: bool) -> dict:
    """End the sessions idle inside a transaction for longer than ``older_than_seconds`` (they hold
    locks and stop VACUUM). Only a session still idle, with the same start, is ended: a pid reused
    by a new session in between is left alone."""
    found = _capped(_sessions(conn.execute(IDLE, {"older": older_than_seconds})), max_sessions,
                    "sessions idle in transaction")
    ended = []
    if apply and found:
        ended = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%(pids)s) AND state = 'idle in transaction' "
            "AND state_change < now() - make_interval(secs => %(older)s) "
            "AND backend_start = ANY(%(starts)s::timestamptz[]) AND pg_terminate_backend(pid)",
            {"pids": [s["pid"] for s in found], "older": older_than_seconds,
             "starts": [s["backend_start"] for s in found]}).fetchall()]
    return {"found": shown(found), "ended": ended}


BLOCKING_MAINTENANCE = """
    SELECT pid, application_name, state, now() - query_start AS running_for, left(query, 200) AS query,
           (SELECT count(*) FROM pg_stat_activity w WHERE a.pid = ANY(pg_blocking_pids(w.pid))) AS blocks
    FROM pg_stat_activity a
    WHERE {ours} AND pid <> pg_backend_pid()
      AND EXISTS (SELECT 1 FROM pg_stat_activity w WHERE a.pid = ANY(pg_blocking_pids(w.pid)))"""


def cancel_blocking_maintenance(conn, *, max_sessions: int, apply: bool) -> dict:
    """Cancel this project's own sessions that others queue behind: the platform wins. A running
    statement is cancelled (its step fails and rolls back, as a lock timeout would); a session
    holding its locks while idle in a transaction is ended."""
    found = _capped(_sessions(conn.execute(_with_ours(BLOCKING_MAINTENANCE), ())), max_sessions,
                    "blocking maintenance sessions")
    ended = []
    if apply and found:
        ended = [row[0] for row in conn.execute(_with_ours(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s) AND {ours} AND CASE "
            "WHEN state LIKE 'idle in transaction%%' THEN pg_terminate_backend(pid) ELSE pg_cancel_backend(pid) END"),
            ([s["pid"] for s in found],)).fetchall()]
    return {"found": shown(found), "ended": ended}


def redis_memory_relief(client, cfg, *, apply: bool) -> dict:
    """MEMORY PURGE, then the stale keys under the policy's disposable prefixes (never another
    key), up to the policy's cap on deletions."""
    from maintenance.redis import engine

    stale = engine.stale_disposable_keys(client, cfg.disposable, cfg.big_keys.batch, cfg.max_relief_deletes)
    done = {"stale_disposable": len(stale), "purged": [], "deleted": 0}
    if apply:
        done["purged"] = engine.purge_memory(client, False)
        done["deleted"] = engine.unlink(client, stale, cfg.big_keys.batch)
    return done


def _looping(pod) -> str | None:
    """Why a pod is in a crash or OOM loop, or None."""
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        last = status.last_state.terminated if status.last_state else None
        if waiting and waiting.reason == "CrashLoopBackOff":
            return f"{status.name}: CrashLoopBackOff after {status.restart_count} restarts"
        if last and last.reason == "OOMKilled":
            return f"{status.name}: OOMKilled ({status.restart_count} restarts)"
    return None


def rollout_restart(apps, core, *, namespace: str, deployment: str, now: datetime, apply: bool) -> dict:
    """Rollout-restart ``deployment`` when some of its pods are in a crash or OOM loop; left alone
    otherwise (a restart would not be recovery, only churn)."""
    from maintenance.kubernetes.pods import Restart
    from maintenance.kubernetes.pods import rollout_restart as restart

    found = apps.read_namespaced_deployment(deployment, namespace)
    selector = ",".join(f"{k}={v}" for k, v in sorted((found.spec.selector.match_labels or {}).items()))
    looping = {p.metadata.name: why for p in core.list_namespaced_pod(namespace, label_selector=selector).items
               for why in [_looping(p)] if why}
    done = {"looping": looping, "restarted": False}
    if apply and looping:
        restart(apps, Restart(namespace, "Deployment", deployment, [], "crash or OOM loop", True), now)
        done["restarted"] = True
    return done


# -- checks ----------------------------------------------------------------------------------

def sql_check(conn, query: str) -> tuple[bool, object]:
    row = conn.execute(query).fetchone()
    value = row[0] if row else None
    return value in (None, 0, False), value


def promql_check(base: str, query: str, *, now: datetime) -> tuple[bool, object]:
    from maintenance.monitoring.capacity import query as ask

    found = ask(base, query, now=now, timeout=10)
    return not found, [{"labels": m, "value": v} for m, v in found[:5]]


def redis_used_check(client, below: float) -> tuple[bool, object]:
    info = client.info("memory")
    limit = int(info.get("maxmemory", 0))
    used = int(info["used_memory"]) / limit if limit else 0.0
    return used < below, round(used, 4)


def deployment_ready_check(apps, namespace: str, deployment: str) -> tuple[bool, object]:
    found = apps.read_namespaced_deployment(deployment, namespace)
    status, wanted = found.status, found.spec.replicas or 0
    seen = {"generation": found.metadata.generation, "observed": status.observed_generation,
            "replicas": wanted, "updated": status.updated_replicas or 0, "available": status.available_replicas or 0}
    rolled = (status.observed_generation or 0) >= (found.metadata.generation or 0)
    return rolled and seen["updated"] >= wanted and seen["available"] >= wanted, seen


def until_passes(check, *, within: float, every: float, sleep=time.sleep, clock=time.monotonic) -> CheckResult:
    """Try ``check()`` until it passes or ``within`` seconds have passed; an error counts as not
    passing (what it said is kept), so a flapping connection does not end the wait early."""
    began, tries = clock(), 0
    while True:
        tries += 1
        try:
            passed, seen = check()
        except Exception as exc:
            passed, seen = False, f"{type(exc).__name__}: {exc}"[:300]
        if passed or clock() - began >= within:
            return CheckResult(passed, seen, tries, clock() - began)
        sleep(every)
