"""Writing to the ledger: one small API over a psycopg connection.

Every write is keyed by the task instance and its try (plus a sequence number
for actions), and upserts: repeating a write of the same try — a reconnect, a
re-executed callback — never counts twice; a retry is a new try and is recorded
as such. The connection must be in autocommit mode so each record stands on its
own even when the work it describes fails.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class TaskKey:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    map_index: int = -1
    logical_date: datetime | None = None
    dry_run: bool = False
    forced_reason: str | None = None


@dataclass
class Action:
    """One planned or applied change; the recorder fills in timing and outcome."""

    system: str
    target: str
    action: str
    plan: dict = field(default_factory=dict)
    rows_affected: int | None = None
    bytes_affected: int | None = None
    lock_wait_ms: float = 0.0
    outcome: str | None = None
    error: str | None = None
    seq: int = 0  # its place among the task try's actions, given when it starts
    started_at: datetime | None = None


class OutsideWindow(RuntimeError):
    """A step that needs the planned window, asked for outside it."""


class Ledger:
    def __init__(self, conn, schema: str, key: TaskKey):
        self.conn, self.schema_name, self.key = conn, schema, key
        self.schema = sql.Identifier(schema)
        self._seq = 0
        # Is the planned window open now? Set by open_ledger from the policy; None: not asked.
        self.in_window = None

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self.schema)

    # -- task runs ---------------------------------------------------------------------
    # A task run still 'running' in another run after this long was killed, not slow: no step
    # runs that long (the longest, a paced VACUUM, has a 4-hour timeout).
    STALE_RUNNING = "24 hours"

    def start_task(self) -> list[dict]:
        """Record this try as running, after closing the tries a kill left 'running': earlier tries
        of this task instance, and this task's runs of other DAG runs older than a day. Their
        actions keep the counts they recorded while running. Returns what was closed."""
        closed = self.close_interrupted()
        k = self.key
        self.conn.execute(self._q("""
            INSERT INTO {s}.task_runs (dag_id, task_id, run_id, map_index, try_number, logical_date,
                                       dry_run, forced_reason)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (dag_id, task_id, run_id, map_index, try_number)
            DO UPDATE SET started_at = now(), outcome = 'running'"""),
            (k.dag_id, k.task_id, k.run_id, k.map_index, k.try_number, k.logical_date, k.dry_run,
             k.forced_reason))
        return closed

    def close_interrupted(self) -> list[dict]:
        k = self.key
        where = self._q("""
            dag_id = %(dag)s AND task_id = %(task)s AND map_index = %(index)s AND outcome = 'running'
            AND ((run_id = %(run)s AND try_number < %(try)s)
                 OR (run_id <> %(run)s AND started_at < now() - %(stale)s::interval))""")
        params = {"dag": k.dag_id, "task": k.task_id, "index": k.map_index, "run": k.run_id, "try": k.try_number,
                  "stale": self.STALE_RUNNING}
        runs = self.conn.execute(sql.SQL(
            "UPDATE {}.task_runs SET outcome = 'interrupted', ended_at = now() WHERE {} "
            "RETURNING run_id, try_number").format(self.schema, where), params).fetchall()
        acts = self.conn.execute(sql.SQL(
            "UPDATE {}.actions SET outcome = 'interrupted', error = 'the try was killed or lost its worker' "
            "WHERE {} RETURNING run_id, try_number, target, action, rows_affected").format(
            self.schema, where), params).fetchall()
        return [{"run_id": r, "try_number": t, "actions": [
            {"target": tg, "action": a, "rows_affected": n} for rr, tt, tg, a, n in acts if (rr, tt) == (r, t)]}
            for r, t in runs]

    def finish_task(self, outcome: str, summary: dict | None = None) -> None:
        k = self.key
        self.conn.execute(self._q("""
            UPDATE {s}.task_runs SET ended_at = now(), outcome = %s, summary = %s
            WHERE dag_id = %s AND task_id = %s AND run_id = %s AND map_index = %s AND try_number = %s"""),
            (outcome, Jsonb(summary or {}), k.dag_id, k.task_id, k.run_id, k.map_index, k.try_number))

    # -- actions -----------------------------------------------------------------------
    def record_action(self, act: Action, started_at: datetime, duration_ms: float) -> int:
        if not act.seq:
            self._seq += 1
            act.seq = self._seq
        k = self.key
        row = self.conn.execute(self._q("""
            INSERT INTO {s}.actions (dag_id, task_id, run_id, map_index, try_number, seq, logical_date,
                system, target, action, plan, outcome, rows_affected, bytes_affected, started_at,
                duration_ms, lock_wait_ms, dry_run, forced_reason, error)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (dag_id, task_id, run_id, map_index, try_number, seq) DO UPDATE SET
                outcome = EXCLUDED.outcome, rows_affected = EXCLUDED.rows_affected,
                bytes_affected = EXCLUDED.bytes_affected, duration_ms = EXCLUDED.duration_ms,
                lock_wait_ms = EXCLUDED.lock_wait_ms, error = EXCLUDED.error, plan = EXCLUDED.plan
            RETURNING id"""),
            (k.dag_id, k.task_id, k.run_id, k.map_index, k.try_number, act.seq, k.logical_date,
             act.system, act.target, act.action, Jsonb(act.plan), act.outcome, act.rows_affected,
             act.bytes_affected, started_at, duration_ms, act.lock_wait_ms, k.dry_run, k.forced_reason,
             act.error)).fetchone()
        return row[0]

    @contextmanager
    def action(self, system: str, target: str, action: str, plan: dict | None = None):
        """Time and record one step. A dry run records it as planned and does not run the body's
        change: callers check ``ledger.key.dry_run`` and skip the mutation; the record says 'planned'.
        A failure is recorded with its error and re-raised.

        Every step is a declared action (maintenance.actions): an undeclared one is refused before
        it starts, and one that needs the planned window is refused outside it, whoever calls."""
        from maintenance.actions import kind

        declared = kind(system, action)
        if declared.window and not self.key.dry_run and self.in_window is not None and not self.in_window():
            raise OutsideWindow(f"{action} of {target} refused: it runs only inside the planned window, "
                                "which is not open now")
        self._seq += 1
        act = Action(system, target, action, plan or {}, seq=self._seq)
        started, clock = datetime.now(UTC), time.perf_counter()
        act.started_at = started
        try:
            yield act
        except Exception as exc:
            act.outcome, act.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            self.record_action(act, started, (time.perf_counter() - clock) * 1000)
            raise
        if act.outcome is None:
            act.outcome = "planned" if self.key.dry_run else "applied"
        self.record_action(act, started, (time.perf_counter() - clock) * 1000)

    def checkpoint(self, act: Action) -> int:
        """Record a step still under way ('running', with its count so far), so a try killed
        midway leaves what it did; returns the action's id. The step's end records it again."""
        outcome, act.outcome = act.outcome, "running"
        try:
            return self.record_action(act, act.started_at or datetime.now(UTC), 0.0)
        finally:
            act.outcome = outcome

    # -- findings and metrics ------------------------------------------------------------
    def record_findings(self, findings) -> None:
        """Record each :class:`maintenance.findings.Finding`, its fix (when it has one) after its message."""
        for f in findings:
            self.record_finding(f.check, f.target, f.severity, f"{f.message}. Fix: {f.fix}" if f.fix else f.message,
                                f.evidence)

    def record_finding(self, check_name: str, target: str, severity: str, message: str,
                       evidence: dict[str, Any] | None = None) -> None:
        k = self.key
        self.conn.execute(self._q("""
            INSERT INTO {s}.findings (dag_id, task_id, run_id, check_name, target, severity, message, evidence)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (dag_id, task_id, run_id, check_name, target) DO UPDATE SET
                severity = EXCLUDED.severity, message = EXCLUDED.message, evidence = EXCLUDED.evidence"""),
            (k.dag_id, k.task_id, k.run_id, check_name, target, severity, message, Jsonb(evidence or {})))

    def resolve_passed_findings(self) -> int:
        """This task has checked everything it checks and finished: the findings its earlier runs
        recorded that this run did not find again have passed, and are resolved now (the
        compliance controls and reports count them as closed from then). Returns how many."""
        k = self.key
        if k.map_index != -1:  # a mapped instance checks only its part
            return 0
        return self.conn.execute(self._q("""
            UPDATE {s}.findings f SET resolved_at = now()
            WHERE f.dag_id = %(dag)s AND f.task_id = %(task)s AND f.run_id <> %(run)s AND f.resolved_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM {s}.findings g
                              WHERE g.dag_id = f.dag_id AND g.task_id = f.task_id AND g.run_id = %(run)s
                                AND g.check_name = f.check_name AND g.target = f.target)"""),
            {"dag": k.dag_id, "task": k.task_id, "run": k.run_id}).rowcount

    # -- pages -------------------------------------------------------------------------
    def pages_due(self, scope: str, problems: dict[str, str], *, remind_after_s: float,
                  now: datetime) -> tuple[dict[str, str], dict[str, str]]:
        """Of the open ``problems`` (key -> message) of ``scope``: the new ones, and the ones
        paged before whose reminder is due. Problems of the scope that are no longer open are
        resolved. Nothing is marked paged here: call :meth:`paged` once the page went out."""
        rows = dict(self.conn.execute(self._q(
            "SELECT page_key, last_paged_at FROM {s}.pages WHERE scope = %s AND resolved_at IS NULL"),
            (scope,)).fetchall())
        gone = [key for key in rows if key not in problems]
        if gone:
            self.conn.execute(self._q("UPDATE {s}.pages SET resolved_at = %s WHERE page_key = ANY(%s)"), (now, gone))
        new = {k: m for k, m in problems.items() if k not in rows}
        due = {k: m for k, m in problems.items()
               if k in rows and (now - rows[k]).total_seconds() >= remind_after_s}
        return new, due

    def paged(self, scope: str, problems: dict[str, str], now: datetime) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._q("""
                INSERT INTO {s}.pages (page_key, scope, message, first_paged_at, last_paged_at)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (page_key) DO UPDATE SET message = EXCLUDED.message, resolved_at = NULL,
                    last_paged_at = EXCLUDED.last_paged_at, times_paged = {s}.pages.times_paged + 1,
                    first_paged_at = CASE WHEN {s}.pages.resolved_at IS NULL THEN {s}.pages.first_paged_at
                                          ELSE EXCLUDED.first_paged_at END"""),
                [(key, scope, message, now, now) for key, message in problems.items()])

    def record_metrics(self, system: str, target: str, values: dict[str, float]) -> None:
        k = self.key
        with self.conn.cursor() as cur:
            cur.executemany(self._q("""
                INSERT INTO {s}.metrics (dag_id, task_id, run_id, system, target, name, value)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (dag_id, task_id, run_id, system, target, name) DO UPDATE SET
                    value = EXCLUDED.value, recorded_at = now()"""),
                [(k.dag_id, k.task_id, k.run_id, system, target, name, float(v))
                 for name, v in values.items() if v is not None])

    def latest_metric(self, system: str, target: str, name: str, *, where: tuple[str, float] | None = None,
                      before: datetime | None = None):
        """The latest value recorded for ``target``'s metric ``name``, and when, or None. With
        ``where`` (another metric's name and a minimum), only from a task run whose other metric
        reached that minimum, e.g. a rate measured over enough rows to mean something. With
        ``before``, the latest recorded no later than that (a week ago's, to measure growth)."""
        other, least = where or (None, 0.0)
        row = self.conn.execute(self._q("""
            SELECT m.value, m.recorded_at FROM {s}.metrics m
            WHERE m.system = %(system)s AND m.target = %(target)s AND m.name = %(name)s
              AND (%(before)s::timestamptz IS NULL OR m.recorded_at <= %(before)s)
              AND (%(other)s::text IS NULL OR EXISTS (
                  SELECT 1 FROM {s}.metrics o
                  WHERE (o.dag_id, o.task_id, o.run_id, o.system, o.target)
                        = (m.dag_id, m.task_id, m.run_id, m.system, m.target)
                    AND o.name = %(other)s AND o.value >= %(least)s))
            ORDER BY m.recorded_at DESC LIMIT 1"""),
            {"system": system, "target": target, "name": name, "other": other, "least": least,
             "before": before}).fetchone()
        return (row[0], row[1]) if row else None


# -- incidents (not tied to one task) ------------------------------------------------------

def open_incident(conn, schema: str, *, severity: str, summary: str, opened_at: datetime,
                  outage: bool = False, planned: bool = False, cause: str | None = None,
                  caused_by_action: int | None = None, external_key: str | None = None,
                  labels: dict | None = None) -> int:
    """Open an incident; with ``external_key`` (e.g. the run id) opening it again is a no-op."""
    row = conn.execute(sql.SQL("""
        INSERT INTO {s}.incidents (external_key, severity, summary, outage, planned, opened_at, cause,
                                   caused_by_action, labels)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (external_key) DO UPDATE SET external_key = EXCLUDED.external_key
        RETURNING id""").format(s=sql.Identifier(schema)),
        (external_key, severity, summary, outage, planned, opened_at, cause, caused_by_action,
         Jsonb(labels or {}))).fetchone()
    return row[0]


def resolve_incident(conn, schema: str, incident_id: int, resolved_at: datetime,
                     cause: str | None = None) -> None:
    updated = conn.execute(sql.SQL("""
        UPDATE {s}.incidents SET resolved_at = %s, cause = coalesce(%s, cause)
        WHERE id = %s RETURNING opened_at""").format(s=sql.Identifier(schema)),
        (resolved_at, cause, incident_id)).fetchone()
    if updated is None:
        raise LookupError(f"incident_id: no incident {incident_id}")


def acknowledge_incident(conn, schema: str, incident_id: int, at: datetime) -> datetime:
    """Record the first acknowledgement of an incident; returns when it was acknowledged."""
    row = conn.execute(sql.SQL("""
        UPDATE {s}.incidents SET acknowledged_at = coalesce(acknowledged_at, %s) WHERE id = %s
        RETURNING acknowledged_at""").format(s=sql.Identifier(schema)), (at, incident_id)).fetchone()
    if row is None:
        raise LookupError(f"incident_id: no incident {incident_id}")
    return row[0]


def incident_by_key(conn, schema: str, external_key: str) -> int:
    row = conn.execute(sql.SQL("SELECT id FROM {s}.incidents WHERE external_key = %s").format(
        s=sql.Identifier(schema)), (external_key,)).fetchone()
    if row is None:
        raise LookupError(f"alert_key: no incident was opened for {external_key}")
    return row[0]


INCIDENT_FIELDS = ("id", "severity", "summary", "outage", "planned", "opened_at", "acknowledged_at", "resolved_at",
                   "cause", "labels", "external_key")


def incident(conn, schema: str, incident_id: int) -> dict:
    row = conn.execute(sql.SQL("SELECT {f} FROM {s}.incidents WHERE id = %s").format(
        f=sql.SQL(", ").join(map(sql.Identifier, INCIDENT_FIELDS)), s=sql.Identifier(schema)),
        (incident_id,)).fetchone()
    if row is None:
        raise LookupError(f"incident_id: no incident {incident_id}")
    return dict(zip(INCIDENT_FIELDS, row, strict=True))


def incidents_between(conn, schema: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime | None]]:
    """(opened_at, resolved_at) of every incident open at some moment between ``start`` and ``end``."""
    return [tuple(row) for row in conn.execute(sql.SQL("""
        SELECT opened_at, resolved_at FROM {s}.incidents
        WHERE opened_at < %s AND (resolved_at IS NULL OR resolved_at > %s) ORDER BY opened_at""").format(
        s=sql.Identifier(schema)), (end, start)).fetchall()]


def task_try_over(conn, schema: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> bool:
    """Has this task try ended (done, failed, or closed as interrupted)? Unknown to the ledger: no."""
    row = conn.execute(sql.SQL("""
        SELECT outcome <> 'running' FROM {s}.task_runs
        WHERE dag_id = %s AND run_id = %s AND task_id = %s AND map_index = %s AND try_number = %s""").format(
        s=sql.Identifier(schema)), (dag_id, run_id, task_id, map_index, try_number)).fetchone()
    return bool(row and row[0])
