"""Files to and from S3, and their checksums: what backups and log archiving share.

Large files go in parts (boto3's managed transfer); a file's SHA-256 and size are read in
one pass, so a copy can be checked against its source.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PART = 16 * 2**20


def client(policy):
    """The boto3 S3 client of the policy's AWS connection."""
    from maintenance.aws.clients import client as aws_client

    return aws_client(policy, "s3")


def _transfer():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)


def sha256_of(path: Path) -> tuple[str, int]:
    """The file's SHA-256 (hex) and size."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(PART):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def upload(s3, path: Path, bucket: str, key: str, *, metadata: dict[str, str] | None = None) -> None:
    extra = {"Metadata": metadata} if metadata else None
    s3.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=_transfer())


def download(s3, bucket: str, key: str, path: Path) -> Path:
    s3.download_file(bucket, key, str(path), Config=_transfer())
    return path


def ensure_bucket(s3, bucket: str) -> None:
    """Create the bucket when it does not exist; any other refusal is raised."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)
