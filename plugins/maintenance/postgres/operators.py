"""PostgreSQL maintenance operators: thin wiring of the engines to a connection and the ledger.

Each works on one database of the policy (``conn_id``) and its schemas; the trigger
form's ``tables`` field narrows the work to named tables. Mutating operators plan
first, stop there on a dry run, refuse a plan larger than the policy's cap, then
apply each step under the safety budget and record it in the ledger. A step that
fails does not stop the others; the task fails at the end, naming them.
"""

from __future__ import annotations

from contextlib import contextmanager

from maintenance.operator import MaintenanceOperator


class PostgresMaintenanceOperator(MaintenanceOperator):
    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, schemas: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.schemas = schemas

    # -- shared plumbing -------------------------------------------------------------------
    def settings(self):
        from maintenance.policy import load_policy

        policy = load_policy()
        db = next((d for d in policy.postgres.databases if d.conn_id == self.conn_id), None)
        schemas = self.schemas or (db.schemas if db else ["public"])
        return policy, schemas

    @contextmanager
    def connection(self, safety):
        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from maintenance.postgres.safety import apply_session_limits

        hook = PostgresHook(postgres_conn_id=self.conn_id)
        conn = hook.get_conn()
        conn.autocommit = True
        try:
            apply_session_limits(conn, safety)
            yield conn
        finally:
            conn.close()

    @staticmethod
    def only_tables(context, relations):
        """Narrow to the trigger form's ``tables`` (schema.table names), when given."""
        wanted = {t.strip() for t in (context.get("params") or {}).get("tables") or [] if t.strip()}
        if not wanted:
            return relations
        return [r for r in relations if f"{r.schema}.{r.table}" in wanted]

    def analysis(self, conn, context, policy, schemas):
        from maintenance import clock
        from maintenance.postgres import bloat

        relations = bloat.estimate(conn, schemas, policy.postgres.thresholds, clock.now())
        relations = self.only_tables(context, relations)
        bloat.measure(conn, relations, policy.postgres.thresholds.exact_measure_top_n,
                      policy.postgres.thresholds.min_relation_bytes)
        return relations

    def apply(self, conn, ledger, planned, dry_run: bool, policy, steps: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from maintenance.postgres.plan import table

        cap = policy.postgres.safety.max_relations_per_run
        # ANALYZE is light (it blocks no reads or writes): the cap is for the heavy steps.
        acting = [r for r in planned if r.action in steps and r.action != "analyze"]
        self.log.info("Plan for %s:\n%s", self.conn_id, table(planned))
        if len(acting) > cap:
            message = (f"postgres.safety.max_relations_per_run: the plan touches {len(acting)} relations, the cap "
                       f"is {cap}; narrow it with the trigger form's 'tables' field or raise the cap")
            if not dry_run:
                raise AirflowFailException(message)
            self.log.warning("%s", message)
        done, failed = [], []
        for rel in planned:
            with ledger.action("postgres", f"{self.conn_id}:{rel.qualified}", rel.action or "none",
                               plan=rel.as_dict()) as act:
                if dry_run or rel.action not in steps:
                    act.outcome = "planned" if dry_run else "skipped"
                    continue
                try:
                    result = steps[rel.action](conn, rel.schema, rel.name, policy.postgres.safety)
                except Exception as exc:
                    act.outcome, act.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                    failed.append(f"{rel.qualified} ({rel.action}: {exc})")
                    self.log.error("%s %s failed: %s", rel.action, rel.qualified, exc)
                    continue
                act.lock_wait_ms = result.outcome.lock_wait_ms
                act.bytes_affected = result.bytes_before - result.bytes_after
                act.plan = act.plan | {"bytes_before": result.bytes_before, "bytes_after": result.bytes_after,
                                       "verified": result.verified, "attempts": result.outcome.attempts}
                done.append(rel.qualified)
                self.log.info("%s %s: %.2fs, %d -> %d bytes (%s)", rel.action, rel.qualified,
                              result.outcome.seconds, result.bytes_before, result.bytes_after, result.verified)
        if failed:
            raise RuntimeError(f"{len(failed)} step(s) failed: " + "; ".join(failed))
        return {"planned": [r.as_dict() for r in planned], "applied": done}


class BloatAnalysisOperator(PostgresMaintenanceOperator):
    """Estimate bloat of every table and btree index, measure the top candidates, rank them."""

    def run(self, context, ledger, dry_run):
        from maintenance.postgres.plan import Capabilities, plan_debloat, plan_reindex, rank, table

        policy, schemas = self.settings()
        with self.connection(policy.postgres.safety) as conn:
            relations = self.analysis(conn, context, policy, schemas)
        caps = Capabilities(in_window=False, pg_repack=False, vacuum_full_allowed=frozenset())
        plan_reindex(relations, policy.postgres.thresholds)
        plan_debloat(relations, policy.postgres.thresholds, caps)
        ranked = rank(relations)
        self.log.info("Bloat of %s (%s):\n%s", self.conn_id, ", ".join(schemas), table(ranked))
        for rel in ranked[:20]:
            if rel.bloat is not None:
                ledger.record_metrics("postgres", rel.qualified, {"bloat_pct": 100 * rel.bloat,
                                                                  "bytes": rel.bytes})
        refused = sum(1 for r in ranked if r.refused)
        return {"relations": [r.as_dict() for r in ranked], "refused": refused,
                "wasted_bytes": sum(r.wasted_bytes for r in ranked)}

    def describe(self, summary):
        return (f"{len(summary['relations'])} relations analysed, {summary['refused']} refused, "
                f"~{summary['wasted_bytes'] / 2**20:.0f} MB reclaimable")


class PostgresStatisticsOperator(PostgresMaintenanceOperator):
    """Daily: ANALYZE every table, VACUUM (ANALYZE) where dead tuples pass the threshold, refresh views."""

    def run(self, context, ledger, dry_run):
        from maintenance import clock
        from maintenance.postgres import actions, bloat
        from maintenance.postgres.plan import plan_vacuum

        policy, schemas = self.settings()
        with self.connection(policy.postgres.safety) as conn:
            relations = self.only_tables(context, bloat.estimate(conn, schemas, policy.postgres.thresholds,
                                                                 clock.now()))
            tables = [r for r in relations if r.kind == "table"]
            vacuum = {r.qualified for r in plan_vacuum(tables, policy.postgres.thresholds,
                                                       set(policy.postgres.vacuum_analyze_tables))}
            matviews = {f"{s}.{n}" for s, n in actions.materialized_views(conn, schemas)}
            for rel in tables:
                if rel.qualified in matviews:
                    rel.action, rel.why = "refresh_materialized_view", "materialized view"
                elif rel.qualified not in vacuum:
                    rel.action, rel.why = "analyze", "daily statistics"
            summary = self.apply(conn, ledger, tables, dry_run, policy, {
                "analyze": actions.analyze, "vacuum_analyze": actions.vacuum_analyze,
                "refresh_materialized_view": actions.refresh_materialized_view})
        counts = {}
        for rel in tables:
            counts[rel.action] = counts.get(rel.action, 0) + 1
        return summary | {"counts": counts}

    def describe(self, summary):
        return ", ".join(f"{n} {a}" for a, n in sorted(summary["counts"].items()))


class ReindexOperator(PostgresMaintenanceOperator):
    """Rebuild bloated btree indexes concurrently; drop invalid leftovers of failed rebuilds."""

    def run(self, context, ledger, dry_run):
        from maintenance.postgres import actions
        from maintenance.postgres.plan import plan_reindex, rank

        policy, schemas = self.settings()
        with self.connection(policy.postgres.safety) as conn:
            planned = rank(plan_reindex(self.analysis(conn, context, policy, schemas), policy.postgres.thresholds))
            summary = self.apply(conn, ledger, planned, dry_run, policy, {
                "reindex_concurrently": actions.reindex_concurrently, "drop_invalid": actions.drop_invalid_index})
        return summary

    def describe(self, summary):
        return f"{len(summary['applied'])} of {len(summary['planned'])} index steps applied"


class DebloatOperator(PostgresMaintenanceOperator):
    """Monthly: rebuild bloated tables online with pg_repack, else VACUUM FULL inside the window only."""

    def run(self, context, ledger, dry_run):
        from functools import partial

        from maintenance import clock
        from maintenance.calendar import MaintenanceCalendar
        from maintenance.postgres import actions
        from maintenance.postgres.conninfo import from_airflow
        from maintenance.postgres.plan import Capabilities, plan_debloat, rank

        policy, schemas = self.settings()
        with self.connection(policy.postgres.safety) as conn:
            caps = Capabilities(
                in_window=MaintenanceCalendar.from_policy(policy).window_at(clock.now()) is not None,
                pg_repack=actions.pg_repack_available(conn),
                vacuum_full_allowed=frozenset(policy.postgres.vacuum_full_allowed))
            planned = rank(plan_debloat(self.analysis(conn, context, policy, schemas),
                                        policy.postgres.thresholds, caps))
            repack = partial(actions.repack, conninfo=from_airflow(self.conn_id))
            summary = self.apply(conn, ledger, planned, dry_run, policy, {
                "repack": repack, "vacuum_full": actions.vacuum_full})
        return summary | {"pg_repack": caps.pg_repack, "in_window": caps.in_window}

    def describe(self, summary):
        return f"{len(summary['applied'])} of {len(summary['planned'])} tables rebuilt"


class PostgresReviewOperator(PostgresMaintenanceOperator):
    """Weekly review: unused, duplicate and invalid indexes, slow queries, wraparound, largest tables."""

    def run(self, context, ledger, dry_run):
        from maintenance.postgres import review

        policy, schemas = self.settings()
        t = policy.postgres.thresholds
        with self.connection(policy.postgres.safety) as conn:
            report = {
                "unused_indexes": review.unused_indexes(conn, schemas),
                "duplicate_indexes": review.duplicate_indexes(conn, schemas),
                "invalid_indexes": review.invalid_indexes(conn, schemas),
                "slow_queries": review.slow_queries(conn, t.slow_query_mean_ms),
                "wraparound": review.wraparound(conn),
                "largest_tables": review.largest_tables(conn, schemas),
            }
        for item in report["unused_indexes"]:
            ledger.record_finding("unused_index", item["target"], "info", item["why"], item)
        for item in report["duplicate_indexes"]:
            ledger.record_finding("duplicate_index", item["target"], "warning",
                                  f"same definition as {', '.join(item['duplicates'][1:])}", item)
        for item in report["invalid_indexes"]:
            ledger.record_finding("invalid_index", item["target"], "warning", "invalid: drop or rebuild it", item)
        if report["slow_queries"] is None:
            ledger.record_finding("slow_queries", self.conn_id, "info",
                                  "pg_stat_statements is not installed: slow queries cannot be reviewed", {})
        for item in report["slow_queries"] or []:
            ledger.record_finding("slow_query", item["target"], "warning",
                                  f"mean {item['mean_ms']} ms over {item['calls']} calls", item)
        for item in report["wraparound"]:
            severity = "critical" if item["headroom_pct"] < 25 else "warning" if item["headroom_pct"] < 50 else None
            if severity:
                ledger.record_finding("xid_wraparound", item["target"], severity,
                                      f"{item['headroom_pct']:.0f}% of transaction ids left before wraparound", item)
        return report

    def describe(self, summary):
        return (f"{len(summary['unused_indexes'])} unused, {len(summary['duplicate_indexes'])} duplicate, "
                f"{len(summary['invalid_indexes'])} invalid indexes; "
                f"{len(summary['slow_queries'] or [])} slow queries")
