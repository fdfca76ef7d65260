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
