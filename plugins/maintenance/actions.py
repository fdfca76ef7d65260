"""The action registry: every step this project can take on a system, declared once.

cloud-custodian's model: filters select, registered actions act, and what an action is comes
from its declaration, not from the code that happens to call it. Every step goes through
:meth:`maintenance.ledger.store.Ledger.action`, which looks its kind up here and enforces it:
an undeclared action is a programming error, a dry run records a changing action as planned,
and an action that needs the planned window is refused outside it. The gate and the PostgreSQL
steps read ``heavy`` (wait while the platform is busy) from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ActionKind:
    """What one action is. ``changes``: it mutates its target (a dry run only plans it).
    ``heavy``: it loads the system for a while, so it waits while the platform is busy.
    ``exclusive``: it blocks its target's readers or writers: not zero-downtime.
    ``window``: only inside the planned window. ``critical``: it runs in blackouts and under load
    (backups, security). ``silenced``: disruptive enough that its system's alerts are silenced while
    it runs (maintenance.monitoring.silences), through :meth:`maintenance.run.Run.step`."""

    system: str
    name: str
    changes: bool
    heavy: bool = False
    exclusive: bool = False
    window: bool = False
    critical: bool = False
    silenced: bool = False

    @property
    def zero_downtime(self) -> bool:
        return not self.exclusive


class UnknownAction(LookupError):
    """A step that is not declared here: a programming error, refused before it runs."""


def _kinds(system: str, *specs: tuple) -> dict[tuple[str, str], ActionKind]:
    return {(system, name): ActionKind(system, name, *flags) for name, *flags in specs}


# (name, changes, heavy, exclusive, window, critical)
REGISTRY: dict[tuple[str, str], ActionKind] = (
    _kinds("postgres",
           ("none", False),                       # planned and left alone (recorded as skipped)
           ("report_only", False),                # too big or refused: reported, not touched
           ("analyze", True),
           ("vacuum_analyze", True),
           ("refresh_materialized_view", True),
           ("reindex_concurrently", True, True),
           ("drop_invalid", True),
           ("repack", True, True),
           ("vacuum_full", True, True, True, True),
           ("create_partition", True),
           ("terminate_idle_in_transaction", True),  # incident playbooks (maintenance.incidents)
           ("cancel_blocking_maintenance", True))
    | _kinds("archive",
             ("attach_partitions", True),
             ("move_rows", True),
             ("export_month", True))
    | _kinds("backup",
             ("pg_dump", True, True, False, False, True),
             ("restore_test", True, True),
             ("dr_drill", True, True))
    | _kinds("redis",
             ("memory_purge", True),
             ("delete_stale_disposable", True),
             ("apply_default_ttl", True),
             ("memory_relief", True))                 # an incident playbook's step
    | _kinds("incident",
             ("playbook_check", False))               # the check that proves a playbook step worked
    | _kinds("logs",
             ("rotate_and_archive", True))
    | _kinds("s3",
             ("lifecycle_rules", True),
             ("store_report", True))
    | _kinds("rds",
             ("move_maintenance_window", True),
             ("opt_in_pending_maintenance", True, False, False, True))  # AWS applies it in its next window
    | _kinds("alertmanager",
             ("mute_time_intervals", True))
    | _kinds("prometheus",
             ("tsdb_snapshot", True),
             ("delete_series", True, True, False, True))  # only inside the window, after a snapshot
    | _kinds("kubernetes",
             ("delete_pod", True),
             ("rollout_restart", True),
             ("node_maintenance", True, True, True),  # its gate holds it to the window, or an emergency
             # kured's reboot lock: critical, as holding it is what keeps blackouts free of reboots
             ("kured_lock_hold", True, False, False, False, True),
             ("kured_lock_release", True, False, False, False, True))
)

# The disruptive steps (procedures 6.1): their system's alerts are silenced while they run.
SILENCED = {("postgres", "repack"), ("postgres", "vacuum_full"), ("backup", "restore_test"), ("backup", "dr_drill"),
            ("redis", "memory_purge"), ("redis", "delete_stale_disposable"), ("kubernetes", "node_maintenance")}
REGISTRY = {key: replace(value, silenced=key in SILENCED) for key, value in REGISTRY.items()}


def kind(system: str, name: str) -> ActionKind:
    try:
        return REGISTRY[(system, name)]
    except KeyError:
        known = sorted(n for s, n in REGISTRY if s == system)
        raise UnknownAction(f"action {name!r} of system {system!r} is not declared in maintenance.actions"
                            + (f" (declared: {', '.join(known)})" if known else " (no action of that system)")
                            ) from None


def heavy(system: str, name: str) -> bool:
    return kind(system, name).heavy
