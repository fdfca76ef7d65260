"""Compliance controls evaluated from the maintenance ledger, each with its evidence."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg import sql


def evaluate(conn, schema: str, control, *, now: datetime, policy) -> dict:
    s = sql.Identifier(schema)
    result = {"control": control.name, "kind": control.kind}
    if control.kind == "task_succeeded":
        row = conn.execute(sql.SQL("""
            SELECT max(ended_at), count(*) FILTER (WHERE ended_at >= %s) FROM {}.task_runs
            WHERE task_id LIKE %s AND outcome = 'done' AND NOT dry_run""").format(s),
            (now - timedelta(days=control.within_days), control.task_pattern)).fetchone()
        last, recent = row
        passed = last is not None and last >= now - timedelta(days=control.within_days)
        return result | {"passed": passed, "evidence": {
            "last_success": last.isoformat() if last else None, "within_days": control.within_days,
            "successes_in_period": recent, "task": control.task_pattern}}
    if control.kind == "findings_closed":
        open_old = conn.execute(sql.SQL("""
            SELECT check_name, target, recorded_at FROM {}.findings
            WHERE severity = 'critical' AND resolved_at IS NULL AND recorded_at < %s
            ORDER BY recorded_at LIMIT 50""").format(s), (now - timedelta(days=control.within_days),)).fetchall()
        return result | {"passed": not open_old, "evidence": {
            "open_longer_than_days": control.within_days,
            "findings": [{"check": c, "target": t, "since": at.isoformat()} for c, t, at in open_old]}}
    if control.kind == "log_retention":
        expire = policy.s3_lifecycle.logs_expire_days
        covered = [b.name for b in policy.s3_lifecycle.buckets if b.logs_prefix is not None]
        row = conn.execute(sql.SQL("""
            SELECT max(ended_at) FROM {}.task_runs WHERE task_id LIKE '%%s3_lifecycle' AND outcome = 'done'
            AND NOT dry_run""").format(s)).fetchone()
        applied = row[0] is not None and row[0] >= now - timedelta(days=8)
        return result | {"passed": bool(covered) and expire >= control.days and applied, "evidence": {
            "logs_expire_days": expire, "required_days": control.days, "buckets": covered,
            "lifecycle_last_applied": row[0].isoformat() if row[0] else None}}
    raise ValueError(f"unknown control kind {control.kind!r}")
