"""Security operators: the daily scan (critical), Tuesday's dependency and certificate
reviews, the monthly posture audit and compliance evidence. Read-only: none changes a system."""

from __future__ import annotations

from maintenance.notify.pages import page_once
from maintenance.operator import MaintenanceOperator


def _dependencies(policy):
    from pathlib import Path

    from maintenance.security import lockfiles

    found = []
    for index, path in enumerate(policy.security.lock_files):
        found += lockfiles.read(Path(path), field=f"security.lock_files[{index}]")
    return found


def _certificates(policy, now):
    from maintenance.security import certs

    c = policy.security.certificates
    return [certs.check(e, now=now, warn_days=c.warn_days, critical_days=c.critical_days, timeout=c.timeout_s)
            for e in c.endpoints]


class SecurityScanOperator(MaintenanceOperator):
    """Daily, critical: vulnerabilities of the lock files' packages (OSV), certificates close to expiry.

    Vulnerabilities of the policy's paging severities, and certificates in their critical band,
    page on-call in one message. A database that cannot be reached fails the task.
    """

    critical = True

    def run(self, run):
        from maintenance import clock
        from maintenance.security import osv

        policy = run.policy
        deps = _dependencies(policy)
        vulnerable = osv.scan(deps, base_url=policy.security.osv_url, timeout=policy.security.http_timeout_s)
        for item in vulnerable:
            d = item.dependency
            self.log.info("%-8s %s %s (%s): %s; fixed in %s", item.severity.upper(), d.name, d.version,
                          d.ecosystem, ", ".join(item.advisories), item.fixed or "no fixed version yet")
            run.ledger.record_finding("vulnerability", d.label, _ledger_severity(item.severity),
                                      f"{', '.join(item.advisories)}; fixed in {item.fixed or 'no release yet'}",
                                      item.as_dict())
        certs = [c for c in _certificates(policy, clock.now()) if c.status != "ok"]
        for cert in certs:
            run.ledger.record_finding("certificate", cert.endpoint, _cert_severity(cert.status),
                                      _cert_message(cert), cert.as_dict())
        paging = [v for v in vulnerable if v.severity in policy.security.page_severities]
        urgent_certs = [c for c in certs if c.status == "critical"]
        pages = page_once(run.ledger, policy, scope="security_scan", context=run.context,
                          title="Security scan: fix now", problems=_problems(paging, urgent_certs))
        self.log.info("Paging: %d open, new %s, reminders %s", pages["open"], pages["paged"] or "none",
                      pages["reminded"] or "none")
        counts = {s: sum(1 for v in vulnerable if v.severity == s) for s in ("critical", "high", "medium", "low",
                                                                             "unknown")}
        return {"packages": len(deps), "vulnerable": [v.as_dict() for v in vulnerable], "counts": counts,
                "certificates": [c.as_dict() for c in certs], "paged": bool(pages["paged"] or pages["reminded"]),
                "pages": pages}

    def describe(self, summary):
        counts = ", ".join(f"{n} {s}" for s, n in summary["counts"].items() if n) or "none vulnerable"
        return (f"{summary['packages']} packages scanned: {counts}"
                + (f"; {len(summary['certificates'])} certificate(s) expiring" if summary["certificates"] else "")
                + ("; on-call paged" if summary["paged"] else ""))


class DependencyReviewOperator(MaintenanceOperator):
    """Weekly: the newest release of every pinned package, as patch (safe), minor (staging) or major
    (manual review), as the procedures sort them (4.1)."""

    def run(self, run):
        from maintenance.security import registry, versions

        policy = run.policy
        sec = policy.security
        rows, unknown = [], []
        for dep in _dependencies(policy):
            newest = registry.latest(dep, pypi_url=sec.pypi_url, npm_url=sec.npm_url, timeout=sec.http_timeout_s)
            if newest is None:
                unknown.append(dep.label)
                continue
            kind = versions.category(dep.version, newest, dep.ecosystem)
            if kind != "none":
                rows.append({"package": dep.name, "ecosystem": dep.ecosystem, "current": dep.version,
                             "latest": newest, "category": kind, "source": dep.source})
        advice = {"patch": "safe to apply", "minor": "test in staging", "major": "manual review"}
        for kind in ("major", "minor", "patch"):
            for row in (r for r in rows if r["category"] == kind):
                self.log.info("%-5s %s %s -> %s (%s)", kind, row["package"], row["current"], row["latest"],
                              advice[kind])
        counts = {k: sum(1 for r in rows if r["category"] == k) for k in ("patch", "minor", "major")}
        if counts["major"]:
            run.ledger.record_finding("dependency_updates", "lock files", "info",
                                      f"{counts['major']} major, {counts['minor']} minor, {counts['patch']} patch "
                                      "updates available", {"counts": counts})
        return {"updates": rows, "counts": counts, "not_in_registry": unknown, "advice": advice}

    def describe(self, summary):
        c = summary["counts"]
        return f"updates: {c['patch']} patch (safe), {c['minor']} minor (staging), {c['major']} major (review)"


