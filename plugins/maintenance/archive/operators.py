"""ArchiveOperator: the monthly move of old rows into archive tables, for one database."""

from __future__ import annotations

from maintenance.archive.plan import TablePlan
from maintenance.ledger import relation_target
from maintenance.operator import MaintenanceOperator


class ArchiveOperator(MaintenanceOperator):
    """Move rows older than each table's age (six months by default) into its archive table.

    The cutoff comes from the run's logical date, or the trigger form's ``archive_as_of``; a
    dry run reports per table the rows and bytes that would move, the batches and an estimated
    duration. The move pauses while the platform's load is above the policy's threshold and
    stops at the run's row cap or time budget; the next run continues where it stopped.

    :param conn_id: the database whose ``archive.tables`` this task archives.
    """

    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @staticmethod
    def as_of(run):
        from maintenance.errors import InputError

        run_day = run.logical_date.astimezone(run.policy.tz).date()
        asked = run.form.archive_as_of
        if asked is None:
            return run_day
        if asked > run_day:
            # A later date would move rows younger than the policy's age: refused, not clamped.
            raise InputError(f"archive_as_of: {asked} is later than the run's date {run_day}; archiving as of a "
                             "future date would move rows younger than the policy's age")
        return asked

    def run(self, run):
        import time

        from maintenance.ledger import holder_name
        from maintenance.postgres.safety import limited_session
        from maintenance.postgres.target_lock import TargetBusy, target_lock

        policy = run.policy
        settings = policy.archive
        as_of = self.as_of(run)
        # Times without a zone (timestamp, date) are read in the policy's zone, whatever the
        # server's or the role's TimeZone: the same date moves the same rows everywhere.
        with limited_session(self.conn_id, policy.postgres.safety, timezone=policy.timezone) as conn:
            plans = self.plan(conn, run, as_of)
            summary = {"as_of": as_of.isoformat(), "plan": [p.as_dict() for p, *_ in plans]}
            if run.dry_run:
                return summary | {"exports": self.export(conn, run.ledger, policy, plans, dry_run=True)}
            budget = {"rows": settings.max_rows_per_run,
                      "deadline": time.monotonic() + settings.time_budget_minutes * 60,
                      "should_pause": _load_check(policy, settings.load_check_seconds)}
            moved, refused = [], [p for p, *_ in plans if p.refused]
            busy = []
            for plan, index, table, source, cutoff, references in plans:
                if plan.refused:
                    self.log.error("%s refused: %s", plan.source, plan.refused)
                    continue
                try:
                    with target_lock(conn, relation_target(self.conn_id, table.source),
                                     holder=holder_name(run.ledger.key),
                                     wait_s=policy.postgres.safety.target_lock_wait_s):
                        moved.append(self.move_table(conn, run.ledger, settings, plan, index, table, source, cutoff,
                                                     budget, references))
                except TargetBusy as exc:  # another actor is archiving it: this run leaves it alone
                    self.log.warning("%s", exc)
                    busy.append(str(exc))
                    continue
                if budget["rows"] <= 0 or moved[-1]["stopped"]:
                    break
            # A table whose move stopped early still has old rows to come: its months wait.
            done = {m["source"] for m in moved if not m["stopped"]}
            finished = [p for p in plans if p[0].source in done]
            summary |= {"moved": moved, "busy": busy,
                        "exports": self.export(conn, run.ledger, policy, finished, dry_run=False)}
            if refused:
                # The other tables moved; the refused ones fail the task, loudly and without retries.
                from maintenance.errors import InputError

                run.ti.xcom_push(key="summary", value=summary)
                raise InputError("; ".join(f"{p.source} refused: {p.refused}" for p in refused))
            return summary

    def plan(self, conn, run, as_of) -> list[tuple]:
        """Per table of this database (narrowed by the form's ``tables``): what would move, and
        how long it would take at the rate its last move measured (the policy's guess before)."""
        from maintenance.archive import tables
        from maintenance.archive.plan import cutoff_for, estimate
        from maintenance.errors import InputError
        from maintenance.postgres import names

        policy = run.policy
        settings = policy.archive
        mine = [(i, t) for i, t in enumerate(settings.tables) if t.conn_id == self.conn_id]
        # The policy names tables exactly (schema.table, case kept); the form's names resolve to those.
        schemas = sorted({tables.split(t.source)[0] for _, t in mine}
                         | set(policy.postgres.database(self.conn_id).schemas))
        wanted = names.resolve(conn, schemas, run.form.tables, conn_id=self.conn_id)
        plans = []
        for index, table in mine:
            if wanted is not None and table.source not in wanted:
                continue
            field = f"archive.tables[{index}]"
            source = tables.describe(conn, table.source, field=f"{field}.source")
            if source is None:
                raise InputError(f"{field}.source: table {table.source} does not exist")
            if table.time_column not in source.columns:
                raise InputError(f"{field}.time_column: {table.source} has no column {table.time_column!r}")
            cutoff = cutoff_for(as_of, table.age_months, policy.tz)
            references = tables.references_to(conn, source)
            along, others, problems = children_along(conn, field, table, source, references)
            hooks = [h for h in tables.delete_hooks(conn, source) if h.enabled]
            counts = tables.census(conn, source, table.time_column, cutoff, others)
            rate, basis = expected_rate(run.ledger, relation_target(self.conn_id, table.source), settings)
            batches, seconds = estimate(counts["rows"], rate, settings.batching)
            refused = "; ".join(filter(None, [*problems, refusal(field, table, others, hooks)])) or None
            plan = TablePlan(table.source, table.archive_name, table.time_column, cutoff.isoformat(), counts["rows"],
                             counts["bytes"], batches, seconds, tables.exists(conn, table.archive_name), basis,
                             references=[r.as_dict() for r in references], delete_hooks=[h.as_dict() for h in hooks],
                             delete_triggers=table.delete_triggers, kept_referenced=counts["kept_referenced"],
                             no_time=counts["no_time"], refused=refused,
                             children=[{"table": ref.table, "archive": child.archive_name, "constraint": ref.constraint,
                                        "rows": tables.children_of_old(conn, source, table.time_column, cutoff, ref,
                                                                       others)}
                                       for ref, child in along])
            self.log.info("%s -> %s: %s rows (%.1f MB) older than %s, ~%d batches, ~%.0fs (%s)", plan.source,
                          plan.archive, f"{plan.rows:,}", plan.bytes / 2**20, plan.cutoff, plan.batches,
                          plan.estimated_seconds, basis)
            for line in plan.notes():
                self.log.warning("%s: %s", plan.source, line)
            plans.append((plan, index, table, source, cutoff, references))
        return plans

    @staticmethod
    def children_moves(conn, field: str, table, source, references) -> tuple[list, list]:
        """The children that go along (their archives made when missing), and the other references."""
        from maintenance.archive import tables
        from maintenance.archive.mover import ChildMove

        along, others, _ = children_along(conn, field, table, source, references)
        moves = []
        for i, (ref, child) in enumerate(along):
            info = tables.describe(conn, ref.table, field=f"{field}.children[{i}].table")
            archive = tables.ensure_archive(conn, info, child.archive_name, field=f"{field}.children[{i}].archive")
            moves.append(ChildMove.of(conn, ref, info, archive))
        return moves, others

    def move_table(self, conn, ledger, settings, plan, index, table, source, cutoff, budget, references) -> dict:
        from maintenance.archive import partitions, tables
        from maintenance.archive.mover import log_progress, move_rows

        children, references = self.children_moves(conn, f"archive.tables[{index}]", table, source, references)
        field = f"archive.tables[{index}].archive"
        target = relation_target(self.conn_id, table.source)
        whole, left = None, []
        if source.partitioned:
            # Whole old partitions change tables in constant time; the rest goes in batches.
            with ledger.action("archive", target, "attach_partitions") as act:
                _, whole, left = partitions.archive_whole_partitions(conn, source, table.archive_name, cutoff)
                act.plan = whole.as_dict()
                act.bytes_affected = sum(p["bytes"] for p in whole.attached)
            archive = tables.describe(conn, table.archive_name, field=field)
        else:
            archive = tables.ensure_archive(conn, source, table.archive_name, field=field)
        with ledger.action("archive", target, "move_rows", plan=plan.as_dict()) as act:
            # Recorded as running before the first batch; its count kept as batches commit, so a
            # killed try leaves in the ledger what it moved (see Ledger.close_interrupted).
            act.rows_affected = 0
            action_id = ledger.checkpoint(act)
            tally = ledger_tally(ledger, action_id) if same_database(conn, ledger.conn) else None

            def progress(result, total):
                log_progress(result, total)
                if tally is None:  # counted after each commit: a kill may miss the last batch's count
                    act.rows_affected = result.rows
                    ledger.checkpoint(act)

            result = move_rows(conn, source, archive, table.time_column, cutoff, batching=settings.batching,
                               max_rows=budget["rows"], deadline=budget["deadline"],
                               should_pause=budget["should_pause"], pause_seconds=settings.load_check_seconds,
                               progress=progress, total_hint=plan.rows, kept=tables.still_referenced(references),
                               tally=tally, children=tuple(children))
            act.rows_affected = result.rows
            act.plan = act.plan | result.as_dict()
        budget["rows"] -= result.rows
        ledger.record_metrics("archive", target, {
            "rows_moved": result.rows, "rows_per_second": result.as_dict()["rows_per_second"],
            "longest_batch_ms": result.longest_batch_ms})
        self.log.info("%s: moved %s rows in %d batches, %.1fs, longest batch %.0f ms%s", table.source,
                      f"{result.rows:,}", result.batches, result.seconds, result.longest_batch_ms,
                      f" ({result.stopped})" if result.stopped else "")
        dropped = [p.qualified for p in left if partitions.drop_if_empty(conn, source, p)]
        return {"source": table.source, **result.as_dict(),
                **({"partitions": whole.as_dict() | {"dropped": dropped}} if whole else {})}

    def export(self, conn, ledger, policy, plans, *, dry_run: bool) -> list[dict]:
        """Each finished table's full months in S3, when its policy asks for an export (see archive/export.py).

        One actor per table's export (an S3 lock in its bucket): of two runs at once, the second
        leaves the months to the first and says who holds them."""
        from contextlib import nullcontext

        from maintenance import s3files
        from maintenance.archive import tables
        from maintenance.ledger import holder_name
        from maintenance.s3lock import S3TargetBusy, s3_lock

        results, s3 = [], None
        for _plan, index, table, _source, cutoff, _references in plans:
            if table.export is None:
                continue
            bucket, prefix = table.export.bucket, table.export.prefix
            if not tables.exists(conn, table.archive_name):
                results.append({"source": table.source, "bucket": bucket, "months": [],
                                "note": "no archive table yet: its months are exported after the first move"})
                continue
            s3 = s3 or s3files.client(policy)
            if not dry_run:
                s3files.ensure_bucket(s3, bucket)
            try:
                with nullcontext() if dry_run else s3_lock(
                        s3, bucket, f"archive export {prefix}{table.archive_name}", holder=holder_name(ledger.key),
                        hold_s=policy.archive.time_budget_minutes * 60 + 3600,
                        wait_s=policy.postgres.safety.target_lock_wait_s):
                    months = self.export_table(conn, s3, ledger, policy, index, table, cutoff, dry_run=dry_run)
            except S3TargetBusy as exc:
                self.log.warning("%s", exc)
                results.append({"source": table.source, "bucket": bucket, "months": [], "busy": str(exc)})
                continue
            results.append({"source": table.source, "bucket": bucket, "months": [m.as_dict() for m in months]})
        return results

    def export_table(self, conn, s3, ledger, policy, index, table, cutoff, *, dry_run: bool) -> list:
        from maintenance.archive import export, tables

        bucket, prefix = table.export.bucket, table.export.prefix
        archive = tables.describe(conn, table.archive_name, field=f"archive.tables[{index}].archive")
        months = export.plan(conn, s3, archive, table.time_column, cutoff, policy.tz, bucket=bucket, prefix=prefix)
        for i, month in enumerate(months):
            if dry_run or month.status == "unchanged":
                continue
            with ledger.action("archive", f"s3://{bucket}/{month.key}", "export_month", plan=month.as_dict()) as act:
                months[i] = export.export_month(conn, s3, archive, table.time_column, month, policy.tz,
                                                bucket=bucket, run_id=ledger.key.run_id)
                act.rows_affected, act.bytes_affected = months[i].rows, months[i].bytes
            self.log.info("%s %s: %s rows, %d bytes, SHA-256 %s, to s3://%s/%s", table.archive_name,
                          month.month, f"{months[i].rows:,}", months[i].bytes, months[i].sha256, bucket, month.key)
        return months

    def describe(self, summary):
        notes = {p["source"]: "".join(f" ({n})" for n in TablePlan(**p).notes()) for p in summary["plan"]}
        if "moved" not in summary:
            return "; ".join(f"{p['source']}: {p['rows']:,} rows to move{notes[p['source']]}"
                             for p in summary["plan"]) or "no tables"
        text = "; ".join([f"{m['source']}: {m['rows']:,} rows archived{notes[m['source']]}"
                          for m in summary["moved"]] + summary.get("busy", [])) or "no tables"
        months = [m["status"] for e in summary.get("exports", []) for m in e["months"]]
        exported = sum(status.endswith("exported") for status in months)
        busy = [e["busy"] for e in summary.get("exports", []) if e.get("busy")]
        return text + (f"; S3 export: {exported} months written, {len(months) - exported} already there"
                       if months else "") + "".join(f"; {b}" for b in busy)


