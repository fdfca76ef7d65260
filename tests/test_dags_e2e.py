"""Every DAG end to end, as the scheduler would run it, against the real test services.

One platform for the whole module: a PostgreSQL database seeded like the platform (a year of
sessions and metrics, churned tables, 120 students in a session), Redis, moto S3, the local
Slack, a Kubernetes API server (devtools/kube_server.py), an OSV-API server, a Prometheus
API server, a TLS endpoint and a log folder. Each DAG runs on three kinds of date:

- an ordinary date (for the monthly and Kubernetes DAGs, inside the planned window): all
  of its work is done;
- a date in a blackout: gated work is skipped with the blackout as its reason, critical work
  (backups, security) and read-only reviews run;
- a date under load (active students above the policy's threshold): gated work waits, then
  is given up as skipped, never failed; the rest runs.

Every task's outcome is asserted. The tests run in file order: the daily run makes the backup
that Thursday's restore test restores.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import yaml
from maintenance import clock

from devtools import prom
from devtools.kube_objects import deployment, metrics, node, pod, replicaset
from devtools.kube_server import Cluster, kubernetes_connection, start_kube_server
from devtools.osv_server import start_osv_server
from tests.conftest import ROOT, empty_bucket, set_conn
from tests.support.airflow_runs import load_dag, run_dag
from tests.support.forms import ui_conf
from tests.support.tls import make_cert, serve_tls

ORDINARY = datetime(2026, 11, 30, 6, tzinfo=UTC)  # Monday 01:00 EST, no blackout
WINDOW = datetime(2026, 12, 6, 7, tzinfo=UTC)  # the first Sunday of December, 02:00 EST
BLACKOUT = datetime(2026, 12, 21, 6, tzinfo=UTC)  # Monday in the holidays blackout (12-20 to 01-05)
BLACKOUT_WINDOW = datetime(2027, 1, 3, 7, tzinfo=UTC)  # January's first Sunday: window, but blackout
WEEK = {"monday": 30, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4}  # days of Nov 30-Dec 4

WAITS = ("at_0100", "at_0200", "at_0300", "at_0400", "at_0500")
DAILY_GATED = ("gate_logs", "log_rotation", "gate_cache", "cache_optimization", "gate_statistics", "plan_db_statistics",
               "db_statistics")
# Never gated: the critical work and the read-only calendar review.
DAILY_CRITICAL = ("backup", "verify_backup", "security_scan", "calendar_review")
WEEKLY_TASKS = {
    "monday": ("monday.gate", "monday.redis_big_keys", "monday.s3_lifecycle", "monday.cost_review",
               "monday.capacity_review"),
    "tuesday": ("tuesday.patch_review", "tuesday.dependency_review", "tuesday.certificate_review"),
    "wednesday": ("wednesday.gate", "wednesday.bloat_analysis", "wednesday.review", "wednesday.plan_reindex",
                  "wednesday.reindex"),
    "thursday": ("thursday.restore_test", "thursday.alert_review", "thursday.prometheus_housekeeping"),
    "friday": ("friday.health_report", "friday.post_mortems", "friday.documentation_review"),
}
UNGATED = {"monday.cost_review", "monday.capacity_review"}  # read-only: runs in a blackout and under load
MONTHLY_GATED = ("gate_archive", "archive", "partition_planning", "gate_window", "plan_debloat", "debloat",
                 "prometheus_series_deletion")
MONTHLY_READ_ONLY = ("update_review", "security_audit", "compliance", "monthly_report", "months_run_day")
KUBERNETES_GATED = ("gate_pods", "pod_cleanup", "memory_restarts", "gate_window", "node_maintenance")


def states(tasks, state: str) -> dict[str, str]:
    return dict.fromkeys(tasks, state)


def theme_outcome(tasks, *, gate_holds: bool) -> dict[str, str]:
    """A theme's tasks: done, or on a day its gate holds, skipped but for the read-only ones."""
    return {t: "skipped" if gate_holds and t not in UNGATED else "success" for t in tasks}


# --- the platform -------------------------------------------------------------------------------------

