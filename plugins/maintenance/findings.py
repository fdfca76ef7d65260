"""A finding: what a review or audit found about one target, for the ledger and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Finding:
    check: str  # the kind, e.g. hba_trust, ami_outdated
    target: str
    severity: str  # info, warning, critical
    message: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)
