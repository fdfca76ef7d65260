"""Security posture of PostgreSQL, Redis and S3: each finding with its evidence and its fix.

Checks that cannot run (not enough privilege, a command disabled) are listed apart as
"not run", never as passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maintenance.findings import Finding


@dataclass
class Audit:
    findings: list[Finding] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> None:
        self.findings.append(Finding(*args, **kwargs))

    def extend(self, other: Audit) -> None:
        self.findings += other.findings
        self.not_run += other.not_run


# -- PostgreSQL ------------------------------------------------------------------------------------

def postgres(conn, target: str) -> Audit:
    from psycopg import errors

    audit = Audit()
    try:
        roles = conn.execute("""
            SELECT rolname, rolsuper, rolpassword IS NULL, rolvaliduntil
            FROM pg_authid WHERE rolcanlogin ORDER BY rolname""").fetchall()
    except errors.InsufficientPrivilege:
        audit.not_run.append(f"{target}: login roles (reading pg_authid needs a superuser)")
        roles = []
    for name, superuser, no_password, valid_until in roles:
        if no_password:
            audit.add("role_without_password", f"{target}:{name}", "critical" if superuser else "warning",
                      f"{'superuser' if superuser else 'login'} role {name} has no password",
                      {"role": name, "superuser": superuser},
                      f"ALTER ROLE {name} PASSWORD '...' (and remove trust rules from pg_hba.conf)")
        elif superuser and valid_until is None:
            audit.add("superuser_without_expiry", f"{target}:{name}", "warning",
                      f"superuser {name} has a password that never expires", {"role": name},
                      f"ALTER ROLE {name} VALID UNTIL '<date>', rotated by the password policy")
    try:
        trust = conn.execute("""
            SELECT line_number, type, database, user_name, address FROM pg_hba_file_rules
            WHERE auth_method = 'trust' ORDER BY line_number""").fetchall()
    except errors.InsufficientPrivilege:
        audit.not_run.append(f"{target}: pg_hba.conf rules (pg_hba_file_rules needs a superuser)")
        trust = []
    if trust:
        audit.add("hba_trust", target, "critical", f"{len(trust)} pg_hba.conf rule(s) accept connections "
                  "without any password (trust)",
                  {"rules": [{"line": r[0], "type": r[1], "database": r[2], "user": r[3], "address": r[4]}
                             for r in trust]},
                  "replace trust with scram-sha-256 in pg_hba.conf, then SELECT pg_reload_conf()")
    if conn.execute("SHOW ssl").fetchone()[0] != "on":
        audit.add("ssl_off", target, "warning", "the server does not offer TLS (ssl = off)", {"ssl": "off"},
                  "set ssl = on with ssl_cert_file and ssl_key_file, and hostssl rules in pg_hba.conf")
    if conn.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()[0]:
        audit.add("public_schema_create", target, "warning", "every role may create objects in schema public",
                  {"schema": "public", "grantee": "PUBLIC"}, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return audit


# -- Redis -----------------------------------------------------------------------------------------

DANGEROUS = ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "KEYS", "SHUTDOWN")


def redis(client, target: str) -> Audit:
    from redis.exceptions import ResponseError

    audit = Audit()
    try:
        user = client.acl_getuser("default")
    except ResponseError as exc:
        audit.not_run.append(f"{target}: default user ({exc})")
        user = None
    if user and "nopass" in (user.get("flags") or []) and "on" in (user.get("flags") or []):
        audit.add("redis_no_password", target, "critical", "the default user needs no password",
                  {"flags": user.get("flags")}, "set requirepass (or an ACL password for the default user)")
    try:
        protected = client.config_get("protected-mode").get("protected-mode")
        if protected == "no":
            audit.add("redis_protected_mode_off", target, "warning", "protected mode is off",
                      {"protected-mode": "no"}, "CONFIG SET protected-mode yes, and bind to private addresses")
    except ResponseError as exc:
        audit.not_run.append(f"{target}: protected mode (CONFIG is not available: {exc})")
    # A command renamed to "" (or to a secret name) is gone from the server's command list.
    known = {c.decode().upper() if isinstance(c, bytes) else str(c).upper()
             for c in client.command_list()}
    available = [name for name in DANGEROUS if name in known]
    if available:
        audit.add("redis_dangerous_commands", target, "warning",
                  f"dangerous commands are available: {', '.join(available)}", {"commands": available},
                  "rename-command them to \"\" in redis.conf, or deny them in the ACL (-@dangerous)")
    return audit


# -- S3 --------------------------------------------------------------------------------------------

def s3_bucket(s3, bucket: str, *, holds_backups: bool) -> Audit:
    from botocore.exceptions import ClientError

    audit = Audit()

    def code(exc):
        return exc.response.get("Error", {}).get("Code", "")

    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        open_flags = [k for k, v in block.items() if not v]
    except ClientError as exc:
        if code(exc) == "NoSuchBucket":
            audit.not_run.append(f"s3://{bucket}: the bucket does not exist")
            return audit
        if code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        open_flags = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
    if open_flags:
        audit.add("s3_public_access", f"s3://{bucket}", "warning", "public access is not fully blocked",
                  {"not_blocked": open_flags}, "put_public_access_block with all four settings true")
    try:
        s3.get_bucket_encryption(Bucket=bucket)
    except ClientError as exc:
        if code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        audit.add("s3_no_default_encryption", f"s3://{bucket}", "warning", "no default encryption", {},
                  "put_bucket_encryption with SSE-S3 (AES256) or SSE-KMS")
    if holds_backups and s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        audit.add("s3_backups_unversioned", f"s3://{bucket}", "warning",
                  "the backup bucket keeps no versions: an overwrite or delete loses the backup", {},
                  "put_bucket_versioning Status=Enabled (old versions expire by the lifecycle rules)")
    return audit