class CertificateReviewOperator(MaintenanceOperator):
    """Weekly: every configured endpoint's leaf certificate: expiry, issuer, names."""

    def run(self, run):
        from maintenance import clock

        checked = _certificates(run.policy, clock.now())
        for cert in checked:
            self.log.info("%-11s %s: %s", cert.status, cert.endpoint, _cert_message(cert))
            if cert.status != "ok":
                run.ledger.record_finding("certificate", cert.endpoint, _cert_severity(cert.status),
                                          _cert_message(cert), cert.as_dict())
        return {"certificates": [c.as_dict() for c in checked]}

    def describe(self, summary):
        certs = summary["certificates"]
        bad = [c for c in certs if c["status"] != "ok"]
        return f"{len(certs)} certificates checked, {len(bad)} need attention"


class PostureAuditOperator(MaintenanceOperator):
    """Monthly: PostgreSQL, Redis and S3 settings that weaken security, each finding with its fix."""

    def run(self, run):
        from airflow.providers.redis.hooks.redis import RedisHook

        from maintenance.pgsession import session
        from maintenance.security import posture

        policy = run.policy
        audit = posture.Audit()
        for db in policy.postgres.databases:
            with session(db.conn_id) as conn:
                audit.extend(posture.postgres(conn, db.conn_id))
        client = RedisHook(redis_conn_id=policy.redis.conn_id).get_conn()
        try:
            audit.extend(posture.redis(client, policy.redis.conn_id))
        finally:
            client.close()
        if policy.security.s3_buckets:
            from maintenance.s3files import client

            s3 = client(policy)
            for bucket in policy.security.s3_buckets:
                audit.extend(posture.s3_bucket(s3, bucket, holds_backups=bucket in policy.security.backup_buckets))
        for f in audit.findings:
            self.log.info("%-8s %s %s: %s. Fix: %s", f.severity.upper(), f.check, f.target, f.message, f.fix)
        run.ledger.record_findings(audit.findings)
        for line in audit.not_run:
            self.log.warning("Not run: %s", line)
        return {"findings": [f.as_dict() for f in audit.findings], "not_run": audit.not_run}

    def describe(self, summary):
        findings = summary["findings"]
        critical = sum(1 for f in findings if f["severity"] == "critical")
        return f"{len(findings)} posture findings ({critical} critical), {len(summary['not_run'])} checks not run"


class ComplianceOperator(MaintenanceOperator):
    """Monthly: each control of the policy, passed or failed, with its evidence from the ledger."""

    def run(self, run):
        from maintenance import clock
        from maintenance.security.compliance import evaluate

        policy = run.policy
        results = [evaluate(run.ledger.conn, run.ledger.schema_name, c, now=clock.now(), policy=policy)
                   for c in policy.security.controls]
        for r in results:
            self.log.info("%-4s %s: %s", "PASS" if r["passed"] else "FAIL", r["control"], r["evidence"])
            if not r["passed"]:
                run.ledger.record_finding("compliance", r["control"], "warning", "control not met", r["evidence"])
        return {"controls": results, "passed": sum(r["passed"] for r in results), "total": len(results)}

    def describe(self, summary):
        return f"{summary['passed']} of {summary['total']} compliance controls met"


def _ledger_severity(severity: str) -> str:
    return {"critical": "critical", "high": "warning", "medium": "warning"}.get(severity, "info")


def _cert_severity(status: str) -> str:
    return {"critical": "critical", "warning": "warning", "unreachable": "warning"}.get(status, "info")


def _cert_message(cert) -> str:
    if cert.status == "unreachable":
        return f"unreachable: {cert.error}"
    return f"expires {cert.expires} ({cert.days_left:.0f} days), issuer {cert.issuer}, names {', '.join(cert.names)}"


def _problems(vulnerable, certs) -> dict[str, str]:
    """One page key per vulnerable package version and per certificate about to expire."""
    problems = {}
    for item in vulnerable:
        d = item.dependency
        problems[f"{d.ecosystem}:{d.name}@{d.version}"] = (
            f"{item.severity.upper()} {d.name} {d.version} ({d.ecosystem}): {', '.join(item.advisories)}; "
            f"fixed in {item.fixed or 'no release yet'}")
    for cert in certs:
        problems[f"certificate:{cert.endpoint}"] = f"certificate {cert.endpoint}: {_cert_message(cert)}"
    return problems
