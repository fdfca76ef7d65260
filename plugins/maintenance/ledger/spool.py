"""The ledger when its database cannot be reached: critical work goes on, its records wait.

A backup or its verification must never fail because the ledger is down. Such a task gets a
:class:`SpooledLedger`: it takes every write the task makes (its run, actions, findings,
metrics, pages) and appends it to a file of its own in the spool folder, one JSON line per
write, and answers reads as a ledger with no history would (every problem pages; no earlier
measurement). The next task that reaches the ledger writes the spooled records in their order,
under the task, run and try they belong to, and removes the file. The spool is local to the
worker: on a cluster of workers, each one's spool is written by the next task it runs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from maintenance.ledger.store import Action, Ledger, TaskKey

log = logging.getLogger(__name__)


def spool_folder(policy) -> Path:
    configured = policy.ledger.spool_dir
    if configured:
        return Path(configured)
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "maintenance-ledger-spool"


def _plain(value):
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, Action):
        return {"__action__": _plain(asdict(value))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _revived(value):
    if isinstance(value, dict):
        if "__datetime__" in value:
            return datetime.fromisoformat(value["__datetime__"])
        if "__action__" in value:
            return Action(**_revived(value["__action__"]))
        return {k: _revived(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revived(v) for v in value]
    return value


class SpooledLedger(Ledger):
    """A ledger that writes to a spool file; ``reason`` says why the real one was not reachable."""

    def __init__(self, folder: Path, schema: str, key: TaskKey, reason: str):
        super().__init__(None, schema, key)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{key.dag_id}.{key.run_id}.{key.task_id}.{key.map_index}.{key.try_number}"
        self.path = folder / ("".join(c if c.isalnum() or c in "._-" else "_" for c in stem) + ".jsonl")
        self.reason = reason
        self._spool("key", asdict(key))

    def _spool(self, method: str, *args) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"method": method, "args": _plain(list(args))}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # Writes: kept for the real ledger.
    def start_task(self) -> list[dict]:
        self._spool("start_task")
        return []

    def finish_task(self, outcome: str, summary: dict | None = None) -> None:
        self._spool("finish_task", outcome, summary or {})

    def record_action(self, act: Action, started_at: datetime, duration_ms: float) -> int:
        if not act.seq:
            self._seq += 1
            act.seq = self._seq
        self._spool("record_action", act, started_at, duration_ms)
        return 0

    def record_finding(self, check_name, target, severity, message, evidence=None) -> None:
        self._spool("record_finding", check_name, target, severity, message, evidence or {})

    def record_metrics(self, system: str, target: str, values: dict[str, float]) -> None:
        self._spool("record_metrics", system, target, values)

    def paged(self, scope: str, problems: dict[str, str], now: datetime) -> None:
        self._spool("paged", scope, problems, now)

    # Reads: what a ledger with no history answers.
    def pages_due(self, scope, problems, *, remind_after_s, now):
        return dict(problems), {}  # without the ledger, page rather than stay silent

    def latest_metric(self, *args, **kwargs):
        return None

    def close_interrupted(self) -> list[dict]:
        return []


def replay(conn, schema: str, folder: Path) -> list[str]:
    """Write every spooled task's records to the ledger behind ``conn``, oldest first; returns
    the files written. A file another process is writing at the same moment is left to it."""
    if not folder.is_dir():
        return []
    done = []
    for path in sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
        taken = path.with_suffix(f".replaying-{os.getpid()}")
        try:
            path.rename(taken)  # atomic: one replayer per file
        except FileNotFoundError:
            continue
        try:
            lines = [json.loads(line) for line in taken.read_text().splitlines() if line.strip()]
            key = TaskKey(**_revived(lines[0]["args"][0]))
            ledger = Ledger(conn, schema, key)
            for entry in lines[1:]:  # every write is an upsert: a replay cut short is simply redone
                method, args = entry["method"], _revived(entry["args"])
                if method == "start_task":
                    ledger.start_task()
                else:
                    getattr(ledger, method)(*args)
        except Exception:
            taken.rename(path)  # for the next replayer
            raise
        taken.unlink()
        done.append(path.name)
        log.info("Ledger: wrote the records %s had spooled while the ledger was unreachable", path.name)
    return done
