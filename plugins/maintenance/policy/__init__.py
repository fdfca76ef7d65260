"""Loading the maintenance policy: one YAML file, validated once, cached by mtime."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from maintenance.policy.model import Policy

DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[3] / "include" / "maintenance_policy.yaml"
POLICY_ENV = "MAINTENANCE_POLICY_FILE"


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message names the file and fields."""


def policy_path() -> Path:
    return Path(os.environ.get(POLICY_ENV) or DEFAULT_POLICY_FILE)


def load_policy(path: str | os.PathLike | None = None) -> Policy:
    """The policy in ``path`` (default: $MAINTENANCE_POLICY_FILE or include/), validated."""
    resolved = Path(path) if path else policy_path()
    try:
        mtime = resolved.stat().st_mtime_ns
    except FileNotFoundError:
        raise PolicyError(f"{resolved}: policy file not found (set {POLICY_ENV})") from None
    return _load(resolved, mtime)


@lru_cache(maxsize=8)
def _load(path: Path, _mtime: int) -> Policy:
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: the policy must be a mapping of sections")
    _include_playbooks(path, raw)
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_describe(path, exc)) from None


def _include_playbooks(path: Path, raw: dict) -> None:
    """``incidents.playbooks`` may name a YAML file: its ``playbooks`` list is validated with the
    policy, as if written there. A relative name is looked for next to the policy file, then in
    the project's ``include/`` (a policy copied elsewhere keeps the shipped playbooks)."""
    import yaml

    incidents = raw.get("incidents")
    if not isinstance(incidents, dict) or not isinstance(incidents.get("playbooks"), str):
        return
    source = path.parent / incidents["playbooks"]
    if not source.exists() and not Path(incidents["playbooks"]).is_absolute():
        source = DEFAULT_POLICY_FILE.parent / incidents["playbooks"]
    try:
        loaded = yaml.safe_load(source.read_text()) or {}
    except FileNotFoundError:
        raise PolicyError(f"{path}: incidents.playbooks: {source} not found") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("playbooks", []), list):
        raise PolicyError(f"{source}: expected a mapping with a list under 'playbooks'")
    incidents["playbooks"] = loaded.get("playbooks", [])


def _describe(path: Path, exc) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s) in the maintenance policy"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against docs/policy.md)"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


__all__ = ["Policy", "PolicyError", "load_policy", "policy_path"]
