"""The demo's S3 kept on disk across restarts.

moto's server keeps its buckets in memory. The demo restores them from ``.demo/s3/`` when it
starts and writes them back while it runs and when it stops, so backups, archive exports, logs
and reports survive a restart. The folder mirrors the buckets: ``<bucket>/<key>`` holds each
object's bytes, ``<bucket>.meta.json`` each key's ETag and content type. Saving writes only
what changed since the last save, and removes what was deleted.
"""

from __future__ import annotations

import json
from pathlib import Path


def _client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="demo", aws_secret_access_key="demo")


def _object_path(folder: Path, bucket: str, key: str) -> Path:
    path = (folder / bucket / key).resolve()
    if not path.is_relative_to((folder / bucket).resolve()):  # a key such as ../../x stays inside
        raise ValueError(f"S3 key escapes the snapshot folder: {bucket}/{key}")
    return path


def save(endpoint: str, folder: Path) -> int:
    """Write the buckets' changes to ``folder``; returns the number of objects written."""
    s3, written = _client(endpoint), 0
    folder.mkdir(parents=True, exist_ok=True)
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        meta_path = folder / f"{bucket}.meta.json"
        known = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        current = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                current[key] = known.get(key) if known.get(key, {}).get("etag") == etag else None
                if current[key] is None:
                    got = s3.get_object(Bucket=bucket, Key=key)
                    path = _object_path(folder, bucket, key)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(got["Body"].read())
                    current[key] = {"etag": etag, "content_type": got.get("ContentType")}
                    written += 1
        for key in set(known) - set(current):
            _object_path(folder, bucket, key).unlink(missing_ok=True)
        meta_path.write_text(json.dumps(current))
    for meta_path in folder.glob("*.meta.json"):  # buckets deleted since
        if meta_path.name.removesuffix(".meta.json") not in buckets:
            meta_path.unlink()
    return written


def restore(endpoint: str, folder: Path) -> int:
    """Put the saved buckets back into a fresh server; returns the number of objects restored."""
    s3, restored = _client(endpoint), 0
    for meta_path in sorted(folder.glob("*.meta.json")):
        bucket = meta_path.name.removesuffix(".meta.json")
        s3.create_bucket(Bucket=bucket)
        for key, meta in json.loads(meta_path.read_text()).items():
            extra = {"ContentType": meta["content_type"]} if meta.get("content_type") else {}
            s3.put_object(Bucket=bucket, Key=key, Body=_object_path(folder, bucket, key).read_bytes(), **extra)
            restored += 1
    if restored:  # multipart objects come back with other ETags: record them so saves skip them
        save(endpoint, folder)
    return restored
