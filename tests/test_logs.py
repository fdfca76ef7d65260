"""Log rotation and S3 lifecycle against real files and a moto S3 server over HTTP."""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from maintenance.logs import lifecycle, rotate, ship
from maintenance.logs.engine import process_folder
from maintenance.policy.model import LifecycleBucket, LogFolder, S3Lifecycle

NOW = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


@pytest.fixture
def bucket(s3):
    name = f"logs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def run(folder, s3, bucket, now=NOW, **kwargs):
    return process_folder(folder, s3, bucket=bucket, prefix="logs/", host="web-1", now=now,
                          settle_seconds=kwargs.pop("settle_seconds", 0), dry_run=kwargs.pop("dry_run", False),
                          **kwargs)


def objects(s3, bucket) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys}


def test_rotated_logs_arrive_compressed_and_verified_then_leave_the_disk(tmp_path, s3, bucket):
    (tmp_path / "api.log").write_text("line 1\nline 2\n")
    (tmp_path / "worker.log").write_bytes(os.urandom(3 * 2**20))  # incompressible, several MB
    (tmp_path / "notes.txt").write_text("not a log")
    folder = LogFolder(name="app", path=str(tmp_path), retention_days=0)
    report = run(folder, s3, bucket)
    assert report.problems == []
    assert sorted(report.rotated) == ["api.log.20261127T050000Z", "worker.log.20261127T050000Z"]
    stored = objects(s3, bucket)
    assert stored["logs/web-1/app/2026/11/27/api.log.20261127T050000Z.gz"] == b"line 1\nline 2\n"
    assert len(stored["logs/web-1/app/2026/11/27/worker.log.20261127T050000Z.gz"]) == 3 * 2**20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.log", "notes.txt", "worker.log"]
    assert (tmp_path / "api.log").stat().st_size == 0  # truncated in place, still the writer's file
    assert len(report.deleted) == 2


def test_a_writer_keeping_its_file_open_loses_nothing_with_copytruncate(tmp_path, s3, bucket):
    log = tmp_path / "api.log"
    writer = open(log, "a", buffering=1)
    try:
        for n in range(100):
            writer.write(f"before {n}\n")
        report = run(LogFolder(name="app", path=str(tmp_path), retention_days=30), s3, bucket)
        for n in range(5):
            writer.write(f"after {n}\n")
    finally:
        writer.close()
    assert report.problems == []
    rotated = gzip.decompress((tmp_path / "api.log.20261127T050000Z.gz").read_bytes()).decode()
    assert rotated == "".join(f"before {n}\n" for n in range(100))
    assert log.read_text() == "".join(f"after {n}\n" for n in range(5))  # no hole of zeros before it


WRITER = """
import os, signal, sys, time
path, pidfile = sys.argv[1], sys.argv[2]
handle = open(path, "a", buffering=1)
asked = []
# As daemons do (nginx, logrotate's postrotate): the handler only notes the signal and the
# main loop reopens between writes; closing the file inside the handler can interrupt a write.
signal.signal(signal.SIGHUP, lambda *_: asked.append(1))
open(pidfile, "w").write(str(os.getpid()))
n = 0
while not os.path.exists(path + ".stop"):
    if asked:
        asked.clear()
        handle.close()
        handle = open(path, "a", buffering=1)
    handle.write(f"{n}\\n")
    n += 1
    time.sleep(0.001)
handle.write("end\\n")
"""


def test_rename_and_reopen_signal_keeps_every_line_exactly_once(tmp_path, s3, bucket):
    log, pidfile = tmp_path / "api.log", tmp_path / "api.pid"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(pidfile)])
    try:
        while not pidfile.exists() or not log.exists() or log.stat().st_size < 2000:
            time.sleep(0.01)
        folder = LogFolder(name="app", path=str(tmp_path), method="rename", pidfile=str(pidfile), retention_days=30)
        report = run(folder, s3, bucket, settle_seconds=0.3)
        time.sleep(0.2)
    finally:
        (tmp_path / "api.log.stop").touch()
        proc.wait(timeout=10)
    assert report.problems == [] and report.rotated == ["api.log.20261127T050000Z"]
    rotated = next(iter(objects(s3, bucket).values())).decode().split()
    active = log.read_text().split()
    lines = rotated + active
    assert lines[-1] == "end" and lines[:-1] == [str(n) for n in range(len(lines) - 1)]
    assert len(active) > 1  # the writer reopened the new file and went on there


