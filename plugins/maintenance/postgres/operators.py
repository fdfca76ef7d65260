"""PostgreSQL maintenance operators: thin wiring of the engines to a connection and the ledger.

Each works on one database of the policy (``conn_id``) and its schemas; the trigger
form's ``tables`` field narrows the work to named tables. Mutating work is two tasks:
an operator that plans (stops there on a dry run, refuses a plan larger than the
policy's cap) and pushes its steps, then ``PostgresStepOperator`` mapped over them, one
task instance per table or index in the database's pool, applying each step under the
safety budget and recording it in the ledger.
"""

from __future__ import annotations

from maintenance.ledger import relation_target
from maintenance.operator import MaintenanceOperator


class PostgresMaintenanceOperator(MaintenanceOperator):
    """Work on one PostgreSQL database of the policy.

    :param conn_id: the Airflow connection of the database, one of ``postgres.databases``.
    :param schemas: the schemas to work on; default: the database's ``schemas`` in the policy.
    """

    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, schemas: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.schemas = schemas

    # -- shared plumbing -------------------------------------------------------------------
    def settings(self, policy):
        """The policy and this database's schemas (the operator's own, else the policy's)."""
        return policy, self.schemas or policy.postgres.database(self.conn_id).schemas

    def connection(self, safety):
        from maintenance.postgres.safety import limited_session

        return limited_session(self.conn_id, safety)

    def wanted_tables(self, conn, form, schemas) -> set[str] | None:
        """The trigger form's ``tables`` for this database as ``schema.table``; None: all of them.
        A name that is not a table fails the task here, naming it (maintenance.postgres.names)."""
        from maintenance.postgres import names

        wanted = names.resolve(conn, schemas, form.tables, conn_id=self.conn_id)
        if wanted is not None:
            self.log.info("Narrowed by the trigger form to: %s", ", ".join(sorted(wanted)) or "none on this database")
        return wanted

    def only_tables(self, conn, form, schemas, relations):
        """Narrow to the trigger form's ``tables``, when given."""
        wanted = self.wanted_tables(conn, form, schemas)
        return relations if wanted is None else [r for r in relations if f"{r.schema}.{r.table}" in wanted]

    def analysis(self, conn, form, policy, schemas):
        from maintenance import clock
        from maintenance.postgres import bloat

        relations = bloat.estimate(conn, schemas, policy.postgres.thresholds, clock.now())
        relations = self.only_tables(conn, form, schemas, relations)
        bloat.measure(conn, relations, policy.postgres.thresholds.exact_measure_top_n,
                      policy.postgres.thresholds.min_relation_bytes)
        return relations


def window_open(policy) -> bool:
    """Is the planned window open now? Asked when a de-bloat is planned and again when a
    VACUUM FULL step runs."""
    from maintenance import clock
    from maintenance.calendar import MaintenanceCalendar

    return MaintenanceCalendar.from_policy(policy).window_at(clock.now()) is not None


CHEAP_ACTIONS = ("analyze", "vacuum_analyze")  # batched when cheap; see PostgresBatching


def cheap(rel, batching) -> bool:
    """An ANALYZE, or a VACUUM (ANALYZE) of a small table: milliseconds, no lock that blocks."""
    return rel.action == "analyze" or (rel.action == "vacuum_analyze" and rel.bytes < batching.small_vacuum_bytes)


def batch_label(action: str, chunk: list, first: int, total: int) -> str:
    """What the grid shows for a batched step: its tables when few, else which of them."""
    names = [r.qualified for r in chunk]
    if len(names) <= 3:
        return f"{action} {', '.join(names)}"
    if len(names) == total:
        return f"{action} {total} tables ({names[0]} … {names[-1]})"
    return f"{action} tables {first + 1}-{first + len(names)} of {total} ({names[0]} … {names[-1]})"


def steps_of(relations, batching) -> list[dict]:
    """The plan as steps, one task instance each: every heavy relation on its own (its log, its
    retries, its state in the grid); the cheap ones together, ``batching.tables_per_step`` to a
    step, in the plan's order."""
    steps = [{"label": f"{r.action} {r.qualified}", "action": r.action, "relations": [r.as_dict()]}
             for r in relations if not cheap(r, batching)]
    for action in CHEAP_ACTIONS:
        batch = [r for r in relations if r.action == action and cheap(r, batching)]
        for first in range(0, len(batch), batching.tables_per_step):
            chunk = batch[first:first + batching.tables_per_step]
            steps.append({"label": batch_label(action, chunk, first, len(batch)), "action": action,
                          "relations": [r.as_dict() for r in chunk]})
    return steps


