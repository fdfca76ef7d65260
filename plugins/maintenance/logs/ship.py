"""Archiving rotated logs to S3 and deleting local copies only once S3 holds them intact.

Key layout: ``<prefix><host>/<log name>/<YYYY>/<MM>/<DD>/<file>.gz``, the date being the
rotation's. An object counts as verified when reading it back gives the local file's
size and SHA-256; a re-run finds a verified object and uploads nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from maintenance import s3files
from maintenance.logs.rotate import rotated_at
from maintenance.s3files import sha256_of


class StorageUnavailable(RuntimeError):
    """S3 cannot be reached or refuses us: nothing is deleted."""


@dataclass
class Shipped:
    path: Path
    key: str
    bytes: int
    uploaded: bool
    verified: bool
    detail: str = ""


def key_for(prefix: str, host: str, log_name: str, path: Path) -> str:
    when = rotated_at(path)
    return f"{prefix}{host}/{log_name}/{when:%Y/%m/%d}/{path.name}"


def remote_sha256(s3, bucket: str, key: str) -> tuple[str, int] | None:
    """SHA-256 and size of the object as S3 gives it back; None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    digest, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(s3files.PART):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def check_reachable(s3, bucket: str) -> None:
    """Fail early and clearly when the bucket cannot be used; create it when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket"):
            s3.create_bucket(Bucket=bucket)
            return
        raise StorageUnavailable(f"logs.bucket: s3://{bucket} refused the request ({code}: "
                                 f"{exc.response.get('Error', {}).get('Message', exc)}); nothing was deleted") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"logs.bucket: s3://{bucket} cannot be reached ({exc}); nothing was deleted") from exc


def already_uploaded(s3, bucket: str, key: str, local: tuple[str, int]) -> bool:
    """S3 has an object there that we uploaded from this very file (its recorded SHA-256 and size)."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return False
        raise
    return head.get("Metadata", {}).get("sha256") == local[0] and head["ContentLength"] == local[1]


def verify(s3, bucket: str, key: str, path: Path, local: tuple[str, int] | None = None) -> Shipped:
    """Read the object back: verified when its size and SHA-256 equal the local file's."""
    local = local or sha256_of(path)
    remote = remote_sha256(s3, bucket, key)
    if remote != local:
        got = f"{remote[1]:,} bytes, SHA-256 {remote[0][:16]}..." if remote else "nothing"
        return Shipped(path, key, local[1], False, False,
                       f"S3 holds {got} where the local file has {local[1]:,} bytes, SHA-256 {local[0][:16]}...")
    return Shipped(path, key, local[1], False, True)


def ship(s3, bucket: str, key: str, path: Path) -> Shipped:
    """Upload ``path`` unless S3 already holds it intact, then verify what S3 holds."""
    local = sha256_of(path)
    uploaded = False
    if remote_sha256(s3, bucket, key) != local:
        s3files.upload(s3, path, bucket, key, metadata={"sha256": local[0]})
        uploaded = True
    result = verify(s3, bucket, key, path, local)
    result.uploaded = uploaded
    return result
