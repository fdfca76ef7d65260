"""The archive plan: the cutoff from the run's date, and per table what would move."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = _DAYS[month] if month != 1 or (year % 4 == 0 and (year % 100 or year % 400 == 0)) else 28
    return date(year, month + 1, min(day.day, last))


def cutoff_for(as_of: date, months: int, tz: ZoneInfo) -> datetime:
    """Rows created before local midnight ``months`` months before ``as_of`` are archived.

    It depends only on the date, so a re-run or a backfill of the same date moves the same set.
    """
    return datetime.combine(months_before(as_of, months), time(0), tzinfo=tz)


@dataclass
class TablePlan:
    source: str
    archive: str
    time_column: str
    cutoff: str
    rows: int
    bytes: int
    batches: int
    estimated_seconds: float
    archive_exists: bool
    estimate_basis: str = ""
    references: list[dict] = field(default_factory=list)  # foreign keys of other tables pointing here
    delete_hooks: list[dict] = field(default_factory=list)  # user triggers and rules on DELETE
    delete_triggers: str = "refuse"  # the policy's choice for them
    kept_referenced: dict[str, int] = field(default_factory=dict)  # old rows kept: child table -> rows
    no_time: int = 0  # rows whose time is NULL: never archived
    refused: str | None = None  # why the move will not touch this table
    children: list[dict] = field(default_factory=list)  # tables archived along: table, archive, rows

    def as_dict(self) -> dict:
        return asdict(self)

    def notes(self) -> list[str]:
        """What an operator must know before the move: refusals, rows that stay, what fires."""
        notes = [f"refused: {self.refused}"] if self.refused else []
        notes += [f"kept: {n:,} old rows still referenced by {child}" for child, n in self.kept_referenced.items()
                  if n]
        notes += [f"with {c['rows']:,} rows of {c['table']} archived along into {c['archive']}"
                  for c in self.children]
        if self.no_time:
            notes.append(f"{self.no_time:,} rows with no {self.time_column}: never archived")
        if self.delete_hooks and self.delete_triggers == "fire":
            names = ", ".join(f"{h['kind']} {h['name']}" for h in self.delete_hooks)
            notes.append(f"{names} fire on each archived row (archive.tables[].delete_triggers: fire)")
        return notes


def estimate(rows: int, rows_per_second: float, batching) -> tuple[int, float]:
    """Batches and seconds to move ``rows`` at ``rows_per_second``. A batch grows until it holds
    its locks about ``batching.target_ms``, within ``min_rows`` and ``max_rows``: at that rate, it
    settles at ``rows_per_second * target_ms`` rows."""
    per_batch = max(batching.min_rows, min(batching.max_rows, int(rows_per_second * batching.target_ms / 1000)))
    return -(-rows // per_batch), round(rows / rows_per_second, 1)
