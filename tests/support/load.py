"""Platform load for tests: active users the policy's load probe counts, and a policy that
rechecks and gives up within seconds."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def active_users(db, count: int) -> None:
    """``count`` students in a session that has not ended: what ``decision.load.probe`` counts."""
    db.execute("INSERT INTO learning_sessions (student_id, career_id, created_at) "
               "SELECT g, 1, now() FROM generate_series(1, %s) g", (count,))


def quick_load_policy(tmp_path, monkeypatch, *, threshold=5, recheck_s=1.0, give_up_s=30.0,
                      monitoring: dict | None = None, **postgres) -> None:
    """The project's policy with the load settings above, and ``postgres`` (and ``monitoring``)
    settings replaced."""
    data = yaml.safe_load((ROOT / "include" / "maintenance_policy.yaml").read_text())
    data["decision"]["load"].update(active_users_threshold=threshold, recheck_after_minutes=recheck_s / 60,
                                    give_up_after_minutes=give_up_s / 60)
    data["postgres"].update(postgres)
    data["monitoring"].update(monitoring or {})
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MAINTENANCE_POLICY_FILE", str(path))
