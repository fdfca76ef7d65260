"""The notices of planned windows: sent once per window, kept with what they said."""

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
