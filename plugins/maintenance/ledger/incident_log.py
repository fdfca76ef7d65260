"""What happened to each incident, in order, and the action items its post-mortem raised.

Events are the post-mortem's own timeline: opened, told (Slack), paged, each playbook step and
check, acknowledged, resolved, the post-mortem written. Each has a key, so a re-run of the task
that recorded it records it once. Action items have an owner and a due date; they stay open
until closed from the incident form, and the weekly summary lists them until then.
"""

from __future__ import annotations

from datetime import date, datetime

from psycopg import sql
from psycopg.types.json import Jsonb

EVENT_FIELDS = ("at", "kind", "text", "detail")
ITEM_FIELDS = ("id", "incident_id", "title", "owner", "due", "created_at", "closed_at", "closed_by", "reminded_at")


def _s(schema: str) -> sql.Identifier:
    return sql.Identifier(schema)


def record_event(conn, schema: str, incident_id: int, kind: str, text: str, *, at: datetime | None = None,
                 detail: dict | None = None, key: str | None = None) -> None:
    """One moment of the incident; with ``key``, recording it again changes nothing."""
    conn.execute(sql.SQL("""
        INSERT INTO {s}.incident_events (incident_id, at, kind, text, detail, event_key)
        VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s) ON CONFLICT (event_key) DO NOTHING""").format(
        s=_s(schema)), (incident_id, at, kind, text[:4000], Jsonb(detail or {}), key))


def events(conn, schema: str, incident_id: int) -> list[dict]:
    rows = conn.execute(sql.SQL("SELECT at, kind, text, detail FROM {s}.incident_events WHERE incident_id = %s "
                                "ORDER BY at, id").format(s=_s(schema)), (incident_id,)).fetchall()
    return [dict(zip(EVENT_FIELDS, row, strict=True)) for row in rows]


def was_paged(conn, schema: str, incident_id: int) -> bool:
    return conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {s}.incident_events WHERE incident_id = %s "
                                "AND kind = 'paged')").format(s=_s(schema)), (incident_id,)).fetchone()[0]


def add_action_item(conn, schema: str, incident_id: int, *, title: str, owner: str, due: date) -> int:
    """A post-mortem's action item; the same title for the same incident is the same item."""
    row = conn.execute(sql.SQL("""
        INSERT INTO {s}.action_items (incident_id, title, owner, due) VALUES (%s, %s, %s, %s)
        ON CONFLICT (incident_id, title) DO UPDATE SET owner = EXCLUDED.owner, due = EXCLUDED.due
        RETURNING id""").format(s=_s(schema)), (incident_id, title, owner, due)).fetchone()
    return row[0]


def close_action_item(conn, schema: str, item_id: int, *, at: datetime, by: str) -> dict:
    """Close an item (a second close keeps the first's time and person); returns it."""
    row = conn.execute(sql.SQL("""
        UPDATE {s}.action_items SET closed_at = coalesce(closed_at, %s), closed_by = coalesce(closed_by, %s)
        WHERE id = %s RETURNING {f}""").format(s=_s(schema), f=sql.SQL(", ").join(map(sql.Identifier, ITEM_FIELDS))),
        (at, by, item_id)).fetchone()
    if row is None:
        raise LookupError(f"action_item_id: no action item {item_id}")
    return dict(zip(ITEM_FIELDS, row, strict=True))


def action_items(conn, schema: str, *, incident_id: int | None = None, open_only: bool = False) -> list[dict]:
    rows = conn.execute(sql.SQL("""
        SELECT {f} FROM {s}.action_items
        WHERE (%s::bigint IS NULL OR incident_id = %s) AND (NOT %s OR closed_at IS NULL)
        ORDER BY due, id""").format(s=_s(schema), f=sql.SQL(", ").join(map(sql.Identifier, ITEM_FIELDS))),
        (incident_id, incident_id, open_only)).fetchall()
    return [dict(zip(ITEM_FIELDS, row, strict=True)) for row in rows]


def reminded(conn, schema: str, item_ids: list[int], at: datetime) -> None:
    conn.execute(sql.SQL("UPDATE {s}.action_items SET reminded_at = %s WHERE id = ANY(%s)").format(s=_s(schema)),
                 (at, item_ids))


def incidents_in(conn, schema: str, start: datetime, end: datetime, *, now: datetime) -> list[dict]:
    """The incidents opened in the period and those still open at its end: each with its time to
    acknowledge and to resolve (minutes; open ones count to ``now``), its cause, and the
    maintenance action recorded as causing it."""
    rows = conn.execute(sql.SQL("""
        SELECT i.id, i.severity, i.summary, i.outage, i.planned, i.opened_at, i.acknowledged_at, i.resolved_at,
               i.cause, a.dag_id, a.task_id, a.target, a.action
        FROM {s}.incidents i LEFT JOIN {s}.actions a ON a.id = i.caused_by_action
        WHERE (i.opened_at >= %s AND i.opened_at < %s) OR (i.resolved_at IS NULL AND i.opened_at < %s)
        ORDER BY i.severity, i.opened_at""").format(s=_s(schema)), (start, end, end)).fetchall()
    found = []
    for (ident, severity, summary, outage, planned, opened, acked, resolved, cause, dag_id, task_id, target,
         action) in rows:
        found.append({"id": ident, "severity": severity, "summary": summary, "outage": outage, "planned": planned,
                      "opened_at": opened.isoformat(), "resolved_at": resolved.isoformat() if resolved else None,
                      "minutes": round(((resolved or now) - opened).total_seconds() / 60),
                      "minutes_to_acknowledge": round((acked - opened).total_seconds() / 60) if acked else None,
                      "cause": cause, "caused_by": f"{dag_id}.{task_id}: {action} {target}" if dag_id else None,
                      "post_mortem_due": not cause and not planned})
    return found
