"""Bloat estimate: speed over 10,000 tables, accuracy against pgstattuple.

Starts its own PostgreSQL cluster (devtools.servers), then:

1. speed: 10,000 small tables, each with a primary key and one more index, analyzed;
   times ``bloat.estimate`` over all of them against the baseline it replaces,
   exact ``pgstattuple_approx``/``pgstatindex`` over the same relations;
2. accuracy: tables bloated on purpose in different ways (random deletes, updates,
   wide and narrow rows, nulls), statistics fresh; the estimate against
   ``pgstattuple_approx`` for each: mean absolute error and the worst case, in
   percentage points, and how many it refused.

    .venv/bin/python -m bench.bloat_estimate [tables]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime

import psycopg
from maintenance.policy import load_policy
from maintenance.postgres import bloat
from psycopg import sql

from bench.scratch import scratch_postgres

ACCURACY_CASES = {
    "narrow_delete_30": ("id bigint PRIMARY KEY, v integer", "g, g", "DELETE FROM {t} WHERE id % 10 < 3"),
    "narrow_delete_70": ("id bigint PRIMARY KEY, v integer", "g, g", "DELETE FROM {t} WHERE id % 10 < 7"),
    "wide_delete_50": ("id bigint PRIMARY KEY, a text, b text", "g, md5(g::text) || md5(g::text), md5(g::text)",
                       "DELETE FROM {t} WHERE id % 2 = 0"),
    "update_all_once": ("id bigint PRIMARY KEY, v integer, note text", "g, g, 'note ' || g",
                        "UPDATE {t} SET v = v + 1"),
    "update_half_twice": ("id bigint PRIMARY KEY, v integer", "g, g",
                          "UPDATE {t} SET v = v + 1 WHERE id % 2 = 0; UPDATE {t} SET v = v + 1 WHERE id % 2 = 0"),
    "nulls_delete_40": ("id bigint PRIMARY KEY, a integer, b text, c timestamptz",
                        "g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END, "
                        "CASE WHEN g % 2 = 0 THEN NULL ELSE 'x' END, now()",
                        "DELETE FROM {t} WHERE id % 5 < 2"),
    "random_delete_20": ("id bigint PRIMARY KEY, v double precision", "g, random()",
                         "DELETE FROM {t} WHERE v < 0.2"),
    "packed": ("id bigint PRIMARY KEY, v integer", "g, g", None),
    "jsonb_delete_50": ("id bigint PRIMARY KEY, doc jsonb", "g, jsonb_build_object('k', g, 's', md5(g::text))",
                        "DELETE FROM {t} WHERE id % 2 = 1"),
    "timestamps_delete_60": ("id bigint PRIMARY KEY, at timestamptz, who integer", "g, now() - g * interval '1 s', g",
                             "DELETE FROM {t} WHERE id % 5 < 3"),
}


def speed(conn, tables: int) -> dict:
    conn.execute("CREATE SCHEMA IF NOT EXISTS many")
    have = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'many'").fetchone()[0]
    if have < tables:
        print(f"creating {tables} tables ...", flush=True)
        conn.execute(sql.SQL("""
            DO $$ BEGIN FOR i IN {}..{} LOOP
              EXECUTE format('CREATE TABLE many.t%s (id bigint PRIMARY KEY, v integer, note text)', i);
              EXECUTE format('INSERT INTO many.t%s SELECT g, g, ''n'' FROM generate_series(1, 20) g', i);
              EXECUTE format('CREATE INDEX ON many.t%s (v)', i);
            END LOOP; END $$""").format(sql.Literal(have + 1), sql.Literal(tables)))
        conn.execute("ANALYZE")
    thresholds = load_policy().postgres.thresholds
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        rels = bloat.estimate(conn, ["many"], thresholds, datetime.now(UTC))
        runs.append(time.perf_counter() - started)
    started = time.perf_counter()
    bloat.measure(conn, rels, len(rels), 0)
    exact = time.perf_counter() - started
    return {"relations": len(rels), "estimate_s": statistics.median(runs), "exact_s": exact}


def accuracy(conn) -> dict:
    errors, refused, rows = [], [], []
    for name, (columns, values, churn) in ACCURACY_CASES.items():
        table = f"acc_{name}"
        ident = sql.Identifier(table)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(columns)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT {} FROM generate_series(1, 200000) g").format(
            ident, sql.SQL(values)))
        if churn:
            for statement in churn.split(";"):
                conn.execute(sql.SQL(statement.replace("{t}", "{}")).format(ident))
        conn.execute(sql.SQL("VACUUM {}").format(ident))
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute(sql.SQL("ANALYZE {}").format(ident))
    rels = [r for r in bloat.estimate(conn, ["public"], load_policy().postgres.thresholds, datetime.now(UTC))
            if r.kind == "table" and r.name.startswith("acc_")]
    bloat.measure(conn, rels, len(rels), 0)
    for rel in sorted(rels, key=lambda r: r.name):
        if rel.refused:
            refused.append((rel.name, rel.refused))
            continue
        error = abs(rel.estimated - rel.measured) * 100
        errors.append(error)
        rows.append((rel.name, rel.estimated * 100, rel.measured * 100, error))
    return {"rows": rows, "mae": statistics.mean(errors), "worst": max(errors), "refused": refused}


def main(tables: int = 10_000) -> None:
    _, server = scratch_postgres("bloat", settings={"max_locks_per_transaction": "1024"})
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            s = speed(conn, tables)
            print(f"estimate over {s['relations']} relations: {s['estimate_s']:.2f}s (median of 3); "
                  f"exact pgstattuple baseline: {s['exact_s']:.2f}s; ratio {s['exact_s'] / s['estimate_s']:.1f}x")
            a = accuracy(conn)
            print(f"{'table':28} {'estimate %':>10} {'pgstattuple %':>13} {'error pp':>9}")
            for name, est, meas, err in a["rows"]:
                print(f"{name:28} {est:10.1f} {meas:13.1f} {err:9.1f}")
            print(f"mean absolute error {a['mae']:.1f} pp, worst {a['worst']:.1f} pp, refused {len(a['refused'])}")
            for name, why in a["refused"]:
                print(f"  refused {name}: {why}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
