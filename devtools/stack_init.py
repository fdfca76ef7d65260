"""One-time set-up of an Airflow installation for the maintenance DAGs.

What the compose stack's `airflow-init` service and `make celery` run before the components
start, so both come up the same way:

- the secrets every component must share (the JWT secret that signs task tokens, the API's
  secret key, the Fernet key of stored connections) written once into ``airflow.cfg`` and kept:
  a component with a secret of its own refuses the others' tokens ("Signature verification
  failed");
- the users who log in (simple auth manager): the admin, and every approver the policy names
  (``planned_window.approvers``, ``emergency.oncall_leads``, ``emergency.directors``) with the
  role that may answer an approval; passwords kept in the passwords file, the admin's from
  ``_AIRFLOW_WWW_USER_PASSWORD`` when set, others made once;
- the metadata database migrated;
- the pools the DAGs run in (a task whose pool is missing is never scheduled);
- the connections of a connections file imported when there is one, then every connection the
  policy names checked: the missing ones are listed by name, with the systems that need them.

    python -m devtools.stack_init            # AIRFLOW_HOME / AIRFLOW_CONFIG say where
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

ADMIN_ROLE, APPROVER_ROLE = "admin", "user"  # "user" may answer a human-in-the-loop task


def config_path() -> Path:
    if os.environ.get("AIRFLOW_CONFIG"):
        return Path(os.environ["AIRFLOW_CONFIG"])
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "airflow.cfg"


def users_of(policy, admin: str) -> dict[str, str]:
    """Every user who must be able to log in, with their role: the admin and the policy's approvers."""
    users = {admin: ADMIN_ROLE}
    for name in [*policy.planned_window.approvers, *policy.emergency.oncall_leads, *policy.emergency.directors]:
        users.setdefault(name, APPROVER_ROLE)
    return users


def write_config(path: Path, users: dict[str, str], passwords_file: Path) -> None:
    """Keep what the file holds; add the shared secrets it lacks and the users."""
    from cryptography.fernet import Fernet

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(path)
    for section, key, make in (("api_auth", "jwt_secret", lambda: secrets.token_urlsafe(32)),
                               ("api", "secret_key", lambda: secrets.token_urlsafe(32)),
                               ("core", "fernet_key", lambda: Fernet.generate_key().decode())):
        if not cfg.has_section(section):
            cfg.add_section(section)
        if not cfg.get(section, key, fallback=""):
            cfg.set(section, key, make())
    cfg.set("core", "simple_auth_manager_users", ",".join(f"{u}:{r}" for u, r in users.items()))
    cfg.set("core", "simple_auth_manager_passwords_file", str(passwords_file))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        cfg.write(handle)
    path.chmod(0o600)


def write_passwords(path: Path, users: dict[str, str], admin: str, admin_password: str | None) -> dict[str, str]:
    """The passwords file the simple auth manager reads: kept passwords stay, new users get one."""
    known = json.loads(path.read_text()) if path.exists() else {}
    passwords = {user: known.get(user) or secrets.token_urlsafe(12) for user in users}
    if admin_password:
        passwords[admin] = admin_password
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords, indent=2) + "\n")
    path.chmod(0o600)
    return passwords


def required_connections(policy) -> dict[str, set[str]]:
    """Every Airflow connection id the policy names, with the policy fields that name it."""
    found: dict[str, set[str]] = {}

    def walk(value, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{where}.{key}" if where else key
                if isinstance(item, str) and item and (key == "conn_id" or key.endswith("_conn_id")
                                                       or where == "connections"):
                    found.setdefault(item, set()).add(here)
                else:
                    walk(item, here)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(item, f"{where}[{n}]")

    walk(policy.model_dump(), "")
    return found


def airflow(*args: str) -> subprocess.CompletedProcess:
    """An `airflow` command of this interpreter's installation (a venv's, or the image's)."""
    command = shutil.which("airflow", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")])) or "airflow"
    return subprocess.run([command, *args], capture_output=True, text=True, check=False, timeout=600)


def defined_connections() -> set[str]:
    listed = airflow("connections", "list", "--output", "json")
    if listed.returncode != 0:
        raise RuntimeError(f"airflow connections list failed: {listed.stderr[-2000:]}")
    start = listed.stdout.find("[")
    stored = {c["conn_id"] for c in json.loads(listed.stdout[start:])} if start >= 0 else set()
    from_env = {k.removeprefix("AIRFLOW_CONN_").lower() for k in os.environ if k.startswith("AIRFLOW_CONN_")}
    return stored | from_env


def must(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def init(*, connections_file: Path | None = None, say=print) -> list[str]:
    """Set the installation up; returns the connection ids the policy names that are missing."""
    from maintenance.dagkit import required_pools
    from maintenance.policy import load_policy

    policy = load_policy()
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    admin = os.environ.get("_AIRFLOW_WWW_USER_USERNAME") or "admin"
    users = users_of(policy, admin)
    passwords_file = Path(os.environ.get("MAINTENANCE_PASSWORDS_FILE")
                          or config_path().parent / "simple_auth_manager_passwords.json")
    write_config(config_path(), users, passwords_file)
    write_passwords(passwords_file, users, admin, os.environ.get("_AIRFLOW_WWW_USER_PASSWORD"))
    say(f"users: {', '.join(f'{u} ({r})' for u, r in users.items())}; passwords in {passwords_file}")
    must(airflow("db", "migrate"), "airflow db migrate")
    say("metadata database migrated")
    pools = home / "pools.json"
    pools.write_text(json.dumps(required_pools(), indent=2))
    must(airflow("pools", "import", str(pools)), "airflow pools import")
    say(f"pools: {', '.join(required_pools())}")
    if connections_file and connections_file.exists():
        must(airflow("connections", "import", "--overwrite", str(connections_file)), "airflow connections import")
        say(f"connections imported from {connections_file}")
    needed = required_connections(policy)
    missing = sorted(set(needed) - defined_connections())
    for conn_id in missing:
        fields = sorted(needed[conn_id])
        named = ", ".join(fields[:3]) + (f" and {len(fields) - 3} more" if len(fields) > 3 else "")
        say(f"connection {conn_id!r} is not defined (named by {named}): the tasks that use it fail until it is")
    return missing


def main() -> int:
    connections = os.environ.get("MAINTENANCE_CONNECTIONS_FILE")
    init(connections_file=Path(connections) if connections else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
