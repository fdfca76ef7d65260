"""Friday's documentation review (procedures 2.2, 8.1): what is outdated, what is broken, and
which incidents no runbook has learned from.

- A document is *stale* when its last change is older than the policy's limit: the last commit
  that touched it when its folder is a git checkout (one ``git log`` per folder), else the
  file's modification time.
- A relative link that points at no file is *broken*.
- An incident of the last weeks with a recorded cause must be mentioned (``INC-<id>`` or its
  external key) by some runbook: that is where its lesson is kept. One that is not is *missing
  from the runbooks*.

It reads only; the findings go to the ledger and the run summary.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# [text](target) and ![alt](target); the target up to whitespace or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Code is not prose: links shown in fenced blocks or `inline code` are examples, not links.
CODE = re.compile(r"^(```|~~~).*?^\1|`[^`\n]*`", re.MULTILINE | re.DOTALL)


@dataclass
class Document:
    path: str
    changed: str  # ISO time of the last change
    source: str  # git or mtime
    age_days: float
    stale: bool
    broken_links: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def git_last_changes(folder: Path) -> dict[Path, datetime]:
    """Each tracked file's last commit time, in one pass; empty when ``folder`` is not in a checkout."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "log", "--format=@%cI", "--name-only", "--relative", "--",
                              "."], capture_output=True, text=True, timeout=120, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {}
    found: dict[Path, datetime] = {}
    when = None
    for line in out.splitlines():
        if line.startswith("@"):
            when = datetime.fromisoformat(line[1:])
        elif line.strip() and when is not None:
            found.setdefault((folder / line.strip()).resolve(), when)  # newest first: keep the first seen
    return found


def broken_links(path: Path, text: str) -> list[str]:
    broken = []
    for target in LINK.findall(CODE.sub("", text)):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            continue  # a URL, a mailto:, an anchor in the page or a site-absolute path: not a file here
        relative = target.split("#", 1)[0].split("?", 1)[0]
        if relative and not (path.parent / relative).exists():
            broken.append(target)
    return broken


def review_folder(folder: Path, patterns: list[str], *, now: datetime, stale_after_days: float) -> list[Document]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    commits = git_last_changes(folder)
    documents = []
    for path in sorted({p for pattern in patterns for p in folder.rglob(pattern) if p.is_file()}):
        if ".git" in path.relative_to(folder).parts:
            continue
        changed = commits.get(path.resolve())
        source = "git"
        if changed is None:
            changed, source = datetime.fromtimestamp(path.stat().st_mtime, UTC), "mtime"
        age = (now - changed).total_seconds() / 86400
        text = path.read_text(errors="replace")
        documents.append(Document(str(path), changed.isoformat(), source, round(age, 1), age > stale_after_days,
                                  broken_links(path, text)))
    return documents


def incidents_missing_from_runbooks(conn, schema: str, runbooks: list[Path], since: datetime) -> list[dict]:
    """Incidents opened since ``since`` with a recorded cause that no runbook mentions."""
    from psycopg import sql

    texts = "\n".join(p.read_text(errors="replace") for p in runbooks).lower()
    rows = conn.execute(sql.SQL("""
        SELECT id, external_key, severity, summary, cause FROM {}.incidents
        WHERE opened_at >= %s AND cause IS NOT NULL AND NOT planned ORDER BY id""").format(
        sql.Identifier(schema)), (since,)).fetchall()
    missing = []
    for ident, external, severity, summary, cause in rows:
        names = [f"INC-{ident}"] + ([external] if external else [])
        if not any(re.search(rf"(?<![\w-]){re.escape(n.lower())}(?![\w])", texts) for n in names):
            missing.append({"incident": names[-1], "id": ident, "severity": severity, "summary": summary,
                            "cause": cause})
    return missing
