"""Pinned dependencies read from the platform's lock files.

npm ``package-lock.json`` (lockfile versions 1, 2 and 3) and Python requirement or lock
files (``name==version`` lines, as pip-compile and uv write them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from maintenance.errors import InputError

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#\\]+)")


@dataclass(frozen=True)
class Dependency:
    ecosystem: str  # OSV's names: "npm", "PyPI"
    name: str
    version: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.ecosystem}:{self.name}@{self.version}"


def ecosystem_of(path: Path) -> str:
    return "npm" if path.name.endswith(".json") else "PyPI"


def read(path: Path, *, field: str) -> list[Dependency]:
    """The pinned dependencies of one lock file; a missing or unreadable file is an input error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{field}: cannot read {path} ({exc.strerror or exc})") from exc
    if ecosystem_of(path) == "npm":
        return _npm(text, str(path), field)
    found = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()  # PEP 503 normal form
            found[name] = Dependency("PyPI", name, match[2], str(path))
    return sorted(found.values(), key=lambda d: d.name)


def _npm(text: str, source: str, field: str) -> list[Dependency]:
    try:
        lock = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{field}: {source} is not valid JSON ({exc})") from exc
    found = {}
    for where, entry in (lock.get("packages") or {}).items():
        if not where or "version" not in entry or entry.get("link"):
            continue  # the root project, or a workspace link
        name = entry.get("name") or where.rsplit("node_modules/", 1)[-1]
        found[(name, entry["version"])] = Dependency("npm", name, entry["version"], source)
    if not lock.get("packages"):  # lockfile version 1: nested "dependencies"
        stack = list((lock.get("dependencies") or {}).items())
        while stack:
            name, entry = stack.pop()
            if "version" in entry:
                found[(name, entry["version"])] = Dependency("npm", name, entry["version"], source)
            stack.extend((entry.get("dependencies") or {}).items())
    return sorted(found.values(), key=lambda d: (d.name, d.version))
