"""The monthly update review against moto's EC2 and RDS (server mode, over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag

LATER = datetime(2027, 6, 6, 6, tzinfo=UTC)  # a first Sunday; moto's objects are made today, so months old then
OTHERS = (r"^(gate_archive|archive|partition_planning|gate_window|(plan_)?debloat|security_audit|compliance"
          r"|monthly_report)$")


@pytest.fixture
def estate(s3_server):
    """An instance on its image, one stopped, one whose image was deregistered; two databases."""
    kw = {"endpoint_url": s3_server, "region_name": "us-east-1", "aws_access_key_id": "testing",
          "aws_secret_access_key": "testing"}
    ec2, rds = boto3.client("ec2", **kw), boto3.client("rds", **kw)
    for reservation in ec2.describe_instances()["Reservations"]:  # what an earlier test left
        ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in reservation["Instances"]])
    for db in rds.describe_db_instances()["DBInstances"]:
        rds.delete_db_instance(DBInstanceIdentifier=db["DBInstanceIdentifier"], SkipFinalSnapshot=True)
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(name: str, image: str) -> str:
        return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.small", TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]

    web = launch("web-1", base)
    batch = launch("batch-old", base)
    ec2.stop_instances(InstanceIds=[batch])
    custom = ec2.create_image(InstanceId=web, Name="pathfinity-web-2026-11")["ImageId"]
    orphan = launch("api-orphan", custom)
    ec2.deregister_image(ImageId=custom)
    rds.create_db_instance(DBInstanceIdentifier="platform", Engine="postgres", EngineVersion="13.4",
                           DBInstanceClass="db.t3.medium", AllocatedStorage=20, MasterUsername="admin",
                           MasterUserPassword="password123", AutoMinorVersionUpgrade=False)
    rds.create_db_instance(DBInstanceIdentifier="reports", Engine="postgres", EngineVersion="16.4",
                           DBInstanceClass="db.t3.medium", AllocatedStorage=20, MasterUsername="admin",
                           MasterUserPassword="password123", AutoMinorVersionUpgrade=True)
    return {"web": web, "batch": batch, "orphan": orphan, "image": custom}


def test_monthly_update_review_names_old_images_unused_instances_and_old_databases(
        estate, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    use_policy(tmp_path, monkeypatch, update_review={"max_ami_age_days": 90, "stopped_unused_days": 14,
                                                     "rds_min_engine_versions": {"postgres": "15.8"}})
    result = run_dag("maintenance_monthly", LATER, {"dry_run": True}, mark_success_pattern=OTHERS)
    assert result.states["update_review"] == "success", result.states
    found = {(f["check"], f["target"]) for f in result.xcom("update_review")["findings"]}
    assert found == {
        ("ami_outdated", f"web-1 ({estate['web']})"), ("ami_outdated", f"batch-old ({estate['batch']})"),
        ("instance_unused", f"batch-old ({estate['batch']})"),
        ("ami_missing", f"api-orphan ({estate['orphan']})"),
        ("rds_engine_outdated", "platform"), ("rds_auto_minor_upgrade_off", "platform")}
    recorded = platform_db.execute("SELECT count(*) FROM maintenance.findings WHERE run_id = %s",
                                   (result.run.run_id,))
    assert recorded == [(6,)]


def test_a_bad_minimum_version_is_refused_naming_the_field():
    from maintenance.policy.model import UpdateReview
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="rds_min_engine_versions"):
        UpdateReview(rds_min_engine_versions={"postgres": "latest"})
