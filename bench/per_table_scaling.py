"""Per-table work under Airflow's real scheduler: the daily statistics of 2,000 tables.

Starts its own PostgreSQL (the platform's database and Airflow's metadata database) and Redis
(the Celery broker), creates 2,000 small tables in ``public`` and a sample of them in
``sample``, then measures, same data, same run:

1. the floor: the same ANALYZE statements, back to back in one session;
2. batched (the project's way, ``postgres.batching``): ``plan_db_statistics`` then the mapped
   ``db_statistics`` steps, cheap tables 500 to a task instance, under the LocalExecutor and
   under the CeleryExecutor with two workers (devtools.topology);
3. Airflow's own cost: the same two tasks over a schema with no table (run first, it also takes
   the stack's first-task cold start off the others);
4. one task instance per table, under the LocalExecutor, over the sample schema (a run of 2,000
   would take hours in the database's one-slot pool; its per-task cost is what is measured,
   and 2,000 tables are extrapolated from it).

Each Airflow figure is the DAG run's wall time, from the run's start to its end, read from the
metadata database. Prints the figures and the ratios to the floor.

    PYTHONPATH=plugins:. .venv/bin/python -m bench.per_table_scaling [tables] [rows] [sample]

``rows`` per table (50 by default: ANALYZE then costs next to nothing and Airflow's own cost is
all there is; 10,000: ANALYZE reads every row, as on a small partition); ``sample`` 0 skips the
one-task-per-table run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]


def create_tables(dsn: str, schema: str, count: int, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for n in range(count):
            name = sql.Identifier(schema, f"t{n:04}")
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text)").format(name))
            conn.execute(sql.SQL("INSERT INTO {} SELECT g, md5(g::text) FROM generate_series(1, %s) g").format(name),
                         (rows,))
        conn.execute("VACUUM")  # no dead tuples, visibility map set: the plan is ANALYZE only


def floor_seconds(dsn: str, schema: str, count: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for n in range(count):
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, f"t{n:04}")))
        return time.perf_counter() - started


def policy_file(folder: Path) -> Path:
    policy = yaml.safe_load((ROOT / "include/maintenance_policy.yaml").read_text())
    policy["postgres"]["vacuum_analyze_tables"] = []
    policy["postgres"]["databases"] = [{"conn_id": "platform_db", "schemas": ["public", "sample"],
                                        "pool": "pg_platform_db"}]
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def run_once(topology, dag_id: str, run_id: str) -> dict:
    topology.cli("dags", "trigger", dag_id, "--run-id", run_id)
    state = topology.wait_run(dag_id, run_id, timeout=3 * 3600)
    (seconds,) = topology.query("SELECT extract(epoch FROM end_date - start_date) FROM dag_run "
                                "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))[0]
    tis = topology.query("SELECT task_id, hostname, extract(epoch FROM end_date - start_date) FROM task_instance "
                         "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
    return {"state": state, "seconds": float(seconds), "task_instances": len(tis),
            "workers": sorted({h for _, h, _ in tis if h})}


def under(executor: str, work: Path, pg, redis, policy: Path, runs: list[tuple[str, str]]) -> dict:
    from devtools import topology

    meta = f"airflow_{executor.lower()}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(meta)))
    stack = topology.start(work / meta, dags_folder=ROOT / "bench" / "dags",
                           dag_ids=["statistics_empty", "statistics_batched", "statistics_one_per_table"],
                           metadata_dsn=pg.dsn(meta),
                           executor=executor, broker_url=redis.url(1) if executor == "CeleryExecutor" else None,
                           extra_env={"MAINTENANCE_POLICY_FILE": str(policy), "AIRFLOW__CORE__MAX_MAP_LENGTH": "4096",
                                      "AIRFLOW_CONN_PLATFORM_DB": pg.conn_json("platform")})
    try:
        return {dag_id: run_once(stack, dag_id, run_id) for dag_id, run_id in runs}
    finally:
        stack.stop()


def main(tables: int = 2000, rows: int = 50, sample: int = 100) -> dict:
    from devtools import servers

    work = Path(tempfile.mkdtemp(prefix="bench-per-table-"))
    os.chmod(work, 0o755)
    pg = servers.start_postgres(work / "pg", settings={"max_connections": "100"})
    redis = servers.start_redis(work / "redis")
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE platform")
        dsn = pg.dsn("platform")
        create_tables(dsn, "public", tables, rows)
        create_tables(dsn, "sample", max(sample, 1), rows)
        create_tables(dsn, "empty", 0, rows)
        policy = policy_file(work)
        floor = min(floor_seconds(dsn, "public", tables) for _ in range(3))
        floor_sample = min(floor_seconds(dsn, "sample", sample) for _ in range(3))
        print(f"floor: {tables} ANALYZEs of {rows:,}-row tables back to back in one session: {floor:.2f} s "
              f"({1000 * floor / tables:.2f} ms each)")
        # The empty run first: it also takes the first task's cold start (imports from a cold page
        # cache, several seconds) off the runs measured after it.
        local = under("LocalExecutor", work, pg, redis, policy, [("statistics_empty", "empty"),
                                                                 ("statistics_batched", "batched")]
                      + ([("statistics_one_per_table", "one_per_table")] if sample else []))
        celery = under("CeleryExecutor", work, pg, redis, policy, [("statistics_empty", "empty"),
                                                                   ("statistics_batched", "batched")])
        batched, on_celery = local["statistics_batched"], celery["statistics_batched"]
        empty_local, empty_celery = local["statistics_empty"]["seconds"], celery["statistics_empty"]["seconds"]
        print(f"Airflow's own cost, the same two tasks over no table: LocalExecutor {empty_local:.1f} s, "
              f"CeleryExecutor {empty_celery:.1f} s")
        one = local.get("statistics_one_per_table", {"seconds": floor_sample, "task_instances": 1, "state": "-"})
        per_task = (one["seconds"] - floor_sample) / one["task_instances"]
        extrapolated = per_task * (tables + 2) + floor
        results = {"tables": tables, "rows": rows, "sample": sample, "floor_s": round(floor, 2),
                   "empty_local": local["statistics_empty"], "empty_celery": celery["statistics_empty"],
                   "batched_local": batched, "batched_celery": on_celery, "one_per_table_local_sample": one,
                   "per_task_overhead_s": round(per_task, 2), "one_per_table_2000_extrapolated_s": round(extrapolated)}
        print(f"batched, LocalExecutor: {batched['seconds']:.1f} s, {batched['task_instances']} task instances, "
              f"{batched['state']}; ratio to the floor {batched['seconds'] / floor:.1f}")
        print(f"batched, CeleryExecutor (2 workers): {on_celery['seconds']:.1f} s, "
              f"{on_celery['task_instances']} task instances on {', '.join(on_celery['workers'])}, "
              f"{on_celery['state']}; ratio to the floor {on_celery['seconds'] / floor:.1f}")
        if sample:
            print(f"one task instance per table, LocalExecutor, {sample} tables: {one['seconds']:.1f} s, "
                  f"{one['task_instances']} task instances, {one['state']}: {per_task:.2f} s of Airflow per task")
            print(f"one task instance per table, {tables} tables, extrapolated: {extrapolated / 60:.0f} min; "
                  f"ratio to the floor {extrapolated / floor:.0f}")
        print(json.dumps(results))
        return results
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