# A table and an index left bloated by a delete, statistics fresh: Wednesday rebuilds the index,
# the monthly window the table, each as an instance of the mapped step task.
BLOATED = """
CREATE EXTENSION IF NOT EXISTS pg_repack;
DROP TABLE IF EXISTS public.course_events;
CREATE TABLE public.course_events (id bigint PRIMARY KEY, note text NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO public.course_events SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 60000) g;
CREATE INDEX course_events_note_idx ON public.course_events (note);
DELETE FROM public.course_events WHERE id % 10 < 7;
VACUUM ANALYZE public.course_events;
"""

@pytest.fixture(scope="module")
def platform(platform_db, redis_server, s3, slack_server, pagerduty_server, airflow_db, tmp_path_factory):
    from tests.support.airflow_runs import unpause

    unpause("maintenance_window_approval")  # the daily run asks it for the window's approval
    seed = (ROOT / "include/demo/seed.sql").read_text().replace(":scale", "20000")
    platform_db.script("CREATE EXTENSION IF NOT EXISTS pgstattuple;\n" + seed + BLOATED)
    for bucket in ("pathfinity-backups", "pathfinity-logs", "pathfinity-maintenance"):
        empty_bucket(s3, bucket)
    folder = tmp_path_factory.mktemp("e2e")
    logs = folder / "logs"
    logs.mkdir()
    osv_url, osv = start_osv_server(ROOT / "include/demo/advisories.json")
    alertmanager = prom.start_alertmanager(folder / "alertmanager")
    prometheus = prom.start_prometheus(folder / "prometheus", alertmanager=alertmanager.url,
                                       rule_files=[ROOT / "include/prometheus/platform-rules.yml"])
    cluster = Cluster()
    kube_url, kube = start_kube_server(cluster)
    set_conn("kubernetes_default", kubernetes_connection(kube_url))
    policy = yaml.safe_load((ROOT / "include/maintenance_policy.yaml").read_text())
    policy["logs"]["folders"] = [{"name": "api", "path": str(logs), "retention_days": 0}]
    policy["security"] |= {
        "osv_url": osv_url, "pypi_url": osv_url, "npm_url": osv_url,
        "lock_files": [str(ROOT / "include/demo/package-lock.json"),
                       str(ROOT / "include/demo/requirements-platform.lock")],
        "certificates": policy["security"]["certificates"] | {
            "endpoints": [f"127.0.0.1:{serve_tls(*make_cert(folder, 200))}"]}}
    policy["monitoring"] |= {"prometheus_url": prometheus.url, "alertmanager_url": alertmanager.url}
    policy["monitoring"]["watch"] |= {"minutes": 0.02, "interval_seconds": 0.5}  # seconds, not minutes, here
    policy["kubernetes"]["nodes"] |= {"drain_timeout_minutes": 0.05, "eviction_retry_seconds": 0.05,
                                      "action_timeout_minutes": 0.3, "ready_timeout_minutes": 0.2}
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    loaded = dict(policy, decision=policy["decision"] | {"load": policy["decision"]["load"] | {
        "active_users_threshold": 5, "recheck_after_minutes": 1 / 60, "give_up_after_minutes": 3 / 60}})
    (folder / "loaded.yaml").write_text(yaml.safe_dump(loaded))
    yield {"db": platform_db, "s3": s3, "slack": slack_server, "logs": logs, "cluster": cluster,
           "policy": path, "loaded": folder / "loaded.yaml"}
    for server in (osv, kube):
        server.shutdown()
    prometheus.stop()
    alertmanager.stop()


@pytest.fixture
def at(platform, monkeypatch):
    """Set the clock to an instant and the platform's load; returns the platform."""

    def setter(instant: datetime, *, loaded: bool = False):
        monkeypatch.setattr(clock, "now", lambda: instant)
        monkeypatch.setenv("MAINTENANCE_POLICY_FILE", str(platform["loaded" if loaded else "policy"]))
        monkeypatch.delenv("AIRFLOW_VAR_MAINTENANCE_FREEZE", raising=False)
        db = platform["db"]
        db.execute("UPDATE learning_sessions SET ended_at = now() WHERE ended_at IS NULL")
        if loaded:  # 40 students in a session now: above the loaded policy's threshold of 5
            db.execute("INSERT INTO learning_sessions (student_id, career_id, created_at) "
                       "SELECT g, 1, now() FROM generate_series(1, 40) g")
        (platform["logs"] / "api.log").write_text("GET /api/careers/pool 200 12ms\n" * 2000)
        platform["slack"].calls.clear()
        cluster = platform["cluster"]
        cluster.requests.clear()
        cluster.pods = [pod("evicted", phase="Failed", reason="Evicted", age=600),
                        pod("api-1-a", owner=("ReplicaSet", "api-1"), labels={"app": "api"})]
        cluster.nodes = [node("node-a")]
        cluster.deployments = [deployment("api")]
        cluster.replicasets = [replicaset("api-1", "api")]
        cluster.metrics = [metrics("api-1-a", "web", "500Mi")]  # 98% of its 512Mi limit
        return platform

    yield setter
    platform["db"].execute("UPDATE learning_sessions SET ended_at = now() WHERE ended_at IS NULL")