def ledger_tally(ledger, action_id: int):
    """The batch's addition to its ledger action's count, for the mover to run inside each batch's
    transaction (the ledger in the same database): the count commits with the rows it counts."""
    from psycopg import sql

    return sql.SQL("UPDATE {}.actions SET rows_affected = rows_affected + (SELECT count(*) FROM moved) "
                   "WHERE id = {}").format(sql.Identifier(ledger.schema_name), sql.Literal(action_id))


def same_database(one, other) -> bool:
    """Do two connections reach the same database (the same server, port and database)?"""
    where = "SELECT inet_server_addr(), inet_server_port(), current_database(), " \
            "(SELECT system_identifier FROM pg_control_system())"
    try:
        return one.execute(where).fetchone() == other.execute(where).fetchone()
    except Exception:  # pg_control_system needs pg_monitor or superuser: compare the addresses only
        info = (one.info.host, one.info.port, one.info.dbname)
        return info == (other.info.host, other.info.port, other.info.dbname)


def children_along(conn, field: str, table, source, references) -> tuple[list, list, list[str]]:
    """The policy's ``children`` matched to the foreign keys that reference the source: those that
    go along (reference, policy entry), the other references, and why going along cannot work
    (a child with no key to the source, or with two, or referenced in turn by other tables; a
    partitioned source, whose partitions change tables whole)."""
    from maintenance.archive import tables
    from maintenance.errors import InputError

    by_child: dict[str, list] = {}
    for ref in references:
        by_child.setdefault(ref.table.lower(), []).append(ref)
    along, problems = [], []
    for i, child in enumerate(table.children):
        refs = by_child.get(child.table.lower(), [])
        if not refs:
            raise InputError(f"{field}.children[{i}].table: {child.table} has no foreign key to {table.source}")
        if len(refs) > 1:
            problems.append(f"{child.table} references {table.source} by {len(refs)} keys: archiving it along "
                            "is for one key")
        grandchildren = tables.references_to(conn, tables.Relation(*tables.split(refs[0].table)))
        if grandchildren:
            problems.append(f"{child.table} is itself referenced by {', '.join(g.table for g in grandchildren)}: "
                            "archiving children of children is not supported")
        along.append((refs[0], child))
    if along and source.partitioned:
        problems.append("children go along only with an unpartitioned source")
    taken = {id(ref) for ref, _ in along}
    return along, [r for r in references if id(r) not in taken], problems


