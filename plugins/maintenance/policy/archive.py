"""Archiving: tables, children, batching, partitioning, exports."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from maintenance.policy.base import _Strict

_QUALIFIED = re.compile(r"^[^.]+\.[^.]+$")


def _qualified_name(value: str) -> str:
    if not _QUALIFIED.match(value or ""):
        raise ValueError(f"expected schema.table, got {value!r}")
    return value


QualifiedName = Annotated[str, BeforeValidator(lambda v: _qualified_name(v) if isinstance(v, str) else v)]


class ArchiveExport(_Strict):
    """A copy of the archive in S3 (connections.aws), one object per calendar month: gzip'd CSV
    with a header, and a manifest beside it (rows, SHA-256, bytes) written only once the object
    has been read back and checked."""

    bucket: str = Field(min_length=3)
    prefix: str = Field("archive/", description="s3://bucket/prefix<schema.table>/<YYYY-MM>.csv.gz")


class ArchiveChild(_Strict):
    """A table whose rows reference the source: its rows go to their own archive table in the
    same transaction as the source rows they reference."""

    table: QualifiedName
    archive: QualifiedName | None = Field(None, description="default: <table>_archive in the same schema")

    @property
    def archive_name(self) -> str:
        return self.archive or f"{self.table}_archive"


class ArchiveTable(_Strict):
    """One table whose old rows move to an archive table (procedures 2.3, database reorganization)."""

    conn_id: str = Field("platform_db", min_length=1)
    source: QualifiedName
    archive: QualifiedName | None = Field(None, description="default: <source>_archive in the same schema")
    time_column: str = Field(min_length=1)
    age_months: int = Field(6, ge=1, le=120)
    export: ArchiveExport | None = Field(None, description="also copy the archive's full months to S3")
    # A foreign key of another table with ON DELETE CASCADE, SET NULL or SET DEFAULT would delete
    # or rewrite that table's rows as source rows leave: the move refuses the source unless the
    # child table is named here, acknowledging exactly that.
    cascade_acknowledged: list[QualifiedName] = Field(
        [], description="child tables whose cascading foreign keys may act on the children of archived rows")
    # Or the children go along: archived with their parents, in the same transaction, verified alike.
    children: list[ArchiveChild] = Field([], description="tables whose rows are archived with the rows they reference")
    # User triggers and rules on DELETE of the source would fire once per archived row.
    delete_triggers: Literal["refuse", "fire"] = Field(
        "refuse", description="refuse: the move refuses a source with delete triggers or rules; fire: they fire")

    @property
    def archive_name(self) -> str:
        return self.archive or f"{self.source}_archive"

    @model_validator(mode="after")
    def _archive_is_not_the_source(self) -> ArchiveTable:
        if self.archive_name.lower() == self.source.lower():
            raise ValueError(f"archive: {self.archive_name} is the source itself")
        names = [self.source.lower(), self.archive_name.lower()]
        for i, child in enumerate(self.children):
            if child.table.lower() in names or child.archive_name.lower() in names:
                raise ValueError(f"children[{i}]: {child.table} -> {child.archive_name} reuses a table already "
                                 "named for this source")
            names += [child.table.lower(), child.archive_name.lower()]
        acknowledged = {t.lower() for t in self.cascade_acknowledged} & {c.table.lower() for c in self.children}
        if acknowledged:
            raise ValueError(f"{', '.join(sorted(acknowledged))}: both in children (archived along) and in "
                             "cascade_acknowledged (left to the foreign key); name it in one")
        return self


class ArchiveBatching(_Strict):
    """Batch sizing: each batch is one transaction; its size adapts so it holds its row locks
    about ``target_ms``."""

    initial_rows: int = Field(2000, ge=1)
    min_rows: int = Field(100, ge=1)
    max_rows: int = Field(50_000, ge=1)
    target_ms: float = Field(200, gt=0)
    max_batch_ms: float = Field(500, gt=0, description="a batch still running then is cancelled and retried smaller")
    pause_ms: float = Field(0, ge=0, description="a pause after each batch, leaving the database to the platform")

    @model_validator(mode="after")
    def _ordered(self) -> ArchiveBatching:
        if not self.min_rows <= self.initial_rows <= self.max_rows:
            raise ValueError(f"need min_rows <= initial_rows <= max_rows, got {self.min_rows}, "
                             f"{self.initial_rows}, {self.max_rows}")
        if self.target_ms >= self.max_batch_ms:
            raise ValueError(f"need target_ms < max_batch_ms, got {self.target_ms} and {self.max_batch_ms}")
        return self


class Partitioning(_Strict):
    """The monthly "partition large tables" task."""

    min_table_bytes: int = Field(10 * 2**30, ge=0, description="unpartitioned tables above this get a proposal")
    create_ahead_months: int = Field(3, ge=0, le=24, description="monthly partitions created this far ahead")
    rewrite_mb_per_second: float = Field(100, gt=0, description="for the proposal's cost estimate")


class Archive(_Strict):
    partitioning: Partitioning = Partitioning()
    tables: list[ArchiveTable] = [
        ArchiveTable(source="public.learning_sessions", time_column="created_at"),
        ArchiveTable(source="public.pathiq_metrics", time_column="timestamp"),
    ]
    batching: ArchiveBatching = ArchiveBatching()
    max_rows_per_run: int = Field(20_000_000, gt=0, description="a larger move is refused at the plan")
    time_budget_minutes: float = Field(180, gt=0, description="then stop; the next run resumes")
    load_check_seconds: float = Field(30, gt=0, description="how often the load probe is consulted")
    expected_rows_per_second: float = Field(20_000, gt=0,
                                            description="the dry run's guess until a move is measured")

    @model_validator(mode="after")
    def _archives_apart_from_sources(self) -> Archive:
        sources = {(t.conn_id, t.source.lower()): i for i, t in enumerate(self.tables)}
        if len(sources) < len(self.tables):
            raise ValueError("tables: a source is listed twice")
        for i, table in enumerate(self.tables):
            other = sources.get((table.conn_id, table.archive_name.lower()))
            if other is not None:
                raise ValueError(f"tables[{i}].archive: {table.archive_name} is the source of tables[{other}]; "
                                 "archiving into it would move rows back into a table being archived")
        return self
