"""Backup operators: produce (daily, critical), verify (daily, critical), restore test and
DR drill (weekly, Thursday). One task per database of the policy; engines in this package."""

from __future__ import annotations

from maintenance.ledger import relation_target
from maintenance.operator import MaintenanceOperator


class _BackupOperator(MaintenanceOperator):
    """Backup work on one database. Critical: it runs in blackouts and under load, pages on-call
    when it fails, and keeps its ledger records (spooled) when the ledger is down.

    :param conn_id: the Airflow connection of the database, one of ``postgres.databases``.
    """

    critical = True
    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @staticmethod
    def s3(policy):
        from maintenance.s3files import client

        return client(policy)


class BackupOperator(_BackupOperator):
    """pg_dump the database to S3 with a manifest from the same snapshot.

    The S3 key carries the run's date: a re-run or a backfill of a date whose backup is
    already complete (its manifest stored) makes no second one.
    """

    def run(self, run):
        from maintenance import clock
        from maintenance.backups import store
        from maintenance.backups.produce import produce
        from maintenance.postgres.conninfo import from_airflow

        policy = run.policy
        settings, source = policy.backups, from_airflow(self.conn_id)
        day = run.logical_date.astimezone(policy.tz).date()
        key = store.dump_key(settings.prefix, self.conn_id, day, source["dbname"])
        s3 = self.s3(policy)
        done = [b for b in store.list_backups(s3, settings.bucket, settings.prefix, self.conn_id)
                if b.key == key and b.has_manifest]
        if done:
            self.log.info("The backup for %s already exists: %s", day, done[0].url)
            return {"key": key, "existing": True, "bytes": done[0].size}
        if run.dry_run:
            return {"key": key, "existing": False}
        with run.ledger.action("backup", relation_target(self.conn_id, source['dbname']), "pg_dump",
                               plan={"key": f"s3://{settings.bucket}/{key}"}) as act:
            manifest = produce(source, s3, bucket=settings.bucket, key=key, conn_id=self.conn_id,
                               compression=settings.compression, jobs=settings.restore_jobs,
                               pg_bin_dir=settings.pg_bin_dir, now=clock.now)
            act.bytes_affected = manifest["dump"]["bytes"]
        run.ledger.record_metrics("backup", self.conn_id, {"backup_bytes": manifest["dump"]["bytes"],
                                                           "dump_seconds": manifest["dump_seconds"]})
        return {"key": key, "existing": False, "bytes": manifest["dump"]["bytes"],
                "tables": len(manifest["tables"]), "sha256": manifest["dump"]["sha256"]}

    def describe(self, summary):
        state = "already there" if summary.get("existing") else "made"
        return f"backup {summary['key']} {state}" + (f", {summary['bytes']:,} bytes" if "bytes" in summary else "")


class BackupVerificationOperator(_BackupOperator):
    """Daily and critical: the newest backup exists, is recent, kept its size, matches its SHA-256
    and its table of contents reads. A failure names the check and its figures, and pages on-call."""

    def run(self, run):
        from maintenance import clock
        from maintenance.backups import tools
        from maintenance.backups.verify import verify
        from maintenance.postgres.conninfo import from_airflow, libpq_env

        policy = run.policy
        settings, source = policy.backups, from_airflow(self.conn_id)
        report = verify(self.s3(policy), bucket=settings.bucket, prefix=settings.prefix, conn_id=self.conn_id,
                        now=clock.now(), max_age_hours=settings.max_age_hours,
                        max_size_drop_fraction=settings.max_size_drop_fraction,
                        pg_restore=tools.binary("pg_restore", _server_major(source), settings.pg_bin_dir),
                        env=libpq_env(source))
        for check in report.checks:
            self.log.info("%-18s %-8s %s", check.name, {True: "ok", False: "FAILED", None: "not run"}[check.ok],
                          check.detail)
            if check.ok is not True:  # failures page; checks that could not run show in the reports
                run.ledger.record_finding(f"backup_{check.name}", report.backup or self.conn_id,
                                          "critical" if check.ok is False else "info",
                                          check.detail if check.ok is False else f"not run: {check.detail}",
                                          {"backup": report.backup})
        if report.failed:
            raise RuntimeError(f"backup verification of {self.conn_id} failed: {report.message()}")
        return report.as_dict()

    def describe(self, summary):
        ran = [c for c in summary["checks"] if c["ok"] is not None]
        missing = [c["name"] for c in summary["checks"] if c["ok"] is None]
        return (f"{summary['backup']}: {len(ran)} checks passed"
                + (f", not run: {', '.join(missing)}" if missing else ""))