def test_interrupted_between_upload_and_delete_the_rerun_uploads_nothing_twice(tmp_path, s3, bucket, monkeypatch):
    (tmp_path / "api.log").write_text("payload\n" * 1000)
    folder = LogFolder(name="app", path=str(tmp_path), retention_days=0)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed after the upload")

    monkeypatch.setattr(ship, "verify", crash)  # the delete step's check: the run dies there
    with pytest.raises(KeyboardInterrupt):
        run(folder, s3, bucket)
    monkeypatch.undo()
    assert (tmp_path / "api.log.20261127T050000Z.gz").exists()
    report = run(folder, s3, bucket, now=NOW + timedelta(minutes=5))
    assert report.problems == [] and report.uploaded == []  # already there: not uploaded again
    assert report.deleted == ["api.log.20261127T050000Z.gz"]
    assert list(objects(s3, bucket).values()) == [b"payload\n" * 1000]


class AlteringS3:
    """An S3 client whose uploads arrive altered, as a faulty network path or proxy would."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def upload_file(self, filename, bucket, key, **kwargs):
        data = bytearray(open(filename, "rb").read())
        data[len(data) // 2] ^= 0xFF
        self.real.put_object(Bucket=bucket, Key=key, Body=bytes(data))


def test_a_corrupted_upload_is_detected_and_the_local_file_kept(tmp_path, s3, bucket):
    (tmp_path / "api.log").write_text("important\n" * 500)
    folder = LogFolder(name="app", path=str(tmp_path), retention_days=0)
    report = run(folder, AlteringS3(s3), bucket)
    assert len(report.problems) == 1 and "S3 holds" in report.problems[0] and "local file is kept" in report.problems[0]
    assert (tmp_path / "api.log.20261127T050000Z.gz").exists()
    healed = run(folder, s3, bucket, now=NOW + timedelta(hours=1))
    assert healed.problems == [] and len(healed.uploaded) == 1 and len(healed.deleted) == 1


def test_a_file_still_being_written_is_left_for_later(tmp_path, s3, bucket):
    growing = tmp_path / "api.log.20261127T040000Z"
    growing.write_text("start\n")

    def keeps_writing(seconds):
        with open(growing, "a") as handle:
            handle.write("more\n")

    report = run(LogFolder(name="app", path=str(tmp_path)), s3, bucket, settle_seconds=5, sleep=keeps_writing)
    assert report.still_written == ["api.log.20261127T040000Z"] and report.compressed == []
    assert growing.exists()


def test_a_full_disk_while_compressing_keeps_the_original(tmp_path, s3, bucket, monkeypatch):
    (tmp_path / "api.log").write_text("precious\n" * 10000)

    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 64:  # the disk fills a few bytes in
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def opener(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if str(path).endswith(".gz.part") else handle

    monkeypatch.setattr("builtins.open", opener)
    report = run(LogFolder(name="app", path=str(tmp_path)), s3, bucket)
    monkeypatch.undo()
    assert len(report.problems) == 1 and "No space left on device" in report.problems[0]
    kept = tmp_path / "api.log.20261127T050000Z"
    assert kept.read_text() == "precious\n" * 10000
    assert not list(tmp_path.glob("*.part"))


def test_retention_keeps_recent_copies_within_days_and_size(tmp_path, s3, bucket):
    folder = LogFolder(name="app", path=str(tmp_path), retention_days=3, retention_mb=1)
    for day in range(5):  # five daily rotations of ~0.4 MB of incompressible logs
        (tmp_path / "api.log").write_bytes(os.urandom(400_000))
        report = run(folder, s3, bucket, now=NOW + timedelta(days=day))
        assert report.problems == []
    on_disk = sorted(p.name for p in tmp_path.glob("*.gz"))
    assert on_disk == ["api.log.20261130T050000Z.gz", "api.log.20261201T050000Z.gz"]  # 1 MB cap
    assert len(objects(s3, bucket)) == 5


def test_dry_run_rotates_nothing(tmp_path, s3, bucket):
    (tmp_path / "api.log").write_text("x\n")
    report = run(LogFolder(name="app", path=str(tmp_path)), s3, bucket, dry_run=True)
    assert report.rotated == ["api.log"]
    assert [p.name for p in tmp_path.iterdir()] == ["api.log"] and objects(s3, bucket) == {}


def test_unreachable_s3_fails_clearly_before_anything_is_deleted(tmp_path):
    """Real files, shipped to an S3 that does not answer: the check says so, and a folder processed
    anyway stops at the first upload and keeps every byte on disk (rotated, compressed, not
    deleted), however old."""
    from devtools.servers import free_port

    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=__import__("botocore.config").config.Config(retries={"max_attempts": 1},
                                                                          connect_timeout=2))
    with pytest.raises(ship.StorageUnavailable, match=r"^logs\.bucket: s3://logs cannot be reached"):
        ship.check_reachable(dead, "logs")
    (tmp_path / "api.log").write_text("today 1\ntoday 2\n")
    old = tmp_path / "api.log.20261001T050000Z.gz"
    old.write_bytes(gzip.compress(b"october\n"))
    os.utime(old, (NOW.timestamp() - 60 * 86400,) * 2)  # long past retention
    from botocore.exceptions import EndpointConnectionError

    with pytest.raises(EndpointConnectionError):  # the operator's reachability check says it first
        run(LogFolder(name="app", path=str(tmp_path), retention_days=1), dead, "logs")
    on_disk = {p.name: gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
               for p in tmp_path.iterdir()}
    assert on_disk["api.log.20261001T050000Z.gz"] == b"october\n"
    assert on_disk["api.log.20261127T050000Z.gz"] == b"today 1\ntoday 2\n"  # rotated, compressed, kept


def test_the_writer_gone_is_reported_and_nothing_is_lost(tmp_path, s3, bucket):
    (tmp_path / "api.log").write_text("last words\n")
    (tmp_path / "api.pid").write_text("999999")
    folder = LogFolder(name="app", path=str(tmp_path), method="rename", pidfile=str(tmp_path / "api.pid"),
                       retention_days=30)
    report = run(folder, s3, bucket)
    assert "the writer (pid 999999) is gone" in report.problems[0]
    assert list(objects(s3, bucket).values()) == [b"last words\n"]


# --- lifecycle ------------------------------------------------------------------------------------

SETTINGS = S3Lifecycle()


def test_lifecycle_rules_merge_with_the_buckets_own_and_a_second_run_changes_nothing(s3, bucket):
    own = {"ID": "team-keep-exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"},
           "Expiration": {"Days": 400}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [own]})
    cfg = LifecycleBucket(name=bucket)
    first = lifecycle.plan(s3, cfg, SETTINGS)
    assert first.added == ["maintenance:DeleteOldLogs", "maintenance:TransitionToIA",
                           "maintenance:DeleteIncompleteMultipart"]
    assert first.kept_foreign == ["team-keep-exports"]
    lifecycle.apply(s3, first)
    rules = {r["ID"]: r for r in lifecycle.current_rules(s3, bucket)}
    assert rules["team-keep-exports"]["Expiration"] == {"Days": 400}
    assert rules["maintenance:DeleteOldLogs"]["Expiration"] == {"Days": 90}
    assert rules["maintenance:TransitionToIA"]["Transitions"][0]["StorageClass"] == "STANDARD_IA"
    assert rules["maintenance:DeleteIncompleteMultipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7}
    assert not lifecycle.plan(s3, cfg, SETTINGS).changes
    changed = lifecycle.plan(s3, cfg, S3Lifecycle(logs_expire_days=120))
    assert changed.changed == ["maintenance:DeleteOldLogs"] and not changed.added


def test_versioned_buckets_also_expire_old_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    found = lifecycle.plan(s3, LifecycleBucket(name=bucket, logs_prefix=None), SETTINGS)
    assert found.added == ["maintenance:TransitionToIA", "maintenance:DeleteIncompleteMultipart",
                           "maintenance:ExpireOldVersions"]
    lifecycle.apply(s3, found)
    rules = {r["ID"]: r for r in lifecycle.current_rules(s3, bucket)}
    assert rules["maintenance:ExpireOldVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert not lifecycle.plan(s3, LifecycleBucket(name=bucket, logs_prefix=None), SETTINGS).changes


def test_rename_needs_a_pidfile():
    with pytest.raises(ValueError, match="method 'rename' needs a pidfile"):
        LogFolder(name="app", path="/var/log/app", method="rename")


def test_rotated_names_are_never_taken_for_active_logs(tmp_path):
    for name in ("api.log", "api.log.20261127T050000Z", "api.log.20261127T050000Z-1.gz"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in rotate.active_logs(tmp_path, ["*.log", "api.log*"])] == ["api.log"]



# --- through the DAGs -----------------------------------------------------------------------------

@pytest.fixture
def policy_with_logs(tmp_path, monkeypatch):
    """The project's policy plus one log folder, as the policy file the DAGs read."""
    from tests.conftest import use_policy

    logs = tmp_path / "logs"
    logs.mkdir()
    use_policy(tmp_path, monkeypatch, logs={"folders": [{"name": "api", "path": str(logs), "retention_days": 0}],
                                                  "lock_wait_seconds": 1})
    return logs


