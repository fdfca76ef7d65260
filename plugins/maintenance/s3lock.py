"""One actor per S3 target (a host's log folder in a bucket, a bucket's lifecycle rules): a lock
object in the bucket itself, created only if absent.

S3 refuses a conditional write (``If-None-Match: *``) when the object exists, atomically, so of
two actors one creates the lock and the other is told it is held. The object names its holder
and when it expires; an expired one (its holder died) is removed and taken. The holder removes
it when done.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

PREFIX = "maintenance-locks/"


class S3TargetBusy(RuntimeError):
    """Another actor holds the target; the message names it."""


def _key(target: str) -> str:
    return PREFIX + "".join(c if c.isalnum() or c in "._-" else "_" for c in target) + ".json"


def _try(s3, bucket: str, key: str, holder: str, hold_s: float, now: datetime) -> str | None:
    """Create the lock; None when taken, else the current holder's description."""
    from botocore.exceptions import ClientError

    body = json.dumps({"holder": holder, "expires": (now + timedelta(seconds=hold_s)).isoformat()}).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json")
        return None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
    try:
        current = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError:
        return "an actor that has just let go"
    if datetime.fromisoformat(current["expires"]) < now:  # its holder died: the lock is free again
        s3.delete_object(Bucket=bucket, Key=key)
        return f"{current['holder']} (expired, removed)"
    return f"{current['holder']} (until {current['expires']})"


@contextmanager
def s3_lock(s3, bucket: str, target: str, *, holder: str, hold_s: float, wait_s: float, poll_s: float = 1.0,
            sleep=time.sleep, now_fn=lambda: datetime.now(UTC)):
    key = _key(target)
    deadline = time.monotonic() + wait_s
    while (other := _try(s3, bucket, key, holder, hold_s, now_fn())) is not None:
        if time.monotonic() >= deadline and "expired" not in other:
            raise S3TargetBusy(f"{target} is being maintained by {other}; waited {wait_s:g}s, left alone this time")
        if "expired" not in other:
            sleep(poll_s)
    try:
        yield
    finally:
        try:
            current = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            if current.get("holder") == holder:
                s3.delete_object(Bucket=bucket, Key=key)
        except Exception:  # it expires by itself
            pass
