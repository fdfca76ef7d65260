"""Vulnerabilities of pinned dependencies from an OSV database (``/v1/querybatch``, ``/v1/vulns``).

Each vulnerable package is reported with its advisory ids, the highest severity found and
the lowest version that fixes every advisory. A database that cannot be reached raises: a
scan that could not ask never reports "no vulnerabilities".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maintenance.security.http import ServiceUnavailable, get_json
from maintenance.security.lockfiles import Dependency

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
_BATCH = 500


@dataclass
class Vulnerable:
    dependency: Dependency
    advisories: list[str] = field(default_factory=list)
    severity: str = "unknown"
    fixed: str | None = None
    summaries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"package": self.dependency.name, "ecosystem": self.dependency.ecosystem,
                "version": self.dependency.version, "source": self.dependency.source,
                "advisories": self.advisories, "severity": self.severity, "fixed": self.fixed,
                "summaries": self.summaries}


def severity_of(advisory: dict) -> str:
    """The advisory's severity: the database's own label (GitHub's), else a CVSS score's band."""
    label = str((advisory.get("database_specific") or {}).get("severity") or "").lower()
    label = {"moderate": "medium"}.get(label, label)
    if label in SEVERITIES:
        return label
    scores = [s for s in (cvss_score(item.get("type", ""), str(item.get("score", "")))
                          for item in advisory.get("severity") or []) if s is not None]
    if not scores:
        return "unknown"
    score = max(scores)  # the worst of the scores the advisory gives
    return "critical" if score >= 9 else "high" if score >= 7 else "medium" if score >= 4 else "low" if score > 0 \
        else "unknown"


def cvss_score(kind: str, score: str) -> float | None:
    """A base score from what OSV gives: a number, or a CVSS v2/v3/v4 vector (OSV's usual form),
    scored with the ``cvss`` library. None when it is neither."""
    try:
        return float(score)
    except ValueError:
        pass
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    vector = score.strip()
    version = CVSS4 if vector.startswith("CVSS:4") else CVSS3 if vector.startswith("CVSS:3") else (
        CVSS2 if kind.upper() == "CVSS_V2" or vector.startswith("AV:") else None)
    if version is None:
        return None
    try:
        scored = version(vector)
    except CVSSError:
        return None
    return float(scored.base_score if version is CVSS4 else scored.scores()[0])


def fixed_version(advisory: dict, dependency: Dependency) -> str | None:
    for affected in advisory.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("name", "").lower() != dependency.name.lower():
            continue
        for rng in affected.get("ranges") or []:
            for event in rng.get("events") or []:
                if "fixed" in event:
                    return event["fixed"]
    return None


def _newest(versions: list[str], ecosystem: str) -> str | None:
    from maintenance.security.versions import sort_key

    return max(versions, key=lambda v: sort_key(v, ecosystem)) if versions else None


def scan(dependencies: list[Dependency], *, base_url: str, timeout: float) -> list[Vulnerable]:
    base = base_url.rstrip("/")
    hits: dict[Dependency, list[str]] = {}
    for start in range(0, len(dependencies), _BATCH):
        chunk = dependencies[start:start + _BATCH]
        answer = get_json(f"{base}/v1/querybatch", timeout=timeout, body={"queries": [
            {"package": {"name": d.name, "ecosystem": d.ecosystem}, "version": d.version} for d in chunk]})
        results = (answer or {}).get("results")
        if results is None or len(results) != len(chunk):
            raise ServiceUnavailable(f"{base}/v1/querybatch: answered {len(results or [])} results for "
                                     f"{len(chunk)} queries")
        for dep, result in zip(chunk, results, strict=True):
            ids = [v["id"] for v in result.get("vulns") or []]
            if ids:
                hits[dep] = ids
    details: dict[str, dict] = {}
    found = []
    for dep, ids in hits.items():
        item = Vulnerable(dep, sorted(ids))
        fixes = []
        for vuln_id in ids:
            if vuln_id not in details:
                details[vuln_id] = get_json(f"{base}/v1/vulns/{vuln_id}", timeout=timeout) or {"id": vuln_id}
            advisory = details[vuln_id]
            sev = severity_of(advisory)
            if SEVERITIES.index(sev) < SEVERITIES.index(item.severity):
                item.severity = sev
            if advisory.get("summary"):
                item.summaries.append(f"{vuln_id}: {advisory['summary']}")
            fix = fixed_version(advisory, dep)
            if fix:
                fixes.append(fix)
        # The version that fixes every advisory is the newest of their fixed versions.
        item.fixed = _newest(fixes, dep.ecosystem) if len(fixes) == len(ids) else None
        found.append(item)
    return sorted(found, key=lambda v: (SEVERITIES.index(v.severity), v.dependency.name))