def refusal(field: str, table, references, hooks) -> str | None:
    """Why the move must not touch this source, naming the policy key that would allow it."""
    reasons = []
    acting = [r for r in references if not r.keeps_rows and r.table.lower() not in
              {t.lower() for t in table.cascade_acknowledged}]
    if acting:
        reasons.append("; ".join(f"{r.table}.{r.constraint} is ON DELETE {r.on_delete.upper()}: archiving would "
                                 f"{'delete' if r.on_delete == 'cascade' else 'rewrite'} its rows that reference "
                                 "archived rows" for r in acting)
                       + f" (name the child in {field}.cascade_acknowledged to accept that)")
    rules = [h for h in hooks if h.kind == "rule"]
    if rules:  # PostgreSQL runs no DO ALSO rule for a DELETE inside WITH, which each batch is
        reasons.append(f"{', '.join(f'rule {h.name}' for h in rules)} on DELETE: a source with DELETE rules "
                       "cannot be archived in verified batches; replace the rule with a trigger")
    triggers = [h for h in hooks if h.kind == "trigger"]
    if triggers and table.delete_triggers == "refuse":
        names = ", ".join(f"trigger {h.name}" for h in triggers)
        reasons.append(f"{names} fire(s) on DELETE, once per archived row (set {field}.delete_triggers: fire "
                       "to accept that)")
    return "; ".join(reasons) or None


