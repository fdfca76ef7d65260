"""Where backups live in S3 and how they are found.

Layout: ``<prefix><conn_id>/<YYYY-MM-DD>/<database>.dump`` with the manifest beside it
as ``<dump key>.manifest.json``. The manifest is uploaded last: a dump without one is
either made elsewhere or an upload that did not finish, and is verified as a foreign
backup with the checks that need no manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from maintenance import s3files

MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class StoredBackup:
    bucket: str
    key: str
    size: int
    modified: datetime
    has_manifest: bool

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX


def folder(prefix: str, conn_id: str) -> str:
    return f"{prefix}{conn_id}/"


def dump_key(prefix: str, conn_id: str, day: date, database: str) -> str:
    return f"{folder(prefix, conn_id)}{day:%Y-%m-%d}/{database}.dump"


def list_backups(s3, bucket: str, prefix: str, conn_id: str) -> list[StoredBackup]:
    """Every dump under the database's folder, oldest first (none when the bucket does not exist)."""
    objects = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder(prefix, conn_id)):
            for item in page.get("Contents", []):
                objects[item["Key"]] = item
    except s3.exceptions.NoSuchBucket:
        return []
    backups = [StoredBackup(bucket, key, item["Size"], item["LastModified"], key + MANIFEST_SUFFIX in objects)
               for key, item in objects.items() if not key.endswith(MANIFEST_SUFFIX)]
    return sorted(backups, key=lambda b: (b.modified, b.key))


def load_manifest(s3, backup: StoredBackup) -> dict | None:
    if not backup.has_manifest:
        return None
    return json.loads(s3.get_object(Bucket=backup.bucket, Key=backup.manifest_key)["Body"].read())


def download(s3, backup: StoredBackup, path: Path) -> Path:
    return s3files.download(s3, backup.bucket, backup.key, path)