class RestoreTestOperator(_BackupOperator):
    """Weekly: restore the newest backup into a scratch database, check it against the manifest
    and with amcheck, record the restore duration and the backup's age, drop the scratch database.

    :param drill: "auto" runs the disaster-recovery drill (plus the policy's smoke queries, timed
        against the recovery time objective) on the month's first such weekday; True or False
        forces it. The trigger form's ``dr_drill`` overrides it.
    """

    template_fields = ("conn_id", "drill")

    def __init__(self, *, drill: bool | str = "auto", **kwargs) -> None:
        super().__init__(**kwargs)
        self.drill = drill

    def is_drill(self, run) -> bool:
        asked = run.form.dr_drill
        choice = self.drill if asked == "auto" else asked
        if isinstance(choice, str) and choice.lower() in ("true", "false"):
            choice = choice.lower() == "true"
        if choice == "auto":
            return run.logical_date.astimezone(run.policy.tz).day <= 7
        return bool(choice)

    def run(self, run):
        import secrets

        from maintenance import clock
        from maintenance.backups import store
        from maintenance.backups.restore import restore_test, scratch_name
        from maintenance.errors import InputError
        from maintenance.postgres.conninfo import from_airflow

        policy = run.policy
        settings = policy.backups
        drill = self.is_drill(run)
        s3 = self.s3(policy)
        backups = store.list_backups(s3, settings.bucket, settings.prefix, self.conn_id)
        if not backups:
            raise InputError(f"backups.bucket: no backup of {self.conn_id} under "
                             f"s3://{settings.bucket}/{store.folder(settings.prefix, self.conn_id)}")
        newest = backups[-1]
        target = from_airflow(settings.restore_conn_id)
        scratch = scratch_name(self.conn_id, run.logical_date.astimezone(policy.tz), secrets.token_hex(3))
        plan = {"backup": newest.url, "bytes": newest.size, "restore_server": settings.restore_conn_id,
                "drill": drill}
        if run.dry_run:
            return plan
        kind = "dr_drill" if drill else "restore_test"
        with run.step("backup", newest.url, kind, plan=plan, expected_seconds=settings.rto_minutes * 60) as act:
            result = restore_test(s3, newest, target=target, scratch=scratch, jobs=settings.restore_jobs,
                                  now=clock.now(), pg_bin_dir=settings.pg_bin_dir,
                                  smoke_queries=settings.smoke_queries if drill else (),
                                  owner=f"{run.ledger.key.dag_id} {run.ledger.key.run_id} "
                                        f"{run.ledger.key.task_id} try {run.ledger.key.try_number}")
            act.bytes_affected = newest.size
            if result.problems:
                act.outcome, act.error = "failed", "; ".join(result.problems)[:2000]
        summary = plan | result.as_dict()
        metrics = {"restore_seconds": result.restore_seconds, "backup_age_hours": result.backup_age_hours}
        if drill:
            rto = settings.rto_minutes * 60
            summary["rto_seconds"], summary["rto_met"] = rto, result.timings["total"] <= rto
            metrics["drill_seconds"] = result.timings["total"]
            if not summary["rto_met"]:
                result.problems.append(f"the drill took {result.timings['total']:.0f}s end to end, over the "
                                       f"recovery time objective of {rto:.0f}s (backups.rto_minutes)")
        run.ledger.record_metrics("backup", self.conn_id, metrics)
        for line in result.not_run:
            self.log.warning("Not run: %s", line)
            run.ledger.record_finding(f"{kind}_{line.split(':')[0]}", newest.url, "info", f"not run: {line}",
                                      {"scratch": scratch})
        self.log.info("Restored %s in %.1fs (download %.1fs), %d tables and %d indexes checked, backup %.1f h old",
                      newest.url, result.restore_seconds, result.timings.get("download", 0),
                      result.tables_checked, result.indexes_checked, result.backup_age_hours)
        if result.problems:
            for problem in result.problems:
                run.ledger.record_finding(kind, newest.url, "critical", problem, {"scratch": scratch})
            raise RuntimeError(f"{kind.replace('_', ' ')} of {newest.url} failed: " + "; ".join(result.problems))
        return summary

    def describe(self, summary):
        what = "DR drill" if summary.get("drill") else "restore test"
        return (f"{what}: restored in {summary['restore_seconds']:.1f}s, {summary['tables_checked']} tables and "
                f"{summary['indexes_checked']} indexes checked, backup {summary['backup_age_hours']:.1f} h old")


def _server_major(conninfo: dict) -> int:
    from maintenance.postgres.conninfo import connect

    with connect(conninfo) as conn:
        return conn.info.server_version // 10000