def test_daily_log_rotation_through_the_dag(policy_with_logs, s3, airflow_db, slack, platform_db):
    from tests.support.airflow_runs import run_dag

    (policy_with_logs / "api.log").write_text("GET /api/careers/pool 200\n" * 50)
    result = run_dag("maintenance_daily", datetime(2026, 11, 24, 5, tzinfo=UTC),
                     mark_success_pattern=r"^(backup|verify_backup|(plan_)?db_statistics|cache_optimization)$")
    assert result.states["log_rotation"] == "success", result.states
    folder = result.xcom("log_rotation")["folders"][0]
    assert len(folder["uploaded"]) == 1 and len(folder["deleted"]) == 1 and folder["problems"] == []
    key = folder["uploaded"][0]
    body = s3.get_object(Bucket="pathfinity-logs", Key=key)["Body"].read()
    assert gzip.decompress(body) == b"GET /api/careers/pool 200\n" * 50


def test_monday_s3_lifecycle_through_the_dag(policy_with_logs, s3, airflow_db, slack, platform_db, monkeypatch):
    from maintenance.s3lock import s3_lock

    from tests.support.airflow_runs import run_dag

    try:
        s3.create_bucket(Bucket="pathfinity-logs")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_bucket_lifecycle_configuration(Bucket="pathfinity-logs", LifecycleConfiguration={"Rules": [
        {"ID": "team-rule", "Status": "Enabled", "Filter": {"Prefix": "team/"}, "Expiration": {"Days": 9}}]})
    # Another actor is rewriting this bucket's rules: the run leaves them, and says who has them.
    with s3_lock(s3, "pathfinity-logs", "lifecycle rules", holder="maintenance maintenance_weekly backfill__x "
                 "monday.s3_lifecycle", hold_s=600, wait_s=0):
        busy = run_dag("maintenance_weekly", datetime(2026, 11, 16, 6, tzinfo=UTC), {"theme": "monday"},
                       mark_success_pattern=r"^monday\.redis_big_keys$")
    left = next(b for b in busy.xcom("monday.s3_lifecycle")["buckets"] if b["bucket"] == "pathfinity-logs")
    assert left["busy"].startswith("s3://pathfinity-logs: lifecycle rules is being maintained by maintenance "
                                   "maintenance_weekly backfill__x monday.s3_lifecycle (until "), left
    assert [r["ID"] for r in lifecycle.current_rules(s3, "pathfinity-logs")] == ["team-rule"]
    result = run_dag("maintenance_weekly", datetime(2026, 11, 23, 6, tzinfo=UTC), {"theme": "monday"},
                     mark_success_pattern=r"^monday\.redis_big_keys$")
    assert result.states["monday.s3_lifecycle"] == "success", result.states
    ids = {r["ID"] for r in lifecycle.current_rules(s3, "pathfinity-logs")}
    assert {"maintenance:DeleteOldLogs", "maintenance:TransitionToIA", "maintenance:DeleteIncompleteMultipart"} <= ids
    again = run_dag("maintenance_weekly", datetime(2026, 11, 30, 6, tzinfo=UTC), {"theme": "monday"},
                    mark_success_pattern=r"^monday\.redis_big_keys$")
    logs_bucket = next(b for b in again.xcom("monday.s3_lifecycle")["buckets"] if b["bucket"] == "pathfinity-logs")
    assert logs_bucket["added"] == logs_bucket["changed"] == logs_bucket["removed"] == []  # nothing to change