# A rate measured over fewer rows is mostly the move's fixed costs, not its pace.
RATE_MEASURED_OVER_ROWS = 10_000


def expected_rate(ledger, target: str, settings) -> tuple[float, str]:
    """Rows per second to expect when moving ``target`` (``conn_id:table``: two databases may
    hold tables of the same name), and where the figure comes from: its latest move of at least
    ``RATE_MEASURED_OVER_ROWS`` rows, else the policy's guess."""
    found = ledger.latest_metric("archive", target, "rows_per_second", where=("rows_moved", RATE_MEASURED_OVER_ROWS))
    if found and found[0] > 0:
        rate, when = found
        return rate, f"{rate:,.0f} rows/s, measured by the move of {when:%Y-%m-%d}"
    guess = settings.expected_rows_per_second
    return guess, f"{guess:,.0f} rows/s, archive.expected_rows_per_second: no move of this table measured yet"


def _load_check(policy, every_seconds: float):
    """A pause test for the mover: the policy's load probe, consulted at most every ``every_seconds``."""
    import time

    from maintenance.probes import busy_reason

    state = {"at": float("-inf"), "reason": None}

    def should_pause():
        if time.monotonic() - state["at"] >= every_seconds:
            state["reason"] = busy_reason(policy.decision.load)
            state["at"] = time.monotonic()
        return state["reason"]

    return should_pause


