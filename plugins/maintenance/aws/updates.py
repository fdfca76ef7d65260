"""The monthly update review of the cloud estate (procedures 2.3 "update review", 5.2): EC2
instances on old or vanished machine images, instances stopped so long they look unused, and
RDS databases behind the policy's minimum engine version or not taking minor updates.

It reads only (``Describe*`` calls): replacing an image, deleting an instance or upgrading a
database needs its own change, planned in the window; the findings say which and why.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from maintenance.findings import Finding
from maintenance.security.versions import numbers

STOPPED_AT = re.compile(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)")


def _name(tags: list[dict] | None, default: str) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), default)


def instances(ec2) -> list[dict]:
    found = []
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            found.extend(reservation["Instances"])
    return found


def images(ec2, image_ids: set[str]) -> dict[str, dict]:
    """The images still registered, by id (a deregistered one is simply absent)."""
    if not image_ids:
        return {}
    found = {}
    for page in ec2.get_paginator("describe_images").paginate(
            Filters=[{"Name": "image-id", "Values": sorted(image_ids)}]):
        found.update({image["ImageId"]: image for image in page["Images"]})
    return found


def review_ec2(ec2, *, now: datetime, max_ami_age_days: float, unused_after_days: float) -> tuple[list, list]:
    """(instances as reviewed, findings)."""
    listed = [i for i in instances(ec2) if i["State"]["Name"] not in ("terminated", "shutting-down")]
    known = images(ec2, {i["ImageId"] for i in listed})
    reviewed, findings = [], []
    for item in listed:
        ident = item["InstanceId"]
        target = f"{_name(item.get('Tags'), ident)} ({ident})"
        image = known.get(item["ImageId"])
        entry = {"instance": ident, "name": _name(item.get("Tags"), ident), "state": item["State"]["Name"],
                 "type": item.get("InstanceType"), "image": item["ImageId"], "image_age_days": None,
                 "stopped_days": None}
        if image is None:
            findings.append(Finding("ami_missing", target, "warning",
                                    f"its image {item['ImageId']} is no longer registered: it cannot be rebuilt "
                                    "from it; move it to a current image"))
        elif image.get("CreationDate"):
            created = datetime.fromisoformat(image["CreationDate"].replace("Z", "+00:00"))
            entry["image_age_days"] = round((now - created).total_seconds() / 86400, 1)
            if entry["image_age_days"] > max_ami_age_days:
                findings.append(Finding("ami_outdated", target, "warning",
                                        f"image {item['ImageId']} ({image.get('Name', '?')}) is "
                                        f"{entry['image_age_days']:.0f} days old (limit {max_ami_age_days:.0f}): "
                                        "rebuild on a patched image"))
        if item["State"]["Name"] == "stopped":
            stopped = STOPPED_AT.search(item.get("StateTransitionReason") or "")
            if stopped:
                since = datetime.strptime(stopped.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                entry["stopped_days"] = round((now - since).total_seconds() / 86400, 1)
                if entry["stopped_days"] > unused_after_days:
                    findings.append(Finding("instance_unused", target, "info",
                                            f"stopped for {entry['stopped_days']:.0f} days (since {since:%Y-%m-%d}): "
                                            "its volumes still cost; terminate it if nobody needs it"))
        reviewed.append(entry)
    return reviewed, findings


def review_rds(rds, *, min_engine_versions: dict[str, str]) -> tuple[list, list]:
    reviewed, findings = [], []
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            ident, engine, version = db["DBInstanceIdentifier"], db["Engine"], db.get("EngineVersion", "")
            reviewed.append({"database": ident, "engine": engine, "version": version,
                             "auto_minor_version_upgrade": db.get("AutoMinorVersionUpgrade"),
                             "pending": db.get("PendingModifiedValues") or {}})
            minimum = min_engine_versions.get(engine)
            if minimum and numbers(version) < numbers(minimum):
                findings.append(Finding("rds_engine_outdated", ident, "warning",
                                        f"{engine} {version} is older than the policy's minimum {minimum}: plan the "
                                        "upgrade in the window"))
            if db.get("AutoMinorVersionUpgrade") is False:
                findings.append(Finding("rds_auto_minor_upgrade_off", ident, "info",
                                        f"{engine} {version} does not take minor (security) updates in its "
                                        "maintenance window"))
    return reviewed, findings
