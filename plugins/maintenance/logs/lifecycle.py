"""S3 lifecycle rules (procedures 5.2), merged with each bucket's own rules.

The rules this project sets carry IDs starting with ``maintenance:``; every other rule of
the bucket is left exactly as it is. A plan compares the bucket's current rules with the
desired ones, so a dry run shows the difference and a second run changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

OURS = "maintenance:"


@dataclass
class LifecyclePlan:
    bucket: str
    versioned: bool
    current: list[dict]
    desired: list[dict]
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept_foreign: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def merged(self) -> list[dict]:
        return [r for r in self.current if not r.get("ID", "").startswith(OURS)] + self.desired

    def as_dict(self) -> dict:
        return {"bucket": self.bucket, "versioned": self.versioned, "added": self.added, "changed": self.changed,
                "removed": self.removed, "kept_foreign": self.kept_foreign}


def desired_rules(settings, logs_prefix: str | None, versioned: bool) -> list[dict]:
    rules = []
    if logs_prefix is not None:
        rules.append({"ID": f"{OURS}DeleteOldLogs", "Status": "Enabled", "Filter": {"Prefix": logs_prefix},
                      "Expiration": {"Days": settings.logs_expire_days}})
    rules.append({"ID": f"{OURS}TransitionToIA", "Status": "Enabled", "Filter": {"Prefix": ""},
                  "Transitions": [{"Days": settings.infrequent_access_after_days, "StorageClass": "STANDARD_IA"}]})
    rules.append({"ID": f"{OURS}DeleteIncompleteMultipart", "Status": "Enabled", "Filter": {"Prefix": ""},
                  "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": settings.abort_multipart_after_days}})
    if versioned:
        rules.append({"ID": f"{OURS}ExpireOldVersions", "Status": "Enabled", "Filter": {"Prefix": ""},
                      "NoncurrentVersionExpiration": {"NoncurrentDays": settings.noncurrent_version_expire_days}})
    return rules


def _essence(rule: dict) -> str:
    """What a rule does, in a form that compares equal however S3 spells it back."""
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    keep = {k: rule[k] for k in ("Status", "Expiration", "Transitions", "AbortIncompleteMultipartUpload",
                                 "NoncurrentVersionExpiration") if k in rule}
    return json.dumps({"prefix": prefix or "", **keep}, sort_keys=True, default=str)


def current_rules(s3, bucket: str) -> list[dict]:
    from botocore.exceptions import ClientError

    try:
        return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise


def plan(s3, bucket_cfg, settings) -> LifecyclePlan:
    bucket = bucket_cfg.name
    versioned = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    current = current_rules(s3, bucket)
    desired = desired_rules(settings, bucket_cfg.logs_prefix, versioned)
    ours = {r["ID"]: r for r in current if r.get("ID", "").startswith(OURS)}
    result = LifecyclePlan(bucket, versioned, current, desired,
                           kept_foreign=[r.get("ID", "(no id)") for r in current
                                         if not r.get("ID", "").startswith(OURS)])
    for rule in desired:
        if rule["ID"] not in ours:
            result.added.append(rule["ID"])
        elif _essence(ours[rule["ID"]]) != _essence(rule):
            result.changed.append(rule["ID"])
    result.removed = sorted(set(ours) - {r["ID"] for r in desired})
    return result


def apply(s3, lifecycle: LifecyclePlan) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=lifecycle.bucket,
                                          LifecycleConfiguration={"Rules": lifecycle.merged()})
