"""Friday's documentation review over a git checkout made here and the ledger's incidents."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from maintenance.documentation.review import broken_links
from maintenance.ledger.schema import ensure_schema
from maintenance.ledger.store import open_incident

from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag

FRIDAY = datetime(2026, 12, 4, 6, tzinfo=UTC)


def commit(repo: Path, files: dict[str, str], when: str) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    env = os.environ | {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    subprocess.run(["git", "-C", str(repo), "add", *files], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=ops", "-c", "user.email=ops@pathfinity.test", "commit",
                    "-q", "-m", "docs"], check=True, env=env)


def test_relative_links_to_nothing_are_broken_and_the_rest_are_not(tmp_path):
    (tmp_path / "there.md").write_text("x")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_text("x")
    text = ("[ok](there.md) [anchor ok](there.md#part) ![img](img/a.png) [web](https://example.com/x) "
            "[mail](mailto:ops@pathfinity.test) [here](#top) [gone](gone.md) [gone too](sub/missing.md#x)\n"
            "An example, not a link: `[text](path)`.\n```markdown\n[also](an-example.md)\n```\n")
    assert broken_links(tmp_path / "page.md", text) == ["gone.md", "sub/missing.md#x"]


@pytest.fixture
def docs(tmp_path, platform_db):
    repo = tmp_path / "ops-docs"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    commit(repo, {"architecture.md": "# Architecture\nSee [the runbooks](runbooks/failover.md).\n"},
           "2025-01-10T12:00:00+00:00")
    commit(repo, {"deploy.md": "# Deploying\nSee [rollback](rollback.md) and [failover](runbooks/failover.md).\n"},
           "2026-11-20T12:00:00+00:00")
    (repo / "notes.md").write_text("# Draft, not committed yet\n")
    with platform_db.connect() as conn:
        ensure_schema(conn, "maintenance")
        conn.execute("DELETE FROM maintenance.incidents")
        learned = open_incident(conn, "maintenance", severity="sev2", summary="primary database failover",
                                opened_at=datetime(2026, 11, 25, 3, tzinfo=UTC))
        forgotten = open_incident(conn, "maintenance", severity="sev3", summary="cache evictions",
                                  opened_at=datetime(2026, 11, 28, 3, tzinfo=UTC))
        open_incident(conn, "maintenance", severity="sev4", summary="slow report", opened_at=datetime(
            2026, 11, 30, 3, tzinfo=UTC))  # no cause recorded yet: the post-mortem is due, not the runbook
        conn.execute("UPDATE maintenance.incidents SET cause = 'replica lag' WHERE id IN (%s, %s)",
                     (learned, forgotten))
    commit(repo, {"runbooks/failover.md": f"# Failover\nLearned in INC-{learned}: promote the replica first.\n"},
           "2026-11-26T12:00:00+00:00")
    return repo, learned, forgotten


def test_friday_flags_stale_documents_broken_links_and_incidents_no_runbook_mentions(
        docs, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    repo, _, forgotten = docs
    use_policy(tmp_path, monkeypatch, documentation={
        "folders": [{"path": str(repo)}], "runbooks": {"path": str(repo / "runbooks")}, "stale_after_days": 180})
    result = run_dag("maintenance_weekly", FRIDAY, {"theme": "auto"},
                     mark_success_pattern=r"^friday\.(health_report|post_mortems)$")
    assert result.states["friday.documentation_review"] == "success", result.states
    found = result.xcom("friday.documentation_review")
    assert found["documents"] == 4
    # Committed in January 2025: stale, although the file on disk was written today.
    assert found["stale"] == [str(repo / "architecture.md")]
    assert found["broken_links"] == {str(repo / "deploy.md"): ["rollback.md"]}
    assert [i["incident"] for i in found["incidents_without_runbook"]] == [f"INC-{forgotten}"]
    findings = platform_db.execute("SELECT check_name, target, severity FROM maintenance.findings WHERE run_id = %s "
                                   "ORDER BY check_name", (result.run.run_id,))
    assert findings == [("doc_broken_link", str(repo / "deploy.md"), "warning"),
                        ("doc_stale", str(repo / "architecture.md"), "info"),
                        ("runbook_missing", f"INC-{forgotten}", "warning")]


def test_a_folder_that_is_not_there_names_the_field(platform_db, airflow_db, slack, tmp_path, monkeypatch):
    use_policy(tmp_path, monkeypatch, documentation={"folders": [{"path": str(tmp_path / "nowhere")}]})
    result = run_dag("maintenance_weekly", FRIDAY, {"theme": "friday"},
                     mark_success_pattern=r"^friday\.(health_report|post_mortems)$")
    assert result.states["friday.documentation_review"] == "failed"
    assert ("Failed: `friday.documentation_review` (InputError: documentation.folders[0].path: "
            in slack.messages("#ops-maintenance")[0]["text"])
