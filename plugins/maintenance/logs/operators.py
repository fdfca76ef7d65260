"""LogRotationOperator (daily 00:00) and S3LifecycleOperator (weekly): thin wiring to S3."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


def _s3(policy):
    from maintenance.s3files import client

    return client(policy)


class LogRotationOperator(MaintenanceOperator):
    """Rotate, compress, archive to S3 (verified) and clean up every log folder of the policy."""

    def run(self, run):
        import socket
        from contextlib import nullcontext

        from maintenance import clock
        from maintenance.logs import ship
        from maintenance.logs.engine import process_folder

        policy = run.policy
        settings = policy.logs
        host = settings.host or socket.gethostname()
        if not settings.folders:
            self.log.info("No log folder in the policy (logs.folders): nothing to rotate")
            return {"host": host, "folders": []}
        s3 = _s3(policy)
        if not run.dry_run:
            ship.check_reachable(s3, settings.bucket)
        from maintenance.ledger import holder_name
        from maintenance.s3lock import S3TargetBusy, s3_lock

        reports, busy = [], []
        for folder in settings.folders:
            # One actor per host's folder: a second (a backfill beside the scheduled run) leaves it.
            target = f"logs {host}:{folder.name}"
            try:
                with s3_lock(s3, settings.bucket, target, holder=holder_name(run.ledger.key), hold_s=3600,
                             wait_s=settings.lock_wait_seconds) if not run.dry_run else nullcontext():
                    with run.ledger.action("logs", f"{host}:{folder.path}", "rotate_and_archive") as act:
                        report = process_folder(folder, s3, bucket=settings.bucket, prefix=settings.prefix,
                                                host=host, now=clock.now(), settle_seconds=settings.settle_seconds,
                                                dry_run=run.dry_run)
                        act.bytes_affected = report.uploaded_bytes
                        act.plan = report.as_dict()
                        if report.problems:
                            act.outcome, act.error = "failed", "; ".join(report.problems)[:2000]
            except S3TargetBusy as exc:
                self.log.warning("%s", exc)
                busy.append(str(exc))
                continue
            self.log.info("%s (%s): rotated %d, compressed %d, uploaded %d (%d bytes), deleted %d (%d bytes), "
                          "on disk %d (%d bytes)%s", folder.name, folder.path, len(report.rotated),
                          len(report.compressed), len(report.uploaded), report.uploaded_bytes, len(report.deleted),
                          report.deleted_bytes, len(report.kept), report.kept_bytes,
                          f"; still being written: {', '.join(report.still_written)}" if report.still_written else "")
            run.ledger.record_metrics("logs", folder.name, {"uploaded_bytes": report.uploaded_bytes,
                                                            "local_bytes": report.kept_bytes})
            reports.append(report.as_dict())
        problems = [p for r in reports for p in r["problems"]]
        if problems:
            raise RuntimeError(f"log rotation: {len(problems)} problem(s): " + "; ".join(problems))
        if busy and not reports:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("; ".join(busy))
        return {"host": host, "folders": reports, "busy": busy}

    def describe(self, summary):
        folders = summary["folders"]
        return (f"{sum(len(f['rotated']) for f in folders)} logs rotated, "
                f"{sum(len(f['uploaded']) for f in folders)} archived to S3, "
                f"{sum(len(f['deleted']) for f in folders)} local copies removed")


class S3LifecycleOperator(MaintenanceOperator):
    """Ensure the procedures' lifecycle rules on the policy's buckets, merged with their own rules."""

    def run(self, run):
        from contextlib import nullcontext

        from maintenance.ledger import holder_name
        from maintenance.logs import lifecycle
        from maintenance.s3lock import S3TargetBusy, s3_lock

        policy = run.policy
        plans = []
        s3 = _s3(policy) if policy.s3_lifecycle.buckets else None
        for bucket_cfg in policy.s3_lifecycle.buckets:
            try:
                # Rules are read, merged and written back whole: one actor per bucket, or the
                # second write loses the first one's change.
                with nullcontext() if run.dry_run else s3_lock(s3, bucket_cfg.name, "lifecycle rules",
                                                               holder=holder_name(run.ledger.key), hold_s=600,
                                                               wait_s=policy.logs.lock_wait_seconds):
                    found = lifecycle.plan(s3, bucket_cfg, policy.s3_lifecycle)
                    self.log.info("s3://%s: add %s, change %s, remove %s; its own rules kept: %s", found.bucket,
                                  found.added or "-", found.changed or "-", found.removed or "-",
                                  found.kept_foreign or "-")
                    if found.changes:
                        with run.ledger.action("s3", f"s3://{found.bucket}", "lifecycle_rules", plan=found.as_dict()):
                            if not run.dry_run:
                                lifecycle.apply(s3, found)
            except s3.exceptions.NoSuchBucket:
                self.log.warning("s3://%s does not exist (s3_lifecycle.buckets): skipped", bucket_cfg.name)
                plans.append({"bucket": bucket_cfg.name, "missing": True, "added": [], "changed": [], "removed": []})
                continue
            except S3TargetBusy as exc:
                self.log.warning("s3://%s: %s", bucket_cfg.name, exc)
                plans.append({"bucket": bucket_cfg.name, "busy": f"s3://{bucket_cfg.name}: {exc}",
                              "added": [], "changed": [], "removed": []})
                continue
            plans.append(found.as_dict())
        return {"buckets": plans}

    def describe(self, summary):
        changed = [b["bucket"] for b in summary["buckets"] if b["added"] or b["changed"] or b["removed"]]
        busy = [b["busy"] for b in summary["buckets"] if b.get("busy")]
        return (f"lifecycle rules changed on {len(changed)} of {len(summary['buckets'])} buckets"
                + "".join(f"; {b}" for b in busy))