class PostgresPlanningOperator(PostgresMaintenanceOperator):
    """Plans mutating work and returns its steps, for ``PostgresStepOperator`` mapped over them.

    :param tables_per_step: cheap steps per task instance; default: the policy's
        ``postgres.batching.tables_per_step``.
    """

    steps: list[dict] = []

    def __init__(self, *, tables_per_step: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if tables_per_step is not None and tables_per_step < 1:
            raise ValueError(f"tables_per_step: {tables_per_step} is not a positive number of tables")
        self.tables_per_step = tables_per_step

    def batching(self, policy):
        batching = policy.postgres.batching
        if self.tables_per_step is None:
            return batching
        return batching.model_copy(update={"tables_per_step": self.tables_per_step})

    def plan_steps(self, ledger, planned, dry_run: bool, policy, actions: set[str]) -> dict:
        """Log the plan, hold it to the cap, and cut it into steps for the mapped step tasks.

        One step per heavy relation, so each has its own task instance: its log, its retries,
        its state in the grid. The cheap ones (ANALYZE, small VACUUMs) go together, a batch to a
        step: a task process per ANALYZE would cost more than the ANALYZE (docs/benchmarks.md).
        A dry run stops here with no step, so the step tasks have nothing to run."""
        from airflow.sdk.exceptions import AirflowFailException
        from maintenance.postgres.plan import table

        cap = policy.postgres.safety.max_relations_per_run
        # ANALYZE is light (it blocks no reads or writes): the cap is for the heavy steps.
        acting = [r for r in planned if r.action in actions and r.action != "analyze"]
        self.log.info("Plan for %s:\n%s", self.conn_id, table(planned))
        if len(acting) > cap:
            message = (f"postgres.safety.max_relations_per_run: the plan touches {len(acting)} relations, the cap "
                       f"is {cap}; narrow it with the trigger form's 'tables' field or raise the cap")
            if not dry_run:
                raise AirflowFailException(message)
            self.log.warning("%s", message)
        for rel in planned:
            if dry_run or rel.action not in actions:
                with ledger.action("postgres", relation_target(self.conn_id, rel.qualified), rel.action or "none",
                                   plan=rel.as_dict()) as act:
                    act.outcome = "planned" if dry_run else "skipped"
        self.steps = [] if dry_run else steps_of([r for r in planned if r.action in actions], self.batching(policy))
        return {"planned": [r.as_dict() for r in planned], "steps": len(self.steps)}

    def returns(self, summary: dict) -> list[dict]:
        return self.steps


class PostgresStepOperator(PostgresMaintenanceOperator):
    """One planned step, as one instance of a mapped task: its action on its relations, each
    under the safety budget, verified and recorded in the ledger. A relation that fails does
    not stop the others; the step fails at the end, naming them.

    What makes a step safe is checked again here, not only when it was planned: a VACUUM FULL
    (an exclusive lock) runs only inside the window and only for a table the policy allows. A
    VACUUM FULL whose turn comes after the window has closed (it waited for the load to drop, or
    it is a retry) is skipped, the table left as it was for the next window to plan again: that
    is the policy at work, not a fault to page anyone for.

    :param step: one of the steps its planning task returned: ``label``, ``action`` (declared in
        maintenance.actions) and ``relations``.
    """

    def __init__(self, *, step: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.step = step

    def run(self, run):
        from maintenance.actions import heavy
        from maintenance.postgres.bloat import Relation

        policy, _ = self.settings(run.policy)
        action = self.step["action"]
        relations = [Relation(**{k: v for k, v in d.items() if k != "bloat"}) for d in self.step["relations"]]
        if action == "vacuum_full" and not run.dry_run and not window_open(policy):
            from airflow.sdk.exceptions import AirflowSkipException

            names = ", ".join(rel.qualified for rel in relations)
            raise AirflowSkipException(f"the planned window is over: VACUUM FULL of {names} not started, "
                                       "left as it was for the next window to plan again")
        # A heavy step (maintenance.actions: a rebuild, a rewrite) waits while the platform is busy:
        # the gate in front of the DAG looked at the load only once, maybe hours before its turn.
        if heavy("postgres", action) and not run.dry_run:
            self.wait_while_busy(run.context, policy.decision.load)
        from maintenance.ledger import holder_name
        from maintenance.postgres.target_lock import TargetBusy, target_lock

        done, failed, busy, results = [], [], [], []
        with self.connection(policy.postgres.safety) as conn:
            apply = self.action(action, policy)
            for rel in relations:
                target = relation_target(self.conn_id, rel.qualified)
                with run.step("postgres", target, action, plan=rel.as_dict()) as act:
                    if run.dry_run:
                        act.outcome = "planned"
                        continue
                    try:
                        with target_lock(conn, target, holder=holder_name(run.ledger.key),
                                         wait_s=policy.postgres.safety.target_lock_wait_s):
                            result = apply(conn, rel.schema, rel.name, policy.postgres.safety)
                    except TargetBusy as exc:  # another actor has the table: leave it, say who
                        act.outcome, act.error = "skipped", str(exc)
                        busy.append(str(exc))
                        self.log.warning("%s", exc)
                        continue
                    except Exception as exc:
                        act.outcome, act.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                        failed.append(f"{rel.qualified} ({action}: {exc})")
                        self.log.error("%s %s failed: %s", action, rel.qualified, exc)
                        continue
                    act.lock_wait_ms = result.outcome.lock_wait_ms
                    act.bytes_affected = result.bytes_before - result.bytes_after
                    act.plan = act.plan | {"bytes_before": result.bytes_before, "bytes_after": result.bytes_after,
                                           "verified": result.verified, "attempts": result.outcome.attempts}
                    done.append(rel.qualified)
                    results.append({"relation": rel.qualified, "seconds": round(result.outcome.seconds, 3),
                                    "bytes_before": result.bytes_before, "bytes_after": result.bytes_after,
                                    "verified": result.verified})
                    self.log.info("%s %s: %.2fs, %d -> %d bytes (%s)", action, rel.qualified,
                                  result.outcome.seconds, result.bytes_before, result.bytes_after, result.verified)
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(relations)} relation(s) failed: " + "; ".join(failed))
        if busy and not done and not run.dry_run:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("; ".join(busy))
        return {"action": action, "applied": done, "results": results, "busy": busy}

    def wait_while_busy(self, context, load) -> None:
        """While the platform is busy, wait as the gate does: try again after the policy's
        ``recheck_after_minutes`` (in reschedule mode, holding no worker slot), and once
        ``give_up_after_minutes`` have passed since the first wait, skip the step for this run."""
        from datetime import UTC, datetime, timedelta

        from airflow.sdk.exceptions import AirflowSkipException
        from maintenance.operator import TryLater
        from maintenance.probes import busy_reason

        reason = busy_reason(load)
        if not reason:
            return
        now = datetime.now(UTC)  # a real wait, measured as the scheduler measures it
        first = context["ti"].get_first_reschedule_date(context) or now
        waited = timedelta(seconds=int((now - first).total_seconds()))
        if waited >= timedelta(minutes=load.give_up_after_minutes):
            raise AirflowSkipException(f"platform busy: {reason}; waited {waited} (h:mm:ss), skipped for this run")
        again = now + timedelta(minutes=load.recheck_after_minutes)
        self.log.info("Platform busy: %s; %s waits until %s", reason, self.step["label"], again.isoformat())
        raise TryLater(again, f"platform busy: {reason}; waiting until {again.isoformat()}")

    def action(self, action: str, policy):
        from functools import partial

        from maintenance.postgres import actions
        from maintenance.postgres.conninfo import from_airflow

        if action == "repack":
            return partial(actions.repack, conninfo=from_airflow(self.conn_id))
        if action == "vacuum_full":
            return partial(self.vacuum_full_in_window, policy=policy)
        return {"analyze": actions.analyze, "vacuum_analyze": actions.vacuum_analyze,
                "refresh_materialized_view": actions.refresh_materialized_view,
                "reindex_concurrently": actions.reindex_concurrently,
                "drop_invalid": actions.drop_invalid_index}[action]

    @staticmethod
    def vacuum_full_in_window(conn, schema, name, safety, *, policy):
        from maintenance.postgres import actions

        qualified = f"{schema}.{name}"
        if qualified not in policy.postgres.vacuum_full_allowed:
            raise RuntimeError(f"VACUUM FULL of {qualified} refused: not in postgres.vacuum_full_allowed")
        if not window_open(policy):
            raise RuntimeError(f"VACUUM FULL of {qualified} refused: the planned window is over")
        return actions.vacuum_full(conn, schema, name, safety)

    def describe(self, summary):
        if not summary.get("results"):
            return ""
        total = sum(r["seconds"] for r in summary["results"])
        before = sum(r["bytes_before"] for r in summary["results"])
        after = sum(r["bytes_after"] for r in summary["results"])
        return f"{self.step['label']}: {total:.1f}s, {before / 2**20:.1f} -> {after / 2**20:.1f} MB"


class BloatAnalysisOperator(PostgresMaintenanceOperator):
    """Estimate bloat of every table and btree index, measure the top candidates, rank them."""

    def run(self, run):
        from maintenance.postgres.plan import Capabilities, plan_debloat, plan_reindex, rank, table

        policy, schemas = self.settings(run.policy)
        with self.connection(policy.postgres.safety) as conn:
            relations = self.analysis(conn, run.form, policy, schemas)
        caps = Capabilities(in_window=False, pg_repack=False, vacuum_full_allowed=frozenset())
        plan_reindex(relations, policy.postgres.thresholds)
        plan_debloat(relations, policy.postgres.thresholds, caps)
        ranked = rank(relations)
        self.log.info("Bloat of %s (%s):\n%s", self.conn_id, ", ".join(schemas), table(ranked))
        for rel in ranked[:20]:
            if rel.bloat is not None:
                run.ledger.record_metrics("postgres", relation_target(self.conn_id, rel.qualified),
                                          {"bloat_pct": 100 * rel.bloat, "bytes": rel.bytes})
        refused = sum(1 for r in ranked if r.refused)
        return {"relations": [r.as_dict() for r in ranked], "refused": refused,
                "wasted_bytes": sum(r.wasted_bytes for r in ranked)}

    def describe(self, summary):
        return (f"{len(summary['relations'])} relations analysed, {summary['refused']} refused, "
                f"~{summary['wasted_bytes'] / 2**20:.0f} MB reclaimable")


class PostgresStatisticsOperator(PostgresPlanningOperator):
    """Daily: plan ANALYZE of every table, VACUUM (ANALYZE) where dead tuples pass the threshold,
    refresh of materialized views; ``PostgresStepOperator`` applies the steps."""

    def run(self, run):
        from maintenance import clock
        from maintenance.postgres import actions, bloat
        from maintenance.postgres.plan import plan_vacuum

        policy, schemas = self.settings(run.policy)
        with self.connection(policy.postgres.safety) as conn:
            relations = self.only_tables(conn, run.form, schemas,
                                         bloat.estimate(conn, schemas, policy.postgres.thresholds, clock.now()))
            tables = [r for r in relations if r.kind == "table"]
            vacuum = {r.qualified for r in plan_vacuum(tables, policy.postgres.thresholds,
                                                       set(policy.postgres.vacuum_analyze_tables))}
            matviews = {f"{s}.{n}" for s, n in actions.materialized_views(conn, schemas)}
            for rel in tables:
                if rel.qualified in matviews:
                    rel.action, rel.why = "refresh_materialized_view", "materialized view"
                elif rel.qualified not in vacuum:
                    rel.action, rel.why = "analyze", "daily statistics"
            summary = self.plan_steps(run.ledger, tables, run.dry_run, policy,
                                      {"analyze", "vacuum_analyze", "refresh_materialized_view"})
        counts = {}
        for rel in tables:
            counts[rel.action] = counts.get(rel.action, 0) + 1
        return summary | {"counts": counts}

    def describe(self, summary):
        return ", ".join(f"{n} {a}" for a, n in sorted(summary["counts"].items())) + f"; {summary['steps']} step(s)"


class ReindexOperator(PostgresPlanningOperator):
    """Plan the concurrent rebuild of bloated btree indexes and the drop of invalid leftovers of
    failed rebuilds; ``PostgresStepOperator`` applies the steps."""

    def run(self, run):
        from maintenance.postgres.plan import plan_reindex, rank

        policy, schemas = self.settings(run.policy)
        with self.connection(policy.postgres.safety) as conn:
            planned = rank(plan_reindex(self.analysis(conn, run.form, policy, schemas), policy.postgres.thresholds))
            return self.plan_steps(run.ledger, planned, run.dry_run, policy, {"reindex_concurrently", "drop_invalid"})

    def describe(self, summary):
        return f"{summary['steps']} index step(s) of {len(summary['planned'])} planned"


class DebloatOperator(PostgresPlanningOperator):
    """Monthly: plan the rebuild of bloated tables, online with pg_repack, else VACUUM FULL inside
    the window only; ``PostgresStepOperator`` applies the steps."""

    def run(self, run):
        from maintenance.postgres import actions
        from maintenance.postgres.plan import Capabilities, plan_debloat, rank

        policy, schemas = self.settings(run.policy)
        with self.connection(policy.postgres.safety) as conn:
            caps = Capabilities(
                in_window=window_open(policy),
                pg_repack=actions.pg_repack_available(conn),
                vacuum_full_allowed=frozenset(policy.postgres.vacuum_full_allowed))
            planned = rank(plan_debloat(self.analysis(conn, run.form, policy, schemas),
                                        policy.postgres.thresholds, caps))
            summary = self.plan_steps(run.ledger, planned, run.dry_run, policy, {"repack", "vacuum_full"})
        return summary | {"pg_repack": caps.pg_repack, "in_window": caps.in_window}

    def describe(self, summary):
        return f"{summary['steps']} table(s) to rebuild of {len(summary['planned'])} planned"


class PostgresReviewOperator(PostgresMaintenanceOperator):
    """Weekly review: unused, duplicate and invalid indexes, slow queries, wraparound, largest tables."""

    def run(self, run):
        from maintenance.postgres import review

        policy, schemas = self.settings(run.policy)
        t = policy.postgres.thresholds
        with self.connection(policy.postgres.safety) as conn:
            report = {
                "unused_indexes": review.unused_indexes(conn, schemas, t.unused_index),
                "duplicate_indexes": review.duplicate_indexes(conn, schemas),
                "invalid_indexes": review.invalid_indexes(conn, schemas),
                "slow_queries": review.slow_queries(conn, t.slow_query_mean_ms),
                "wraparound": review.wraparound(conn),
                "largest_tables": review.largest_tables(conn, schemas),
            }
            wanted = self.wanted_tables(conn, run.form, schemas)
        if wanted is not None:
            # Per-table findings narrowed to the form's tables; slow queries and wraparound are the
            # database's own and stay whole.
            def of_table(item):
                return f"{item['target'].split('.', 1)[0]}.{item.get('table', item['target'].split('.', 1)[-1])}"

            for key in ("unused_indexes", "duplicate_indexes", "invalid_indexes", "largest_tables"):
                report[key] = [item for item in report[key] if of_table(item) in wanted]
        for item in report["unused_indexes"]:
            run.ledger.record_finding("unused_index", item["target"], "info", item["why"], item)
        for item in report["duplicate_indexes"]:
            run.ledger.record_finding("duplicate_index", item["target"], "warning",
                                      f"same definition as {', '.join(item['duplicates'][1:])}", item)
        for item in report["invalid_indexes"]:
            run.ledger.record_finding("invalid_index", item["target"], "warning", "invalid: drop or rebuild it", item)
        if report["slow_queries"] is None:
            run.ledger.record_finding("slow_queries", self.conn_id, "info",
                                      "pg_stat_statements is not installed: slow queries cannot be reviewed", {})
        for item in report["slow_queries"] or []:
            run.ledger.record_finding("slow_query", item["target"], "warning",
                                      f"mean {item['mean_ms']} ms over {item['calls']} calls", item)
        for item in report["wraparound"]:
            severity = "critical" if item["headroom_pct"] < 25 else "warning" if item["headroom_pct"] < 50 else None
            if severity:
                run.ledger.record_finding(
                    "xid_wraparound", item["target"], severity,
                    f"{item['headroom_pct']:.0f}% of transaction ids left before wraparound", item)
        return report

    def describe(self, summary):
        return (f"{len(summary['unused_indexes'])} unused, {len(summary['duplicate_indexes'])} duplicate, "
                f"{len(summary['invalid_indexes'])} invalid indexes; "
                f"{len(summary['slow_queries'] or [])} slow queries")