def test_a_folder_another_actor_is_rotating_is_left_alone_with_the_holder_named(tmp_path, s3, bucket):
    """The S3 lock: created only if absent (a conditional write), named, released, taken over once
    expired."""
    from datetime import timedelta

    from maintenance.s3lock import S3TargetBusy, s3_lock

    with s3_lock(s3, bucket, "logs web-1:api", holder="maintenance maintenance_daily backfill__v log_rotation",
                 hold_s=600, wait_s=0):
        with pytest.raises(S3TargetBusy, match=r"^logs web-1:api is being maintained by maintenance "
                                               r"maintenance_daily backfill__v log_rotation \(until "):
            with s3_lock(s3, bucket, "logs web-1:api", holder="another", hold_s=600, wait_s=0.3, poll_s=0.1):
                pass
        with s3_lock(s3, bucket, "logs web-2:api", holder="another", hold_s=600, wait_s=0):  # another target
            pass
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == []  # released
    with s3_lock(s3, bucket, "logs web-1:api", holder="dead", hold_s=1, wait_s=0,
                 now_fn=lambda: NOW - timedelta(days=1)):
        with s3_lock(s3, bucket, "logs web-1:api", holder="alive", hold_s=600, wait_s=0):  # the dead one expired
            body = s3.get_object(Bucket=bucket, Key="maintenance-locks/logs_web-1_api.json")["Body"].read()
            assert b'"holder": "alive"' in body
