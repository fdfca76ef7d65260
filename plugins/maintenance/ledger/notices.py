"""The notices of planned windows, sent once each and kept with what they said, the Change
Advisory Board's decision on each window, and the two approvals of each emergency run."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql
from psycopg.types.json import Jsonb


def record(conn, schema: str, *, window_start: datetime, window_end: datetime, sent_at: datetime, channel: str,
           text: str, parts: dict, delivered: bool, run_id: str) -> bool:
    """Keep a window's notice; False when one was already kept (the first one stands)."""
    row = conn.execute(sql.SQL("""
        INSERT INTO {s}.window_notices (window_start, window_end, sent_at, channel, text, parts, delivered, run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (window_start) DO NOTHING RETURNING 1""").format(
        s=sql.Identifier(schema)),
        (window_start, window_end, sent_at, channel, text, Jsonb(parts), delivered, run_id)).fetchone()
    return row is not None


def sent_for(conn, schema: str, window_start: datetime) -> dict | None:
    """The notice of the window starting at ``window_start`` (None: none went out)."""
    row = conn.execute(sql.SQL("SELECT sent_at, channel, delivered, run_id FROM {s}.window_notices "
                               "WHERE window_start = %s").format(s=sql.Identifier(schema)), (window_start,)).fetchone()
    return dict(zip(("sent_at", "channel", "delivered", "run_id"), row, strict=True)) if row else None


def record_approval(conn, schema: str, *, window_start: datetime, decision: str, decided_by: str | None,
                    decided_at: datetime, run_id: str) -> None:
    """The board's decision on a window; a later decision replaces it (a re-run after a reject)."""
    conn.execute(sql.SQL("""
        INSERT INTO {s}.window_approvals (window_start, decision, decided_by, decided_at, run_id)
        VALUES (%s, %s, %s, %s, %s) ON CONFLICT (window_start) DO UPDATE SET decision = EXCLUDED.decision,
        decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at, run_id = EXCLUDED.run_id""").format(
        s=sql.Identifier(schema)), (window_start, decision, decided_by, decided_at, run_id))


def approval_for(conn, schema: str, window_start: datetime) -> dict | None:
    row = conn.execute(sql.SQL("SELECT decision, decided_by, decided_at FROM {s}.window_approvals "
                               "WHERE window_start = %s").format(s=sql.Identifier(schema)), (window_start,)).fetchone()
    return dict(zip(("decision", "decided_by", "decided_at"), row, strict=True)) if row else None


EMERGENCY_FIELDS = ("role", "decision", "decided_by", "decided_at", "reason", "approval_run_id")


def record_emergency(conn, schema: str, *, dag_id: str, run_id: str, role: str, decision: str,
                     decided_by: str | None, decided_at: datetime, reason: str, approval_run_id: str) -> None:
    """One of a forced run's two approvals (role ``oncall_lead`` or ``director``); a later answer
    for the same run and role replaces it."""
    conn.execute(sql.SQL("""
        INSERT INTO {s}.emergency_approvals (dag_id, run_id, role, decision, decided_by, decided_at, reason,
                                             approval_run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dag_id, run_id, role) DO UPDATE SET
        decision = EXCLUDED.decision, decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at,
        reason = EXCLUDED.reason, approval_run_id = EXCLUDED.approval_run_id""").format(s=sql.Identifier(schema)),
        (dag_id, run_id, role, decision, decided_by, decided_at, reason, approval_run_id))


def emergency_for(conn, schema: str, dag_id: str, run_id: str) -> dict[str, dict]:
    """A forced run's approvals so far, by role."""
    rows = conn.execute(sql.SQL("SELECT {f} FROM {s}.emergency_approvals WHERE dag_id = %s AND run_id = %s").format(
        s=sql.Identifier(schema), f=sql.SQL(", ").join(map(sql.Identifier, EMERGENCY_FIELDS))),
        (dag_id, run_id)).fetchall()
    return {row[0]: dict(zip(EMERGENCY_FIELDS, row, strict=True)) for row in rows}


def emergencies_in(conn, schema: str, start: datetime, end: datetime) -> list[dict]:
    """Every emergency approval answered in ``[start, end)``, for the reports."""
    names = ("dag_id", "run_id", *EMERGENCY_FIELDS)
    rows = conn.execute(sql.SQL("SELECT {f} FROM {s}.emergency_approvals WHERE decided_at >= %s AND decided_at < %s "
                                "ORDER BY decided_at").format(
        s=sql.Identifier(schema), f=sql.SQL(", ").join(map(sql.Identifier, names))), (start, end)).fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]
