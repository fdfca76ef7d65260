"""The notice of a planned window (procedures 1.1: seven days ahead): what will run, read from
the same planners the window's tasks use, without changing anything; how long it took last
time; the systems it touches; and how each step is undone, or, when it cannot be, what makes it
safe (the backup verified, the snapshot taken first).

Each part is gathered on its own: one that cannot be (a database down, no cluster) says why in
the notice and never stops the others.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta

from psycopg import sql

# How each of the window's steps is undone, or what stands in for an undo.
ROLLBACK = {
    "repack": "irreversible (the table is rebuilt in place): restore from {backup}",
    "vacuum_full": "irreversible (the table is rebuilt in place): restore from {backup}",
    "move_rows": "reversible: the rows are kept in the archive table, INSERT ... SELECT them back",
    "delete_series": "irreversible: a TSDB snapshot is taken first; restore it to bring the series back",
    "node_maintenance": "reversible: the node is uncordoned and its pods rescheduled; a reboot is not undone",
}


def not_cleared(policy, window, sent: dict | None, approval: dict | None) -> str | None:
    """Why a window's scheduled disruptive work may not run, from its notice and the Change
    Advisory Board's decision as the ledger keeps them (``ledger.notices``); None: it may."""
    days = policy.planned_window.notice_days
    if sent is None:
        return (f"the notice of {window.describe(policy.tz)} was not sent ({days} days ahead, procedures 1.1): "
                "its disruptive work waits for a window that was announced")
    if window.start - sent["sent_at"] < timedelta(days=days):
        return (f"the notice of this window went out {sent['sent_at'].astimezone(policy.tz):%Y-%m-%d %H:%M %Z}, "
                f"less than {days} days ahead: its disruptive work waits for the next window")
    if not policy.planned_window.approval or (approval and approval["decision"] == "approved"):
        return None
    if approval is None:
        return ("the Change Advisory Board has not approved this window (maintenance_window_approval, "
                "Required actions in the Airflow UI)")
    if approval["decision"] == "rejected":
        return (f"the Change Advisory Board rejected this window ({approval['decided_by']}, "
                f"{approval['decided_at'].astimezone(policy.tz):%Y-%m-%d %H:%M %Z})")
    return "nobody approved this window before it opened"


def part(gather, *args) -> dict:
    try:
        return gather(*args)
    except Exception as exc:  # a part that cannot be had is said, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"[:400], "where": traceback.format_exc(limit=1)[-300:]}


def debloat(conn, policy, schemas: list[str], now: datetime) -> dict:
    """The tables the window would rebuild: the monthly de-bloat's own plan, as if the window were open."""
    from maintenance.postgres import actions, bloat
    from maintenance.postgres.plan import Capabilities, plan_debloat, rank

    thresholds = policy.postgres.thresholds
    relations = bloat.estimate(conn, schemas, thresholds, now)
    bloat.measure(conn, relations, thresholds.exact_measure_top_n, thresholds.min_relation_bytes)
    caps = Capabilities(in_window=True, pg_repack=actions.pg_repack_available(conn),
                        vacuum_full_allowed=frozenset(policy.postgres.vacuum_full_allowed))
    planned = [r for r in rank(plan_debloat(relations, thresholds, caps)) if r.action in ("repack", "vacuum_full")]
    return {"tables": [{"table": r.qualified, "action": r.action, "bytes": r.bytes, "bloat_pct": round(r.bloat * 100)}
                       for r in planned[:policy.postgres.safety.max_relations_per_run]]}


def archive(conn, policy, conn_id: str, as_of) -> dict:
    """Rows older than each archive table's age on this database: what the archive would move."""
    from maintenance.archive import tables
    from maintenance.archive.plan import cutoff_for

    found = []
    for table in [t for t in policy.archive.tables if t.conn_id == conn_id]:
        source = tables.describe(conn, table.source, field="archive.tables")
        if source is None:
            found.append({"table": table.source, "error": "does not exist"})
            continue
        cutoff = cutoff_for(as_of, table.age_months, policy.tz)
        counts = tables.census(conn, source, table.time_column, cutoff, tables.references_to(conn, source))
        found.append({"table": table.source, "older_than": cutoff.date().isoformat(), "rows": counts["rows"],
                      "bytes": counts["bytes"]})
    return {"tables": found}


