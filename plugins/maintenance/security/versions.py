"""Comparing versions and naming the size of an update: patch, minor or major.

Following the procedures (4.1): patches are safe to apply, minors go through staging,
majors need a manual review. Below 1.0 (``0.y.z``) a change of ``y`` is treated as major,
as semver says anything may change there; a pre-release of the same release is a patch.
"""

from __future__ import annotations

import re

_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-.+]?(.*))?$")


def numbers(version: str) -> tuple[int, ...]:
    """The numbers of a version string, in order, to compare loosely: ``v1.30.2`` is (1, 30, 2),
    ``6.1.0-28-cloud-amd64`` is (6, 1, 0, 28)."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _parts(version: str, ecosystem: str) -> tuple[int, int, int, bool]:
    if ecosystem == "PyPI":
        from packaging.version import InvalidVersion, Version

        try:
            v = Version(version)
        except InvalidVersion:
            return _semver(version)
        release = (*v.release, 0, 0)
        return release[0], release[1], release[2], v.is_prerelease
    return _semver(version)


def _semver(version: str) -> tuple[int, int, int, bool]:
    match = _SEMVER.match(version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return int(match[1]), int(match[2] or 0), int(match[3] or 0), bool(match[4])


def sort_key(version: str, ecosystem: str):
    if ecosystem == "PyPI":
        from packaging.version import InvalidVersion, Version

        try:
            return (1, Version(version), ())
        except InvalidVersion:
            pass
    major, minor, patch, pre = _semver(version)
    return (0, (major, minor, patch, not pre), ())


def category(current: str, latest: str, ecosystem: str) -> str:
    """'none', 'patch', 'minor' or 'major' for an update from ``current`` to ``latest``."""
    if sort_key(latest, ecosystem) <= sort_key(current, ecosystem):
        return "none"
    cur, new = _parts(current, ecosystem), _parts(latest, ecosystem)
    if new[0] != cur[0]:
        return "major"
    if new[1] != cur[1]:
        return "major" if cur[0] == 0 else "minor"
    return "patch"