def summary_text(platform) -> str:
    (message,) = platform["slack"].messages("#ops-maintenance")
    return message["text"]


# --- an ordinary day, and the planned window ------------------------------------------------------------

def form_defaults(dag_id: str) -> dict:
    """The conf the Airflow UI sends when a person triggers ``dag_id`` without changing its form."""
    conf, blocking = ui_conf(load_dag(dag_id))
    assert blocking == [], f"Trigger is disabled until {blocking} are filled"
    return conf


def without_notice(result, *, due: bool) -> dict:
    """The run's states but the window notice's two tasks, checked here: on a day within seven days
    of a window the notice goes out (or has) and the board's approval is asked (its run may exist
    already: skipped); on other days both are skipped."""
    found = dict(result.states)
    notice, request = found.pop("window_notice"), found.pop("request_approval")
    if due:
        assert notice == "success" and request in ("success", "skipped"), (notice, request)
    else:
        assert (notice, request) == ("skipped", "skipped")
    return found


def test_daily_on_an_ordinary_day_does_all_its_work(at):
    platform = at(ORDINARY)
    result = run_dag("maintenance_daily", ORDINARY, form_defaults("maintenance_daily"))
    assert without_notice(result, due=True) == states(WAITS + DAILY_GATED + DAILY_CRITICAL + ("run_summary",),
                                                      "success")
    assert result.xcom("log_rotation")["folders"][0]["uploaded"]
    assert result.xcom("backup")["key"].startswith("postgres/platform_db/2026-11-30/")
    vacuumed = {r["schema"] + "." + r["name"]: r["why"] for r in result.xcom("plan_db_statistics", "summary")["planned"]
                if r["action"] == "vacuum_analyze"}
    assert sorted(t for t, why in vacuumed.items() if why == "on the policy's daily vacuum list") == [
        "public.career_selections", "public.learning_sessions", "public.pathiq_metrics"]
    assert all(state == "success" for state in result.mapped["db_statistics"].values())
    assert "Done: " in summary_text(platform)


@pytest.mark.parametrize("theme", list(WEEKLY_TASKS))
def test_weekly_on_each_weekday_does_that_days_work(at, theme):
    day = datetime(2026, 11 if theme == "monday" else 12, WEEK[theme], 6, tzinfo=UTC)
    platform = at(day)
    result = run_dag("maintenance_weekly", day, form_defaults("maintenance_weekly"))
    others = [t for other, tasks in WEEKLY_TASKS.items() if other != theme for t in tasks]
    assert result.states == (states(WEEKLY_TASKS[theme], "success") | states(others, "skipped")
                             | {"choose_theme": "success", "run_summary": "success"})
    if theme == "thursday":  # the month's first Thursday: the restore test is the DR drill
        assert result.xcom("thursday.restore_test")["drill"] is True
    if theme == "wednesday":  # one task instance per index rebuilt
        assert result.mapped["wednesday.reindex"]["reindex_concurrently public.course_events_note_idx"] == "success"
        assert re.search(r"Done: `wednesday\.reindex\[\d+\]` \(reindex_concurrently public\.course_events_note_idx: ",
                         summary_text(platform))
    # The summary is about this day's work: the other days' tasks are not listed, the run is linked.
    (message,) = [m for m in platform["slack"].messages("#ops-maintenance") if "*maintenance_weekly* run" in m["text"]]
    assert not [t for t in others if f"`{t}`" in message["text"]]
    assert f"skipped, 0 failed (theme: {theme})" in message["text"]
    run_url = f"http://localhost:8080/dags/maintenance_weekly/runs/{quote(result.run.run_id, safe='')}"
    assert f"<{run_url}|{result.run.run_id}>" in message["text"]
    assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark: *maintenance_weekly*")
    assert message["blocks"][-1]["elements"][0]["text"] == f"<{run_url}|Open the run in Airflow>"