def nodes(core, settings) -> dict:
    from maintenance.kubernetes import nodes as engine

    due = [(n.metadata.name, engine.reasons(n, settings)) for n in core.list_node().items]
    return {"nodes": [{"node": name, "reasons": why} for name, why in due if why][:settings.max_nodes_per_run]}


def last_backup(conn, schema: str) -> str:
    """The newest backup the ledger saw made, for the rollback of what cannot be undone."""
    row = conn.execute(sql.SQL("""
        SELECT target, started_at FROM {s}.actions WHERE system = 'backup' AND action = 'pg_dump'
        AND outcome = 'applied' AND NOT dry_run ORDER BY started_at DESC LIMIT 1""").format(
        s=sql.Identifier(schema))).fetchone()
    return f"backup of {row[0]} made {row[1]:%Y-%m-%d %H:%M %Z} (verified daily at 04:00)" if row else \
        "the newest verified backup (none recorded in the ledger yet: check before the window)"


def last_duration_minutes(conn, schema: str) -> float | None:
    """How long the last window's steps took (the monthly DAG's window-only and heavy steps)."""
    from maintenance.actions import REGISTRY

    kinds = [f"{k.system}.{k.name}" for k in REGISTRY.values() if k.window or (k.heavy and k.system == "postgres")]
    row = conn.execute(sql.SQL("""
        WITH last AS (SELECT run_id FROM {s}.actions WHERE dag_id = 'maintenance_monthly' AND NOT dry_run
                      AND (system || '.' || action) = ANY(%s) ORDER BY started_at DESC LIMIT 1)
        SELECT sum(duration_ms) / 60000.0 FROM {s}.actions WHERE run_id IN (SELECT run_id FROM last)
        AND (system || '.' || action) = ANY(%s)""").format(s=sql.Identifier(schema)), (kinds, kinds)).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def render(window, tz, parts: dict, *, backup: str, duration: float | None, series: list[str], run_url: str) -> str:
    start, end = window.start.astimezone(tz), window.end.astimezone(tz)
    lines = [f":calendar: *Planned maintenance window {start:%A %Y-%m-%d %H:%M}-{end:%H:%M %Z}*",
             "What will run (from the planners, nothing changed yet):"]
    systems = set()
    for name, found in parts.items():
        if "error" in found:
            lines.append(f"• {name}: not known ({found['error']})")
            continue
        if name.startswith("de-bloat") and found["tables"]:
            systems.add(name.split(" ", 1)[1])
            lines.append(f"• {name}: " + ", ".join(f"{t['table']} ({t['action']}, {t['bloat_pct']}% bloat)"
                                                      for t in found["tables"]))
            lines.append(f"    rollback: {ROLLBACK['repack'].format(backup=backup)}")
        elif name.startswith("archive") and found["tables"]:
            lines.append(f"• {name}: " + ", ".join(f"{t['table']}: {t.get('rows', 0):,} rows older than "
                                                      f"{t.get('older_than', '?')}" for t in found["tables"]))
            lines.append(f"    rollback: {ROLLBACK['move_rows']}")
        elif name == "kubernetes nodes" and found["nodes"]:
            systems.add("kubernetes")
            lines.append("• node maintenance: " + ", ".join(f"{n['node']} ({'; '.join(n['reasons'])})"
                                                           for n in found["nodes"]))
            lines.append(f"    rollback: {ROLLBACK['node_maintenance']}")
        elif not name.startswith(("de-bloat", "archive", "kubernetes")):
            lines.append(f"• {name}: {found}")
    if series:
        systems.add("prometheus")
        lines.append(f"• Prometheus series deletion: {', '.join(series)}")
        lines.append(f"    rollback: {ROLLBACK['delete_series']}")
    if len(lines) == 2:
        lines.append("• nothing is planned yet; the plans are made again when the window opens")
    lines.append("Systems affected: " + (", ".join(sorted(systems)) or "none so far"))
    lines.append("Expected duration: " + (f"about {duration:.0f} min (the last window's steps)" if duration is not None
                                          else "unknown (no earlier window in the ledger); at most the window"))
    lines.append(f"Notice run: <{run_url}|{run_url.rsplit('/', 1)[-1]}>")
    return "\n".join(lines)
