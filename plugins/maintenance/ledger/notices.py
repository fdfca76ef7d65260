"""The notices of planned windows, sent once each and kept with what they said, and the Change
Advisory Board's decision on each window."""

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