def test_monthly_in_the_window_reorganizes_audits_and_reports(at):
    platform = at(WINDOW)
    result = run_dag("maintenance_monthly", WINDOW, {"dry_run": False})
    assert result.states == states(MONTHLY_GATED + MONTHLY_READ_ONLY + ("run_summary",), "success")
    assert result.mapped["debloat"]["repack public.course_events"] == "success"  # one instance per table
    archived = result.xcom("archive")
    planned = {p["source"]: p for p in archived["plan"]}
    moved = {m["source"]: m["rows"] for m in archived["moved"]}
    sessions = planned["public.learning_sessions"]
    assert sessions["rows"] > 0 and moved["public.learning_sessions"] == sessions["rows"]
    assert platform["db"].execute("SELECT count(*) FROM learning_sessions WHERE created_at < %s",
                                  (datetime.fromisoformat(sessions["cutoff"]),)) == [(0,)]


def test_kubernetes_in_the_window_cleans_up_and_reports(at):
    platform = at(WINDOW)
    result = run_dag("maintenance_kubernetes", WINDOW, {"dry_run": False})
    assert result.states == states((*KUBERNETES_GATED, "hygiene", "run_summary"), "success")
    assert sorted(platform["cluster"].mutations) == [("DELETE", "/api/v1/namespaces/web/pods/evicted"),
                                                     ("PATCH", "/apis/apps/v1/namespaces/web/deployments/api")]


@pytest.mark.parametrize("dag_id", ["maintenance_monthly", "maintenance_kubernetes"])
def test_a_destructive_dag_triggered_with_its_forms_defaults_plans_and_changes_nothing(at, dag_id):
    platform = at(WINDOW)
    before = platform["db"].execute("SELECT count(*) FROM learning_sessions")
    result = run_dag(dag_id, WINDOW, form_defaults(dag_id))
    assert result.state == "success" and "failed" not in result.states.values(), result.states
    assert platform["cluster"].mutations == []
    assert platform["db"].execute("SELECT count(*) FROM learning_sessions") == before
    assert platform["db"].execute("SELECT DISTINCT outcome FROM maintenance.actions WHERE run_id = %s AND outcome "
                                  "NOT IN ('planned', 'skipped')", (result.run.run_id,)) == []


def test_the_incident_form_opens_an_incident_with_its_defaults_and_a_summary(at):
    at(ORDINARY)
    result = run_dag("maintenance_incident", ORDINARY, form_defaults("maintenance_incident")
                     | {"summary": "checkout errors for 12 minutes"})
    # Typed by hand with no alert labels: no playbook matches (said in Slack); nothing to write yet.
    assert result.states == {"record_incident": "success", "run_playbook": "success", "post_mortem": "skipped"}


# --- a blackout ----------------------------------------------------------------------------------------

def test_daily_in_a_blackout_runs_only_the_critical_work(at):
    platform = at(BLACKOUT)
    result = run_dag("maintenance_daily", BLACKOUT)
    assert without_notice(result, due=False) == (states(DAILY_GATED, "skipped")
                                                 | states(DAILY_CRITICAL + WAITS + ("run_summary",), "success"))
    text = summary_text(platform)
    assert "Skipped: `log_rotation`" in text and "Holiday season" in text


@pytest.mark.parametrize(("theme", "gated"), [("monday", True), ("tuesday", False), ("wednesday", True),
                                              ("thursday", False), ("friday", False)])
def test_weekly_in_a_blackout_skips_gated_days_and_keeps_reviews_and_restore_tests(at, theme, gated):
    at(BLACKOUT)
    result = run_dag("maintenance_weekly", BLACKOUT, {"theme": theme})
    others = [t for other, tasks in WEEKLY_TASKS.items() if other != theme for t in tasks]
    assert result.states == (theme_outcome(WEEKLY_TASKS[theme], gate_holds=gated)
                             | states(others, "skipped") | {"choose_theme": "success", "run_summary": "success"})
    if gated:
        assert result.xcom(f"{theme}.gate", "gate_decision")["blockers"][0]["kind"] == "blackout"


