"""From measurements to a plan: which action for which relation, and why.

Select (the thresholds of the policy) then act (the actions module); the plan
is what a dry run shows and what the cap on relations per run is checked against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maintenance.postgres.bloat import Relation


@dataclass(frozen=True)
class Capabilities:
    in_window: bool
    pg_repack: bool
    vacuum_full_allowed: frozenset[str]


def plan_vacuum(relations: list[Relation], thresholds, always: set[str]) -> list[Relation]:
    """Tables whose dead-tuple ratio passes the threshold, plus the policy's daily list."""
    chosen = []
    for rel in relations:
        if rel.kind != "table":
            continue
        if rel.qualified in always:
            rel.action, rel.why = "vacuum_analyze", "on the policy's daily vacuum list"
        elif (rel.dead_ratio or 0) > thresholds.vacuum_dead_ratio and rel.bytes >= thresholds.min_relation_bytes:
            rel.action = "vacuum_analyze"
            rel.why = f"dead tuples {rel.dead_ratio:.0%} > {thresholds.vacuum_dead_ratio:.0%}"
        else:
            continue
        chosen.append(rel)
    return chosen


def plan_reindex(relations: list[Relation], thresholds) -> list[Relation]:
    chosen = []
    for rel in relations:
        if rel.kind != "index":
            continue
        if rel.invalid and _is_rebuild_leftover(rel.name):
            rel.action, rel.why = "drop_invalid", "invalid leftover of a failed concurrent rebuild"
        elif rel.invalid:
            rel.action, rel.why = "reindex_concurrently", "invalid index: rebuild it"
        elif rel.bloat is not None and rel.bloat > thresholds.reindex_bloat_ratio \
                and rel.bytes >= thresholds.min_relation_bytes:
            rel.action = "reindex_concurrently"
            rel.why = f"{rel.method} bloat {rel.bloat:.0%} > {thresholds.reindex_bloat_ratio:.0%}"
        else:
            continue
        chosen.append(rel)
    return chosen


def plan_debloat(relations: list[Relation], thresholds, caps: Capabilities) -> list[Relation]:
    chosen = []
    for rel in relations:
        if rel.kind != "table" or rel.bloat is None or rel.bytes < thresholds.min_relation_bytes:
            continue
        if rel.bloat <= thresholds.table_debloat_ratio:
            continue
        why = f"{rel.method} bloat {rel.bloat:.0%} > {thresholds.table_debloat_ratio:.0%}"
        if caps.pg_repack:
            rel.action, rel.why = "repack", why + "; online with pg_repack"
        elif rel.qualified in caps.vacuum_full_allowed and caps.in_window:
            rel.action, rel.why = "vacuum_full", why + "; VACUUM FULL (allowed table, inside the window)"
        else:
            rel.action = "report_only"
            rel.why = why + ("; VACUUM FULL is not allowed for this table" if caps.in_window
                             else "; VACUUM FULL only inside the planned window")
        chosen.append(rel)
    return chosen


def _is_rebuild_leftover(name: str) -> bool:
    # REINDEX CONCURRENTLY names its transient copies <index>_ccnew[N] and <index>_ccold[N].
    return re.search(r"_cc(new|old)\d*$", name) is not None


def rank(relations: list[Relation]) -> list[Relation]:
    return sorted(relations, key=lambda r: (-r.wasted_bytes, -r.bytes, r.qualified))


def table(relations: list[Relation], limit: int = 40) -> str:
    """A plan as a fixed-width table for the task log."""
    head = f"{'relation':48} {'kind':5} {'size MB':>8} {'est':>6} {'meas':>6} {'dead':>5}  action / why"
    lines = [head, "-" * len(head)]
    for r in relations[:limit]:
        pct = lambda v: f"{v:.0%}" if v is not None else "-"  # noqa: E731
        note = (r.refused and f"(refused: {r.refused})") or ""
        lines.append(f"{r.qualified[:48]:48} {r.kind:5} {r.bytes / 2**20:8.1f} {pct(r.estimated):>6} "
                     f"{pct(r.measured):>6} {pct(r.dead_ratio):>5}  {r.action or '-'} {r.why} {note}".rstrip())
    if len(relations) > limit:
        lines.append(f"... and {len(relations) - limit} more")
    return "\n".join(lines)
