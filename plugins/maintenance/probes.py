"""Measurements of the platform the gate and the engines consult."""

from __future__ import annotations


def active_users(probe) -> int:
    """Run the policy's load probe (one query returning one number) on its connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    try:
        row = PostgresHook(postgres_conn_id=probe.conn_id).get_first(probe.sql)
    except Exception as exc:
        raise RuntimeError(f"decision.load.probe on connection {probe.conn_id!r} failed: {exc}") from exc
    if not row or row[0] is None:
        raise RuntimeError(f"decision.load.probe on {probe.conn_id!r} returned no number")
    return int(row[0])


def busy_reason(load) -> str | None:
    """Why the platform is too busy for heavy maintenance now (the policy's ``decision.load``),
    or None when it is not."""
    return too_many_users(active_users(load.probe), load.active_users_threshold)


def too_many_users(users: int, threshold: int) -> str | None:
    """The one rule and wording of "too busy", for the gate's blocker and for the steps that
    wait: why ``users`` are too many, or None when they are not."""
    return f"{users:,} active users (> {threshold:,})" if users > threshold else None
