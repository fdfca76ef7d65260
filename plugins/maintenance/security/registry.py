"""The newest release of a package from its registry (PyPI's JSON API, the npm registry)."""

from __future__ import annotations

from urllib.parse import quote

from maintenance.security.http import get_json
from maintenance.security.lockfiles import Dependency


def latest(dep: Dependency, *, pypi_url: str, npm_url: str, timeout: float) -> str | None:
    if dep.ecosystem == "PyPI":
        answer = get_json(f"{pypi_url.rstrip('/')}/pypi/{quote(dep.name)}/json", timeout=timeout)
        return ((answer or {}).get("info") or {}).get("version")
    answer = get_json(f"{npm_url.rstrip('/')}/{quote(dep.name, safe='@')}", timeout=timeout)
    return ((answer or {}).get("dist-tags") or {}).get("latest")
