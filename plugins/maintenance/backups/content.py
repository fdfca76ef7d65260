"""What a database holds, as per-table row counts and content checksums.

The checksum of a table is the sum, over its rows, of ``hashtextextended`` of the
row's text form. A sum does not depend on row order (a restore writes rows in any
order) and, unlike XOR, two identical rows do not cancel out. ``hashtextextended``
is the hash PostgreSQL's hash partitioning relies on, so it keeps its values
across versions, and it is several times cheaper than md5. A row's text form
depends on session settings, so every session that fingerprints sets the same ones.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from psycopg import sql

METHOD = "count(*), sum(hashtextextended(row::text, 0)) per table"

# Settings that fix how values print: the same data gives the same text on any server.
SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)

# User tables whose rows pg_dump writes: ordinary tables (partitions included, as leaves),
# not temporary ones, not those an extension owns (their data is the extension's).
_TABLES = """
SELECT n.nspname, c.relname, pg_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 3 DESC, 1, 2
"""


def prepare(conn) -> None:
    for statement in SESSION_SETTINGS:
        conn.execute(statement)


def tables(conn) -> list[tuple[str, str, int]]:
    """(schema, table, bytes) of every table the dump holds rows of, largest first."""
    return [(s, t, b) for s, t, b in conn.execute(_TABLES).fetchall()]


def fingerprint(conn, schema: str, table: str) -> dict:
    row = conn.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW(r.*)::text, 0)), 0)::text FROM ONLY {} AS r"
    ).format(sql.Identifier(schema, table))).fetchone()
    return {"rows": int(row[0]), "checksum": row[1]}


def fingerprint_all(connect: Callable[[], object], relations: list[tuple[str, str, int]], jobs: int) -> dict:
    """Fingerprint ``relations`` over ``jobs`` sessions opened by ``connect``, largest tables first.

    ``connect`` returns a ready connection (settings applied, snapshot imported when needed).
    The result maps (schema, table) to rows and checksum.
    """
    results: dict[tuple[str, str], dict] = {}
    queue = list(relations)

    def worker() -> None:
        conn = connect()
        try:
            while queue:
                try:
                    schema, table, _ = queue.pop(0)
                except IndexError:
                    return
                results[(schema, table)] = fingerprint(conn, schema, table)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(worker) for _ in range(max(1, min(jobs, len(queue))))]:
            future.result()
    return dict(sorted(results.items()))


def to_manifest(fingerprints: dict) -> list[dict]:
    return [{"schema": s, "table": t, **v} for (s, t), v in sorted(fingerprints.items())]


def from_manifest(entries: list[dict]) -> dict:
    return {(e["schema"], e["table"]): {"rows": e["rows"], "checksum": e["checksum"]} for e in entries}


def compare(expected: dict, actual: dict) -> list[str]:
    """What differs between a manifest's tables and a restored copy's, one line per problem."""
    problems = []
    for key, want in expected.items():
        name = qualified(*key)
        got = actual.get(key)
        if got is None:
            problems.append(f"table {name}: missing from the restored copy")
        elif got["rows"] != want["rows"]:
            problems.append(f"table {name}: {got['rows']} rows restored, the manifest says {want['rows']}")
        elif got["checksum"] != want["checksum"]:
            problems.append(f"table {name}: content checksum differs from the manifest ({want['rows']} rows)")
    for key in sorted(set(actual) - set(expected)):
        problems.append(f"table {qualified(*key)}: in the restored copy but not in the manifest")
    return problems


def qualified(schema: str, table: str) -> str:
    return f"{schema}.{table}"
