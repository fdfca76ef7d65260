"""Copies of an archive table in S3, one object per calendar month, each checked before it counts.

A month is exported once it lies entirely before the cutoff (no later run adds rows to it) and
the move that fills it has finished. Its rows go out as gzip'd CSV with a header, in key order,
read in one snapshot together with their count and checksum. The object is then read back: its
SHA-256 must equal what was written and its records must number the rows counted. Only then is
the manifest written beside it (``<object>.manifest.json``: rows, checksum, SHA-256, bytes), and
the manifest is what marks the month exported: an upload that fails its check leaves none, so
the next run exports the month again. A month whose row count in the archive no longer matches
its manifest (rows archived late) is exported again whole; the archive table keeps every row.
"""

from __future__ import annotations

import csv
import gzip
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from psycopg import sql

from maintenance import s3files
from maintenance.archive.tables import TableInfo, column_types


class ExportMismatch(RuntimeError):
    """The object in S3 is not what was written: the month is left unexported (no manifest)."""


@dataclass
class MonthExport:
    month: str  # YYYY-MM, local to the policy's zone
    key: str
    rows: int
    status: str  # exported, re-exported, unchanged, due (dry run)
    bytes: int = 0
    sha256: str = ""
    # The sum of the rows' 64-bit hashes: wider than 64 bits, so kept as text (XCom's wire
    # format, msgpack, stops at 64-bit integers).
    checksum: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _month_start(column_type: str, time_column: str, tz: ZoneInfo) -> sql.Composable:
    if column_type == "timestamp with time zone":
        return sql.SQL("date_trunc('month', {}, {})").format(sql.Identifier(time_column), sql.Literal(tz.key))
    return sql.SQL("date_trunc('month', {})::timestamp").format(sql.Identifier(time_column))


def next_month(start: datetime, tz: ZoneInfo) -> datetime:
    year, month = divmod(start.year * 12 + start.month, 12)
    return datetime(year, month + 1, 1, tzinfo=tz)


def full_months(conn, archive: TableInfo, time_column: str, cutoff: datetime, tz: ZoneInfo) -> list[tuple]:
    """(start, end, rows) of each local calendar month of the archive lying entirely before ``cutoff``."""
    month = _month_start(column_types(conn, archive)[time_column], time_column, tz)
    rows = conn.execute(sql.SQL("SELECT {m} AS month, count(*) FROM {t} WHERE {c} < %s GROUP BY 1 ORDER BY 1").format(
        m=month, t=archive.ident, c=sql.Identifier(time_column)), (cutoff,)).fetchall()
    found = []
    for month, count in rows:
        start = datetime(month.year, month.month, 1, tzinfo=tz)
        end = next_month(start, tz)
        if end <= cutoff:
            found.append((start, end, count))
    return found


def object_key(prefix: str, archive: TableInfo, start: datetime) -> str:
    return f"{prefix}{archive.qualified}/{start:%Y-%m}.csv.gz"


def read_manifest(s3, bucket: str, key: str) -> dict | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{key}.manifest.json")["Body"].read()
    except (s3.exceptions.NoSuchKey, s3.exceptions.NoSuchBucket):
        return None  # not exported yet (a dry run reads before the bucket is made)
    return json.loads(body)


def plan(conn, s3, archive: TableInfo, time_column: str, cutoff: datetime, tz: ZoneInfo, *,
         bucket: str, prefix: str) -> list[MonthExport]:
    """Every full month with its status: unchanged (its manifest matches), or due."""
    months = []
    for start, _end, rows in full_months(conn, archive, time_column, cutoff, tz):
        key = object_key(prefix, archive, start)
        manifest = read_manifest(s3, bucket, key)
        if manifest is not None and manifest["rows"] == rows:
            months.append(MonthExport(f"{start:%Y-%m}", key, rows, "unchanged", manifest["bytes"],
                                      manifest["sha256"], str(manifest["checksum"])))
        else:
            months.append(MonthExport(f"{start:%Y-%m}", key, rows, "due" if manifest is None else "changed"))
    return months


def _write_month(conn, archive: TableInfo, time_column: str, start: datetime, end: datetime,
                 path: Path) -> tuple[int, str]:
    """The month's rows as gzip'd CSV in ``path``, with their count and checksum from the same snapshot."""
    where = sql.SQL("{c} >= %s AND {c} < %s").format(c=sql.Identifier(time_column))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows, checksum = conn.execute(sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(r::text, 0)), 0) FROM {} AS r WHERE {}").format(
            archive.ident, where), (start, end)).fetchone()
        copy_out = sql.SQL("COPY (SELECT {cols} FROM {t} WHERE {w} ORDER BY {keys}) TO STDOUT (FORMAT csv, HEADER)")
        statement = copy_out.format(cols=sql.SQL(", ").join(map(sql.Identifier, archive.columns)), t=archive.ident,
                                    w=where, keys=sql.SQL(", ").join(map(sql.Identifier, archive.key)))
        with gzip.open(path, "wb", compresslevel=6) as out, conn.cursor().copy(statement, (start, end)) as copy:
            for data in copy:
                out.write(data)
    return int(rows), str(checksum)


def _records(path: Path, columns: tuple[str, ...]) -> int:
    """The CSV records of a gzip'd export (a header naming ``columns`` first); quoted newlines count once."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if tuple(header or ()) != columns:
            raise ExportMismatch(f"{path.name}: header {header} is not the archive's columns {list(columns)}")
        return sum(1 for _ in reader)


def export_month(conn, s3, archive: TableInfo, time_column: str, month: MonthExport, tz: ZoneInfo, *,
                 bucket: str, run_id: str) -> MonthExport:
    """Write, upload, read back and check one month; the manifest goes last."""
    start = datetime.strptime(month.month, "%Y-%m").replace(tzinfo=tz)
    end = next_month(start, tz)
    with tempfile.TemporaryDirectory(prefix="archive-export-") as folder:
        written = Path(folder) / "written.csv.gz"
        rows, checksum = _write_month(conn, archive, time_column, start, end, written)
        sha256, size = s3files.sha256_of(written)
        s3files.upload(s3, written, bucket, month.key, metadata={"sha256": sha256, "rows": str(rows)})
        stored = s3files.download(s3, bucket, month.key, Path(folder) / "stored.csv.gz")
        stored_sha, stored_size = s3files.sha256_of(stored)
        if (stored_sha, stored_size) != (sha256, size):
            raise ExportMismatch(f"s3://{bucket}/{month.key}: read back {stored_size} bytes with SHA-256 {stored_sha}, "
                                 f"wrote {size} bytes with {sha256}; no manifest written")
        records = _records(stored, archive.columns)
        if records != rows:
            raise ExportMismatch(f"s3://{bucket}/{month.key}: {records} records, but {rows} rows were exported; "
                                 "no manifest written")
    manifest = {"archive": archive.qualified, "month": month.month, "time_column": time_column,
                "from": start.isoformat(), "to": end.isoformat(), "rows": rows, "checksum": checksum,
                "sha256": sha256, "bytes": size, "format": "csv+gzip, header, ordered by key",
                "exported_at": datetime.now(tz).isoformat(), "run_id": run_id}
    s3.put_object(Bucket=bucket, Key=f"{month.key}.manifest.json", Body=json.dumps(manifest, indent=2).encode(),
                  ContentType="application/json")
    status = "exported" if month.status == "due" else "re-exported"
    return MonthExport(month.month, month.key, rows, status, size, sha256, checksum)