class PartitionPlanningOperator(MaintenanceOperator):
    """Monthly: the next months' partitions of tables partitioned by month, created ahead so no
    insert falls into a default partition; a proposal (and its cost) for large unpartitioned tables.

    :param conn_id: the database whose schemas are planned.
    """

    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def run(self, run):
        from maintenance.archive import planning
        from maintenance.archive.partitions import partitions
        from maintenance.postgres.safety import limited_session

        policy = run.policy
        settings = policy.archive.partitioning
        schemas = policy.postgres.database(self.conn_id).schemas
        today = run.logical_date.astimezone(policy.tz).date()
        with limited_session(self.conn_id, policy.postgres.safety) as conn:
            created, planned = [], []
            for table in planning.partitioned_by_time(conn, schemas):
                for start, end in planning.missing_months(conn, partitions(conn, table), today,
                                                          settings.create_ahead_months):
                    planned.append(f"{table.qualified} {start:%Y-%m}")
                    if run.dry_run:
                        continue
                    with run.ledger.action("postgres", relation_target(self.conn_id, table.qualified),
                                           "create_partition", plan={"from": str(start), "to": str(end)}):
                        created.append(planning.create_month(conn, table, start, end, policy.postgres.safety))
            found = planning.proposals(conn, schemas, settings)
        for item in found:
            self.log.info("Proposal: partition %s (%.1f GB, %s rows) by month on %s: %d months, ~%.0f min; %s",
                          item.table, item.bytes / 2**30, f"{item.rows:,}", item.time_column, item.months,
                          item.estimated_minutes, "; ".join(item.notes))
            run.ledger.record_finding("partitioning_proposal", item.table, "info",
                                      f"partition by month on {item.time_column}: {item.months} partitions, "
                                      f"~{item.estimated_minutes:.0f} min to rewrite", item.as_dict())
        return {"planned": planned, "created": created, "proposals": [p.as_dict() for p in found]}

    def describe(self, summary):
        return (f"{len(summary['created'])} partitions created ahead ({len(summary['planned'])} due), "
                f"{len(summary['proposals'])} tables proposed for partitioning")