def test_monthly_in_a_blackout_skips_reorganization_but_audits(at):
    at(BLACKOUT_WINDOW)
    result = run_dag("maintenance_monthly", BLACKOUT_WINDOW, {"dry_run": False})
    assert result.states == (states(MONTHLY_GATED, "skipped") | states(MONTHLY_READ_ONLY, "success")
                             | {"run_summary": "success"})


def test_kubernetes_in_a_blackout_only_reports(at):
    platform = at(datetime(2026, 12, 27, 7, tzinfo=UTC))
    result = run_dag("maintenance_kubernetes", datetime(2026, 12, 27, 7, tzinfo=UTC), {"dry_run": False})
    assert result.states == states(KUBERNETES_GATED, "skipped") | {"hygiene": "success", "run_summary": "success"}
    assert platform["cluster"].mutations == []


def test_a_forced_run_with_a_reason_does_the_work_once_approved_and_records_why(at):
    from tests.support.airflow_runs import unpause
    from tests.support.emergency import answer_when_asked

    platform = at(BLACKOUT)
    unpause("maintenance_emergency_approval")
    answer_when_asked(platform["db"], {"oncall_lead": ("approved", "lead-ann"), "director": ("approved", "dir-bo")})
    result = run_dag("maintenance_daily", BLACKOUT, {"force_reason": "disk filling up on web-1"})
    assert result.emergency == "success"  # a blackout: the on-call lead and a director were asked
    assert without_notice(result, due=False) == states(
        WAITS + DAILY_GATED + DAILY_CRITICAL + ("emergency_approval", "run_summary"), "success")
    reasons = platform["db"].execute("SELECT DISTINCT forced_reason FROM maintenance.task_runs WHERE run_id = %s "
                                     "AND task_id = 'plan_db_statistics'", (result.run.run_id,))
    assert reasons == [("disk filling up on web-1",)]


# --- under load ----------------------------------------------------------------------------------------

def test_daily_under_load_gives_up_the_gated_work_and_runs_the_critical(at):
    platform = at(datetime(2026, 12, 1, 5, tzinfo=UTC), loaded=True)
    result = run_dag("maintenance_daily", datetime(2026, 12, 1, 5, tzinfo=UTC))
    assert without_notice(result, due=True) == (states(DAILY_GATED, "skipped")
                                                | states(DAILY_CRITICAL + WAITS + ("run_summary",), "success"))
    assert result.reschedules("gate_statistics") >= 1  # it waited, holding no worker slot, then gave up
    assert "active users (> 5)" in result.xcom("gate_statistics", "gate_decision")["blockers"][0]["reason"]
    assert "Skipped: `db_statistics`" in summary_text(platform)


@pytest.mark.parametrize("theme", ["monday", "wednesday", "thursday"])
def test_weekly_under_load_defers_the_gated_days_only(at, theme):
    at(datetime(2026, 12, 2, 6, tzinfo=UTC), loaded=True)
    result = run_dag("maintenance_weekly", datetime(2026, 12, 2, 6, tzinfo=UTC), {"theme": theme})
    gated = theme != "thursday"
    others = [t for other, tasks in WEEKLY_TASKS.items() if other != theme for t in tasks]
    assert result.states == (theme_outcome(WEEKLY_TASKS[theme], gate_holds=gated)
                             | states(others, "skipped") | {"choose_theme": "success", "run_summary": "success"})


def test_monthly_under_load_in_the_window_leaves_the_data_alone(at):
    platform = at(WINDOW, loaded=True)
    before = platform["db"].execute("SELECT count(*) FROM learning_sessions")
    result = run_dag("maintenance_monthly", WINDOW, {"dry_run": False})
    assert result.states == (states(MONTHLY_GATED, "skipped") | states(MONTHLY_READ_ONLY, "success")
                             | {"run_summary": "success"})
    assert platform["db"].execute("SELECT count(*) FROM learning_sessions") == before


def test_kubernetes_under_load_in_the_window_only_reports(at):
    platform = at(WINDOW, loaded=True)
    result = run_dag("maintenance_kubernetes", WINDOW, {"dry_run": False})
    assert result.states == states(KUBERNETES_GATED, "skipped") | {"hygiene": "success", "run_summary": "success"}
    assert platform["cluster"].mutations == []

