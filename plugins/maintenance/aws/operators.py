"""UpdateReviewOperator: the monthly update review of EC2 and RDS, read-only."""

from __future__ import annotations

from maintenance.operator import MaintenanceOperator


class UpdateReviewOperator(MaintenanceOperator):
    """EC2 instances on old or vanished images, long-stopped instances, RDS behind its minimum
    engine version or without minor updates; findings in the ledger."""

    def run(self, run):
        from maintenance.aws.clients import client
        from maintenance.aws.updates import review_ec2, review_rds

        policy = run.policy
        settings = policy.update_review
        if not settings.enabled:
            self.log.info("The update review is off in the policy (update_review.enabled)")
            return {"enabled": False}
        now = run.logical_date  # ages as of the run's date: a re-run or backfill judges as that day did
        ec2, ec2_findings = review_ec2(client(policy, "ec2"), now=now, max_ami_age_days=settings.max_ami_age_days,
                                       unused_after_days=settings.stopped_unused_days)
        rds, rds_findings = review_rds(client(policy, "rds"), min_engine_versions=settings.rds_min_engine_versions)
        findings = ec2_findings + rds_findings
        run.ledger.record_findings(findings)
        return {"instances": ec2, "databases": rds, "findings": [f.as_dict() for f in findings]}

    def describe(self, summary):
        if not summary.get("enabled", True):
            return "off in the policy"
        return (f"{len(summary['instances'])} instances, {len(summary['databases'])} databases: "
                f"{len(summary['findings'])} findings")


def _rds_or_skip(policy):
    from airflow.sdk.exceptions import AirflowSkipException

    from maintenance.aws.clients import client

    if not policy.rds_maintenance.enabled:
        raise AirflowSkipException("rds_maintenance.enabled is off: RDS keeps its own maintenance windows")
    return client(policy, "rds")


class RdsWindowOperator(MaintenanceOperator):
    """Every RDS instance's preferred maintenance window against the calendar; those falling in a
    blackout or freeze are moved to the planned window's slot (plan, then ModifyDBInstance,
    read back, in the ledger), at most ``rds_maintenance.max_changes_per_run`` per run."""

    def run(self, run):
        from maintenance import clock
        from maintenance.aws import rds_windows
        from maintenance.calendar import MaintenanceCalendar

        policy = run.policy
        rds, settings = _rds_or_skip(policy), policy.rds_maintenance
        found = rds_windows.review(rds, MaintenanceCalendar.from_policy(policy), clock.now(),
                                   settings.look_ahead_weeks)
        moved = []
        for item in found:
            self.log.info("%s: window %s; %s", item.instance, item.current,
                          "; ".join(item.conflicts) or "clear of blackouts")
            if item.conflicts and item.proposed is None:
                run.ledger.record_finding("rds_window_in_blackout", item.instance, "warning",
                                          f"{item.instance}: {item.why}", item.as_dict())
            if item.proposed is None:
                continue
            if len(moved) >= settings.max_changes_per_run:
                item.why += f"; not moved: the cap of {settings.max_changes_per_run} per run was reached"
                continue
            with run.ledger.action("rds", item.instance, "move_maintenance_window", plan=item.as_dict()):
                if not run.dry_run:
                    rds.modify_db_instance(DBInstanceIdentifier=item.instance,
                                           PreferredMaintenanceWindow=item.proposed)
                    (db,) = rds.describe_db_instances(DBInstanceIdentifier=item.instance)["DBInstances"]
                    if db["PreferredMaintenanceWindow"] != item.proposed:
                        raise RuntimeError(f"{item.instance}: window is {db['PreferredMaintenanceWindow']} after "
                                           f"moving it to {item.proposed}")
                    moved.append(item.instance)
        return {"instances": [i.as_dict() for i in found], "moved": moved}

    def describe(self, summary):
        late = sum(1 for i in summary["instances"] if i["conflicts"])
        return (f"{len(summary['instances'])} RDS instances, {late} with a window in a blackout, "
                f"{len(summary['moved'])} moved")


class RdsPendingMaintenanceOperator(MaintenanceOperator):
    """In the planned window: opt every pending RDS maintenance action in for the next
    maintenance (ApplyPendingMaintenanceAction, next-maintenance), read back, in the ledger; the
    action kind is window-only, so the ledger refuses it outside the window."""

    def run(self, run):
        from maintenance.aws import rds_windows

        policy = run.policy
        rds = _rds_or_skip(policy)
        found = rds_windows.pending(rds)
        opted = []
        for item in found:
            if item["opt_in"] in ("next-maintenance", "immediate"):
                continue  # already opted in
            if len(opted) >= policy.rds_maintenance.max_changes_per_run:
                break
            self.log.info("%s %s on %s: %s", "Would opt in" if run.dry_run else "Opting in", item["action"],
                          item["arn"], item["description"])
            with run.ledger.action("rds", item["arn"], "opt_in_pending_maintenance", plan=item):
                if not run.dry_run:
                    answer = rds.apply_pending_maintenance_action(ResourceIdentifier=item["arn"],
                                                                  ApplyAction=item["action"],
                                                                  OptInType="next-maintenance")
                    details = answer["ResourcePendingMaintenanceActions"]["PendingMaintenanceActionDetails"]
                    if not any(d["Action"] == item["action"] and d.get("OptInStatus") == "next-maintenance"
                               for d in details):
                        raise RuntimeError(f"{item['arn']}: {item['action']} is not opted in after the request")
                    opted.append(f"{item['arn']} {item['action']}")
        return {"pending": found, "opted_in": opted}

    def describe(self, summary):
        return f"{len(summary['pending'])} pending RDS actions, {len(summary['opted_in'])} opted in"
