"""The diagnostics bundle gathered when an incident opens (procedures 7.1): one JSON document of
what on-call looks at first, so it is not lost when the moment passes.

PostgreSQL: sessions by state, the blocking tree, long transactions, replication lag, the
statements that took the most time. Redis: INFO, SLOWLOG, LATENCY, memory. Kubernetes: pods not
Ready, recent warning events, restarts. The ledger: maintenance actions of the last 24 hours,
which answers on-call's first question: did maintenance cause it? Each part is gathered on its
own; one that fails says why in the bundle and never stops the others.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta


def _part(gather, *args) -> dict:
    try:
        return gather(*args)
    except Exception as exc:  # a part that cannot be had is reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "where": traceback.format_exc(limit=2)[-500:]}


def _rows(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, (v.isoformat() if isinstance(v, datetime) else v for v in row), strict=True))
            for row in cur.fetchall()]


def postgres(conn) -> dict:
    found = {
        "sessions": _rows(conn.execute(
            "SELECT state, wait_event_type, count(*) AS sessions FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' GROUP BY 1, 2 ORDER BY 3 DESC")),
        "blocking": _rows(conn.execute(
            "SELECT pid, pg_blocking_pids(pid) AS blocked_by, state, wait_event_type, wait_event, "
            "now() - query_start AS waiting, left(query, 200) AS query FROM pg_stat_activity "
            "WHERE cardinality(pg_blocking_pids(pid)) > 0")),
        "long_transactions": _rows(conn.execute(
            "SELECT pid, usename, application_name, state, now() - xact_start AS open_for, left(query, 200) AS query "
            "FROM pg_stat_activity WHERE xact_start < now() - interval '5 minutes' ORDER BY xact_start LIMIT 20")),
        "replication": _rows(conn.execute(
            "SELECT application_name, state, write_lag, flush_lag, replay_lag FROM pg_stat_replication")),
    }
    has_statements = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
    found["top_statements"] = _rows(conn.execute(
        "SELECT left(query, 200) AS query, calls, round(total_exec_time) AS total_ms, round(mean_exec_time) AS "
        "mean_ms FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10")) if has_statements else \
        {"note": "pg_stat_statements is not installed"}
    for rows in found.values():  # intervals as text, for JSON
        for row in rows if isinstance(rows, list) else []:
            for key, value in row.items():
                if isinstance(value, timedelta):
                    row[key] = str(value)
    return found


def redis(client) -> dict:
    return {"info": client.info(), "slowlog": [{k: (v.decode(errors="replace") if isinstance(v, bytes) else v)
                                                for k, v in entry.items() if k != "command"}
                                               | {"command": str(entry.get("command"))[:200]}
                                               for entry in client.slowlog_get(20)],
            "latency": client.execute_command("LATENCY", "LATEST"), "memory": client.memory_stats()}


def kubernetes(core, *, now: datetime) -> dict:
    pods = core.list_pod_for_all_namespaces().items
    not_ready = [f"{p.metadata.namespace}/{p.metadata.name}" for p in pods
                 if p.status.phase != "Succeeded" and not any(
                     c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
    restarts = sorted(((f"{p.metadata.namespace}/{p.metadata.name}",
                        sum(c.restart_count for c in (p.status.container_statuses or []))) for p in pods),
                      key=lambda x: -x[1])
    events = [{"object": f"{e.involved_object.kind} {e.involved_object.namespace}/{e.involved_object.name}",
               "reason": e.reason, "message": (e.message or "")[:200], "count": e.count}
              for e in core.list_event_for_all_namespaces().items if e.type == "Warning"][-50:]
    return {"pods_not_ready": not_ready, "restarts": [r for r in restarts if r[1]][:20], "warning_events": events}


def ledger(conn, schema: str, *, now: datetime, systems: set[str] | None) -> dict:
    from psycopg import sql

    cur = conn.execute(sql.SQL(
        "SELECT id, dag_id, task_id, system, target, action, outcome, started_at, duration_ms, error "
        "FROM {}.actions WHERE started_at >= %s AND NOT dry_run AND (%s::text[] IS NULL OR system = ANY(%s)) "
        "ORDER BY started_at DESC LIMIT 200").format(sql.Identifier(schema)),
        (now - timedelta(hours=24), sorted(systems) if systems else None, sorted(systems) if systems else None))
    actions = _rows(cur)
    return {"actions_last_24h": actions, "count": len(actions),
            "failed": [a for a in actions if a["outcome"] in ("failed", "interrupted", "rolled_back")]}


def bundle(*, incident: dict, now: datetime, parts: dict) -> dict:
    """The document: the incident, when it was gathered, and each part (or why it is missing)."""
    return {"incident": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in incident.items()},
            "gathered_at": now.isoformat(), **{name: _part(*gather) for name, gather in parts.items()}}
