"""Thursday's alert rule review against a real Prometheus (and Alertmanager) whose history the
test wrote itself (promtool tsdb create-blocks-from openmetrics), so every score is known."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from maintenance.monitoring import alerts
from maintenance.security.http import ServiceUnavailable

from devtools import prom, servers
from tests.conftest import use_policy
from tests.support.airflow_runs import run_dag

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "include" / "prometheus" / "platform-rules.yml"
STEP = 15  # seconds between two evaluations, as Prometheus writes ALERTS
NOW = datetime.now(UTC).replace(microsecond=0)
# ApiErrorRateHigh fired ten times in the week, three minutes each; the fourth firing came
# during an incident, so it was real: nine false positives of ten.
API_FIRINGS = [NOW - timedelta(days=7) + timedelta(hours=15 * n) for n in range(10)]
INCIDENT = (API_FIRINGS[3] - timedelta(minutes=10), API_FIRINGS[3] + timedelta(minutes=50))
# PostgresConnectionsHigh fired for 6 of the last 60 minutes.
PG_FIRING = NOW - timedelta(minutes=40)


def _alert(name: str, start: datetime, minutes: float, **labels) -> list[str]:
    tags = ",".join(f'{k}="{v}"' for k, v in {"alertname": name, "alertstate": "firing", **labels}.items())
    first = int(start.timestamp())
    return [f"ALERTS{{{tags}}} 1 {first + i * STEP}" for i in range(int(minutes * 60 / STEP))]


def history() -> str:
    lines = ["# TYPE ALERTS gauge"]
    for start in API_FIRINGS:
        lines += _alert("ApiErrorRateHigh", start, 3, severity="warning", system="api")
    lines += _alert("PostgresConnectionsHigh", PG_FIRING, 6, severity="warning", system="postgres",
                    instance="db:9187")
    # The disk of db never went below 34% free over the month: DiskSpaceLow (< 10%) never fired.
    lines += ["# TYPE node_filesystem_avail_bytes gauge"]
    lines += [f'node_filesystem_avail_bytes{{instance="db",fstype="ext4"}} {int(1e9 * (34 + (n % 40)))} '
              f"{int((NOW - timedelta(days=29) + timedelta(hours=6 * n)).timestamp())}" for n in range(116)]
    lines += ["# TYPE node_filesystem_size_bytes gauge"]
    lines += [f'node_filesystem_size_bytes{{instance="db",fstype="ext4"}} {int(100e9)} '
              f"{int((NOW - timedelta(days=29) + timedelta(hours=6 * n)).timestamp())}" for n in range(116)]
    return "\n".join(lines + capacity_history() + availability_history()) + "\n# EOF\n"


# The platform's health check failed twice in the week: 12 minutes three days ago, 3 minutes a day ago.
PROBE_DOWN = [(NOW - timedelta(days=3), 12), (NOW - timedelta(days=1), 3)]


def availability_history() -> list[str]:
    lines = ["# TYPE probe_success gauge"]
    start = NOW - timedelta(days=7)
    for minute in range(7 * 24 * 60):
        at = start + timedelta(minutes=minute)
        down = any(begin <= at < begin + timedelta(minutes=length) for begin, length in PROBE_DOWN)
        lines.append(f'probe_success{{job="platform-health",instance="https://app"}} {0 if down else 1} '
                     f"{int(at.timestamp())}")
    return lines


PROMETHEUS_HOMES: dict[str, Path] = {}  # the stack's Prometheus by its URL: its data folder, for snapshots
WEEK_START = NOW - timedelta(days=7) + timedelta(minutes=4)  # the last sample a minute before NOW


def _series(name: str, labels: dict, value, *, step_minutes: int = 5) -> list[str]:
    """A sample every ``step_minutes`` over the last week; ``value(t)`` with t the fraction of it."""
    tags = ",".join(f'{k}="{v}"' for k, v in labels.items())
    count = 7 * 24 * 60 // step_minutes
    return [f"{name}{{{tags}}} {value(n / count):.6g} "
            f"{int((WEEK_START + timedelta(minutes=step_minutes * n)).timestamp())}" for n in range(count)]


def capacity_history() -> list[str]:
    """A week of what the capacity review reads: api's memory grows 500 -> 800 MB (a leak), the
    worker's stays at 300 MB; api is throttled in 40% of its periods; connections grow from 40 to
    70 of 100; requests at 100/s with 0.5% errors and a p95 near 0.3 s."""
    api = {"namespace": "platform", "pod": "api-1", "container": "api"}
    worker = {"namespace": "platform", "pod": "worker-1", "container": "worker"}
    seconds = 7 * 86400
    lines = ["# TYPE container_memory_working_set_bytes gauge"]
    lines += _series("container_memory_working_set_bytes", api, lambda t: (500 + 300 * t) * 2**20)
    lines += _series("container_memory_working_set_bytes", worker, lambda t: 300 * 2**20)
    lines += ["# TYPE kube_pod_container_status_restarts_total unknown"]
    lines += _series("kube_pod_container_status_restarts_total", api, lambda t: 0 if t < 0.5 else 2)
    counters = ("container_cpu_cfs_periods_total", "container_cpu_usage_seconds_total",
                "container_cpu_cfs_throttled_periods_total")
    lines += [f"# TYPE {name} unknown" for name in counters]
    lines += _series("container_cpu_cfs_periods_total", api, lambda t: 10 * seconds * t)
    lines += _series("container_cpu_cfs_throttled_periods_total", api, lambda t: 4 * seconds * t)
    lines += _series("container_cpu_usage_seconds_total", api, lambda t: 1.5 * seconds * t)
    lines += _series("container_cpu_usage_seconds_total", worker, lambda t: 0.2 * seconds * t)
    lines += ["# TYPE pg_stat_activity_count gauge", "# TYPE pg_settings_max_connections gauge"]
    lines += _series("pg_stat_activity_count", {"instance": "db:9187"}, lambda t: 40 + 30 * t)
    lines += _series("pg_settings_max_connections", {"instance": "db:9187"}, lambda t: 100)
    lines += ["# TYPE legacy_requests_total unknown"]  # what an old exporter left: deleted in the window
    lines += _series("legacy_requests_total", {"job": "old", "path": "/a"}, lambda t: 1000 * t, step_minutes=60)
    lines += _series("legacy_requests_total", {"job": "old", "path": "/b"}, lambda t: 10 * t, step_minutes=60)
    lines += ["# TYPE http_requests_total unknown", "# TYPE http_request_duration_seconds_bucket unknown"]
    lines += _series("http_requests_total", {"code": "200"}, lambda t: 99.5 * seconds * t)
    lines += _series("http_requests_total", {"code": "500"}, lambda t: 0.5 * seconds * t)
    for le, share in (("0.1", 0.5), ("0.25", 0.9), ("0.5", 0.99), ("1", 1.0), ("+Inf", 1.0)):
        lines += _series("http_request_duration_seconds_bucket", {"le": le}, lambda t, s=share: 100 * s * seconds * t)
    return lines


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Alertmanager, and Prometheus with the platform's rules, its TSDB holding the history above."""
    root = tmp_path_factory.mktemp("monitoring")
    prom.write_history(root / "prometheus" / "data", history())
    alertmanager = prom.start_alertmanager(root / "alertmanager")
    # It scrapes itself, and an exporter that is not there (a scrape target down).
    prometheus = prom.start_prometheus(root / "prometheus", rule_files=[RULES], alertmanager=alertmanager.url,
                                       scrape={"redis": [f"127.0.0.1:{servers.free_port()}"]}, scrape_interval="1s")
    PROMETHEUS_HOMES[prometheus.url] = root / "prometheus"
    yield prometheus.url, alertmanager.url
    prometheus.stop()
    alertmanager.stop()


def weekly_task(db, theme: str, task: str, when: datetime, *, others: str):
    """One weekday theme's ``task`` run through the weekly DAG (``others`` of the theme marked
    done): the run, and the task's findings as 'check target' -> message."""
    result = run_dag("maintenance_weekly", when, {"theme": theme}, mark_success_pattern=rf"^{theme}\.({others})$")
    assert result.states[f"{theme}.{task}"] == "success", result.states
    findings = dict(db.execute("SELECT check_name || ' ' || target, message FROM maintenance.findings "
                               "WHERE run_id = %s AND task_id = %s", (result.run.run_id, f"{theme}.{task}")))
    return result, findings


def review(url: str, **overrides) -> dict:
    settings = {"now": NOW, "lookback_days": 30, "false_positive_minutes": 5, "noisy_false_positive_rate": 0.3,
                "incidents": [INCIDENT], "silences": {}, "timeout": 10, "rules_text": RULES.read_text(),
                "rules_path": "include/prometheus/platform-rules.yml"} | overrides
    found = alerts.review(url, **settings)
    return found | {"by_rule": {r["rule"]: r for r in found["rules"]}}


def test_episodes_and_false_positives_come_from_prometheus_history(stack):
    found = review(stack[0])
    api = found["by_rule"]["ApiErrorRateHigh"]
    assert len(api["episodes"]) == 10 and [e["minutes"] for e in api["episodes"]] == [3.0] * 10
    assert api["false_positives"] == 9 and api["false_positive_rate"] == 0.9
    assert api["episodes"][3]["why"].startswith("an incident was open")
    assert found["noisy"] == ["ApiErrorRateHigh"]
    # An alert fires only after its `for:` (5m); the false positives lasted 3 more minutes: 9m.
    assert api["proposal"].startswith("for: 9m (was 5m): 9 of 10 firings were over within 3 min")
    assert "-        for: 5m\n+        for: 9m\n" in api["patch"] and api["check"] == "ok"
    assert "ApiErrorRateHigh" not in found["never_fired"] and "PostgresConnectionsHigh" not in found["never_fired"]


def test_an_alert_firing_six_minutes_of_sixty_reads_a_tenth(stack):
    found = review(stack[0], lookback_days=1 / 24)
    pg = found["by_rule"]["PostgresConnectionsHigh"]
    assert pg["firing_share"] == pytest.approx(0.1, abs=0.005)
    assert [e["minutes"] for e in pg["episodes"]] == [6.0]


def test_rules_that_never_fired_get_a_threshold_at_what_their_expression_reached(stack):
    found = review(stack[0])
    assert set(found["never_fired"]) == {"PostgresDown", "RedisDown", "RedisMemoryHigh", "ApiLatencyHigh",
                                         "DiskSpaceLow", "PostgresIdleInTransaction"}
    disk = found["by_rule"]["DiskSpaceLow"]
    assert disk["observed"] == pytest.approx(0.34)  # the least free share of the month
    assert disk["proposal"].startswith("threshold 0.34: the furthest its expression reached in 30 days")
    assert '{fstype!="tmpfs"}) < 0.34\n' in disk["patch"] and disk["check"] == "ok"
    # `redis_up == 0` and `a > x and b > 0` are not one threshold: no patch that changes their meaning.
    assert found["by_rule"]["RedisDown"]["patch"] == "" and found["by_rule"]["RedisMemoryHigh"]["patch"] == ""
    assert found["by_rule"]["RedisMemoryHigh"]["proposal"].startswith("no proposal")


def test_a_silence_in_alertmanager_makes_a_short_firing_no_false_positive(stack):
    _, alertmanager = stack
    body = json.dumps({"matchers": [{"name": "alertname", "value": "ApiErrorRateHigh", "isRegex": False,
                                     "isEqual": True}],
                       "startsAt": datetime.now(UTC).isoformat(), "endsAt": (NOW + timedelta(hours=1)).isoformat(),
                       "createdBy": "test", "comment": "maintenance"}).encode()
    request = urllib.request.Request(f"{alertmanager}/api/v2/silences", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        silence_id = json.loads(answer.read())["silenceID"]
    silences = alerts.silences_for(alertmanager, 5)
    (start, end, found_id), = silences["ApiErrorRateHigh"]
    assert found_id == silence_id and end > NOW
    episode = alerts.judge(start + timedelta(minutes=1), start + timedelta(minutes=3), max_minutes=5,
                           incidents=[], silences=silences["ApiErrorRateHigh"])
    assert not episode.false_positive and episode.why == f"silenced ({silence_id})"


def test_an_unreachable_prometheus_fails_clearly():
    with pytest.raises(ServiceUnavailable, match="/api/v1/rules"):
        alerts.review(f"http://127.0.0.1:{servers.free_port()}", now=NOW, lookback_days=7, false_positive_minutes=5,
                      noisy_false_positive_rate=0.3, incidents=[], silences={}, timeout=2)


def test_thursday_review_through_the_dag(stack, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    from maintenance import clock

    prometheus, alertmanager = stack
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus, "alertmanager_url": alertmanager})
    monkeypatch.setattr(clock, "now", lambda: NOW)
    from maintenance.ledger.schema import ensure_schema

    with platform_db.connect() as conn:
        conn.autocommit = True
        ensure_schema(conn, "maintenance")
    platform_db.execute("DELETE FROM maintenance.incidents WHERE summary = 'api errors (alert review test)'")
    platform_db.execute("INSERT INTO maintenance.incidents (severity, summary, opened_at, resolved_at) "
                        "VALUES ('sev3', 'api errors (alert review test)', %s, %s)", INCIDENT)
    before = RULES.read_text()
    result = run_dag("maintenance_weekly", datetime(2026, 11, 26, 6, tzinfo=UTC), {"theme": "thursday"},
                     mark_success_pattern=r"^thursday\.restore_test$")
    assert result.states["thursday.alert_review"] == "success", result.states
    findings = platform_db.execute("SELECT check_name, target, message, evidence->>'check' FROM maintenance.findings "
                                   "WHERE run_id = %s AND check_name LIKE 'alert_rule%%' ORDER BY 1, 2",
                                   (result.run.run_id,))
    assert [(c, t) for c, t, *_ in findings] == [
        ("alert_rule_never_fired", name) for name in
        ("ApiLatencyHigh", "DiskSpaceLow", "PostgresDown", "PostgresIdleInTransaction", "RedisDown",
         "RedisMemoryHigh")] + [
        ("alert_rule_noisy", "ApiErrorRateHigh")]
    noisy = findings[-1]
    assert noisy[2].startswith("9 of 10 firings in 30 days were false positives (90%); proposed for: 9m")
    assert noisy[3] == "ok"
    assert RULES.read_text() == before  # nothing rewritten without a person


# --- maintenance silences itself, and only itself ------------------------------------------------------

def _post_alerts(alertmanager: str, *label_sets: dict) -> None:
    body = json.dumps([{"labels": labels, "startsAt": datetime.now(UTC).isoformat(),
                        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat()} for labels in label_sets])
    request = urllib.request.Request(f"{alertmanager}/api/v2/alerts", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def _alert_states(alertmanager: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts", timeout=5) as answer:
        return {a["labels"]["alertname"]: a["status"]["state"] for a in json.loads(answer.read())}


def _ours(alertmanager: str) -> list[dict]:
    with urllib.request.urlopen(f"{alertmanager}/api/v2/silences", timeout=5) as answer:
        return [s for s in json.loads(answer.read()) if s["createdBy"] == "pathfinity-maintenance"]


@pytest.fixture
def silencing_run(stack, platform_db, tmp_path, monkeypatch):
    """A run whose policy knows the stack's Alertmanager, with a real ledger; returns a maker."""
    from types import SimpleNamespace

    from maintenance.form import RunForm
    from maintenance.ledger.schema import ensure_schema
    from maintenance.ledger.store import Ledger, TaskKey
    from maintenance.policy import load_policy
    from maintenance.run import Run

    use_policy(tmp_path, monkeypatch, monitoring={"alertmanager_url": stack[1]})
    conn = platform_db.connect()
    conn.autocommit = True
    ensure_schema(conn, "maintenance")
    for silence in _ours(stack[1]):  # each test starts with none of ours active
        if silence["status"]["state"] == "active":
            urllib.request.urlopen(urllib.request.Request(f"{stack[1]}/api/v2/silence/{silence['id']}",
                                                          method="DELETE"), timeout=5).close()

    def make(*, dry_run=False, run_id="r-silence", try_number=1) -> Run:
        key = TaskKey("maintenance_monthly", "debloat", run_id, try_number=try_number, map_index=0, dry_run=dry_run)
        ledger = Ledger(conn, "maintenance", key)
        ledger.start_task()
        ti = SimpleNamespace(dag_id=key.dag_id, run_id=key.run_id, task_id=key.task_id)
        return Run({"ti": ti}, load_policy(), RunForm(), ledger, dry_run)

    yield make
    conn.close()


def test_a_disruptive_step_silences_its_systems_alerts_and_no_others_then_expires_it(stack, silencing_run):
    _, alertmanager = stack
    _post_alerts(alertmanager,
                 {"alertname": "PgSlow", "system": "postgres", "severity": "warning"},
                 {"alertname": "PostgresDown", "system": "postgres", "severity": "critical"},
                 {"alertname": "RedisSlow", "system": "redis", "severity": "warning"})
    run = silencing_run()
    with run.step("postgres", "platform_db:public.packed", "repack", expected_seconds=120) as act:
        silence = act.plan["silence"]
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while _alert_states(alertmanager)["PgSlow"] != "suppressed" and datetime.now(UTC) < deadline:
            time.sleep(0.1)
        assert _alert_states(alertmanager) == {"PgSlow": "suppressed", "PostgresDown": "active",
                                               "RedisSlow": "active"}
        (made,) = [s for s in _ours(alertmanager) if s["id"] == silence]
        assert made["status"]["state"] == "active" and "platform_db:public.packed repack [" in made["comment"]
        ends = datetime.fromisoformat(made["endsAt"].replace("Z", "+00:00"))
        assert timedelta(minutes=16) < ends - datetime.now(UTC) <= timedelta(minutes=17)  # 2 min + 15 margin
    assert act.plan["silence_expired"] is True
    assert {s["id"]: s["status"]["state"] for s in _ours(alertmanager)}[silence] == "expired"


def test_the_silence_ends_with_a_failed_step_and_a_dry_run_or_a_light_step_makes_none(stack, silencing_run):
    _, alertmanager = stack
    run = silencing_run(run_id="r-fail")
    with pytest.raises(RuntimeError, match="repack failed"):
        with run.step("postgres", "platform_db:public.packed", "repack") as act:
            raise RuntimeError("repack failed")
    assert [s["status"]["state"] for s in _ours(alertmanager) if s["id"] == act.plan["silence"]] == ["expired"]
    for maker, action in ((silencing_run(dry_run=True, run_id="r-dry"), "repack"),
                          (silencing_run(run_id="r-light"), "analyze")):
        with maker.step("postgres", "platform_db:public.packed", action) as act:
            assert "silence" not in act.plan
    assert not [s for s in _ours(alertmanager) if s["status"]["state"] == "active"]


def test_a_crashed_steps_silence_is_expired_by_the_next_step_and_a_live_ones_is_left(stack, silencing_run):
    from maintenance.monitoring import silences

    _, alertmanager = stack
    crashed = silencing_run(run_id="r-crash", try_number=1)
    step = crashed.step("postgres", "platform_db:public.packed", "repack")
    act = step.__enter__()  # the worker dies here: the step never ends
    left = act.plan["silence"]
    other = silencing_run(run_id="r-other")  # a live step on another table keeps its silence
    live = other.step("postgres", "platform_db:public.other", "repack")
    live_act = live.__enter__()
    retry = silencing_run(run_id="r-crash", try_number=2)  # start_task closes try 1 as interrupted
    with retry.step("postgres", "platform_db:public.packed", "repack") as again:
        states = {s["id"]: s["status"]["state"] for s in _ours(alertmanager)}
        assert states[left] == "expired" and states[again.plan["silence"]] == "active"
        assert states[live_act.plan["silence"]] == "active"
    live.__exit__(None, None, None)
    assert not silences.ours_active(alertmanager, timeout=5)


def test_an_unreachable_alertmanager_lets_the_step_run_and_says_so(silencing_run, tmp_path, monkeypatch):
    use_policy(tmp_path, monkeypatch, monitoring={"alertmanager_url": f"http://127.0.0.1:{servers.free_port()}",
                                                  "http_timeout_s": 2})
    ran = []
    with silencing_run(run_id="r-down").step("postgres", "platform_db:public.packed", "repack") as act:
        ran.append(True)
    assert ran == [True] and "silence" not in act.plan and "Connection refused" in act.plan["silence_error"]


# --- Prometheus housekeeping ---------------------------------------------------------------------------

def _wait_for_scrapes(prometheus: str) -> None:
    from maintenance.monitoring import housekeeping

    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while not housekeeping.unhealthy_targets(prometheus, timeout=5) and datetime.now(UTC) < deadline:
        time.sleep(0.5)


def _tsdb_with_cardinality(prometheus: str) -> dict:
    """The TSDB's status once Prometheus has counted its head's series by metric: it caches those
    counts for 30 s, so just after it starts they can be empty."""
    from maintenance.monitoring import housekeeping

    deadline = datetime.now(UTC) + timedelta(seconds=90)
    while not (status := housekeeping.tsdb(prometheus, timeout=5))["by_metric"] and datetime.now(UTC) < deadline:
        time.sleep(2)
    return status


def test_targets_down_series_and_every_dashboard_panel_are_checked(stack, tmp_path):
    from maintenance.monitoring import housekeeping

    prometheus, _ = stack
    _wait_for_scrapes(prometheus)
    (down,) = housekeeping.unhealthy_targets(prometheus, timeout=5)
    assert down["job"] == "redis" and down["health"] == "down" and "connection refused" in down["last_error"]
    status = _tsdb_with_cardinality(prometheus)
    assert status["series"] > 0 and status["by_metric"][0][1] >= status["by_metric"][-1][1]
    assert housekeeping.growth(150, 100) == pytest.approx(0.5) and housekeeping.growth(150, None) is None
    boards = tmp_path / "grafana"
    boards.mkdir()
    (boards / "platform.json").write_text((ROOT / "include/grafana/platform.json").read_text())
    (boards / "ops.json").write_text(json.dumps({"title": "Ops", "panels": [
        {"title": "Scrapes", "targets": [{"refId": "A", "expr": "up"}]},
        {"title": "Typo", "targets": [{"refId": "A", "expr": "rate(up[5m]"}]}]}))
    found = {(p["file"], p["panel"]): housekeeping.ask(prometheus, p["expr"], now=datetime.now(UTC), timeout=5)
             for p in housekeeping.panels(boards)}
    assert found[("ops.json", "Scrapes")] == "ok"
    assert found[("ops.json", "Typo")].startswith("error: ") and "parse error" in found[("ops.json", "Typo")]
    # The shipped dashboard: nested rows' panels found; nothing scraped here gives them data.
    assert found[("platform.json", "Redis memory used")] == "no data"
    assert {panel for file, panel in found if file == "platform.json"} == {
        "PostgreSQL up", "Connections used (share of max_connections)", "Redis memory used", "Redis hit ratio",
        "API error ratio", "API p95 latency"}
    assert all(status in ("ok", "no data") for (file, _), status in found.items() if file == "platform.json")


def test_thursday_housekeeping_through_the_dag(stack, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    from maintenance.ledger.schema import ensure_schema

    prometheus, _ = stack
    _wait_for_scrapes(prometheus)
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus})
    with platform_db.connect() as conn:
        conn.autocommit = True
        ensure_schema(conn, "maintenance")
    # A week ago Prometheus held 10 series: whatever it holds now is growth to report.
    platform_db.execute("DELETE FROM maintenance.metrics WHERE system = 'prometheus'")
    platform_db.execute("INSERT INTO maintenance.metrics (dag_id, task_id, run_id, system, target, name, value, "
                        "recorded_at) VALUES ('maintenance_weekly', 'thursday.prometheus_housekeeping', 'earlier', "
                        "'prometheus', %s, 'head_series', 10, now() - interval '7 days')", (prometheus,))
    result, findings = weekly_task(platform_db, "thursday", "prometheus_housekeeping",
                                   datetime(2026, 11, 26, 6, tzinfo=UTC), others=r"restore_test|alert_review")
    assert any(k.startswith("scrape_target_down redis 127.0.0.1:") for k in findings)
    assert "tsdb_series_growth " + prometheus in findings
    assert "dashboard_panel_no_data platform.json: API error ratio" in findings
    summary = result.xcom("thursday.prometheus_housekeeping")
    assert summary["tsdb"]["growth"] > 0.2 and len(summary["panels"]) == 6


def test_the_platforms_rules_pass_promtool_check_and_their_own_tests():
    import subprocess

    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "platform-rules.test.yml"], cwd=RULES.parent,
                           capture_output=True, text=True, check=False)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr
    assert alerts.check_rules(RULES.read_text().replace("for: 5m", "for: 5 minutes", 1)).startswith("Checking")


def test_after_a_disruptive_step_the_watch_pages_a_regression_naming_the_step(stack, silencing_run, slack, tmp_path,
                                                                            monkeypatch):
    """The stack's Prometheus scrapes itself (up) and an exporter that is not there (down): a
    check on every target's `up` is a regression after the step; a check on Prometheus's own holds."""
    prometheus, alertmanager = stack
    _wait_for_scrapes(prometheus)
    checks = [{"name": "every target up", "query": "min(up)", "below": 1},
              {"name": "prometheus up", "query": 'min(up{job="prometheus"})', "below": 1}]
    use_policy(tmp_path, monkeypatch, monitoring={
        "prometheus_url": prometheus, "alertmanager_url": alertmanager,
        "watch": {"minutes": 0.05, "interval_seconds": 1, "by_system": {"postgres": checks}}})
    run = silencing_run(run_id="r-watch")
    with run.step("postgres", "platform_db:public.packed", "repack") as act:
        pass
    watched = act.plan["watch"]
    assert watched["rounds"] >= 2 and list(watched["breaches"]) == ["every target up"]
    assert act.plan["silence_expired"] is True  # the silence ended before the watch began
    (page,) = slack.messages("#ops-oncall")
    assert page["text"].startswith(":rotating_light: *Regression after repack of platform_db:public.packed*")
    assert "every target up: 0 (limit < 1; min(up))" in page["text"] and "prometheus up" not in page["text"]
    with silencing_run(run_id="r-watch-light").step("postgres", "platform_db:public.packed", "analyze") as light:
        pass
    assert "watch" not in light.plan  # a light step is not watched
    with pytest.raises(RuntimeError), silencing_run(run_id="r-watch-fail").step(
            "postgres", "platform_db:public.packed", "repack") as failed:
        raise RuntimeError("repack failed")
    assert "watch" not in failed.plan  # a failed step fails the task; there is nothing to watch


# --- Monday's performance and capacity review ------------------------------------------------------------

def test_leaks_throttling_service_levels_and_headroom_from_a_weeks_history(stack, tmp_path):
    from maintenance.monitoring import capacity
    from maintenance.policy.monitoring import Resource, ServiceLevel

    prometheus, _ = stack
    (leak,) = capacity.leak_suspects(prometheus, now=NOW, days=7, growth=0.2, timeout=10)
    assert leak["container"] == "platform/api-1/api" and leak["growth"] == pytest.approx(0.6, abs=0.03)
    assert leak["restarts"] == 2  # the worker's steady 300 MB is no suspect
    assert capacity.throttled(prometheus, now=NOW, fraction=0.25, timeout=10) == [
        {"container": "platform/api-1/api", "throttled": 0.4}]
    hot = capacity.hotspots(prometheus, now=NOW, top=2, timeout=10)
    assert [(h["container"], h["cores"]) for h in hot] == [("platform/api-1/api", 1.5),
                                                           ("platform/worker-1/worker", 0.2)]
    levels = {s["name"]: s for s in capacity.service_levels(prometheus, [
        ServiceLevel(name="p95", query="histogram_quantile(0.95, sum by (le) "
                                       "(rate(http_request_duration_seconds_bucket[1h])))", max=0.5),
        ServiceLevel(name="errors", query='sum(rate(http_requests_total{code=~"5.."}[1h])) / '
                                          "sum(rate(http_requests_total[1h]))", max=0.001),
        ServiceLevel(name="throughput", query="sum(rate(http_requests_total[1h]))", min=50)], now=NOW, timeout=10)}
    assert levels["p95"]["value"] == pytest.approx(0.3, abs=0.1) and not levels["p95"]["missed"]
    assert levels["errors"]["value"] == pytest.approx(0.005, rel=0.05) and levels["errors"]["missed"]
    assert levels["throughput"]["value"] == pytest.approx(100, rel=0.02) and not levels["throughput"]["missed"]
    (connections, missing) = capacity.headroom(prometheus, [
        Resource(name="connections", used="sum(pg_stat_activity_count)", limit="max(pg_settings_max_connections)"),
        Resource(name="redis memory", used="sum(redis_memory_used_bytes)", limit="sum(redis_memory_max_bytes)")],
        now=NOW, days=7, timeout=10)
    assert connections["share"] == pytest.approx(0.7, abs=0.01)
    assert connections["days_left"] == pytest.approx(7, abs=0.5)  # 30 more of 100 at 30 a week
    assert missing["note"] == "no data"
    bundles = tmp_path / "dist"
    bundles.mkdir()
    (bundles / "app.js").write_bytes(b"x" * (1024 * 1024 + 1))
    (bundles / "vendor.css").write_bytes(b"x" * 1000)
    assert capacity.big_bundles(bundles, max_bytes=1024 * 1024) == [{"file": "app.js", "bytes": 1024 * 1024 + 1}]


def test_monday_capacity_review_through_the_dag(stack, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    from maintenance import clock

    prometheus, _ = stack
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus})
    monkeypatch.setattr(clock, "now", lambda: NOW)
    _, findings = weekly_task(platform_db, "monday", "capacity_review", datetime(2026, 11, 30, 6, tzinfo=UTC),
                              others=r"gate|redis_big_keys|s3_lifecycle|cost_review")
    assert findings["memory_leak_suspect platform/api-1/api"].startswith("working set +6")
    assert "cpu_throttling platform/api-1/api" in findings
    assert findings["capacity_headroom postgres connections"].startswith("70% used (70 of 100); runs out in 7")
    assert not any(k.startswith("service_level_missed") for k in findings)  # p95 0.3 s, 0.5% errors: on target


def test_unused_recordings_slow_ones_and_heavy_metrics_nobody_reads(stack):
    from maintenance.monitoring import housekeeping

    prometheus, _ = stack
    rules = housekeeping.recording_rules(prometheus, timeout=5)
    assert {r["name"] for r in rules if r["type"] == "recording"} == {
        "pathfinity:pg_connections:ratio", "pathfinity:http_errors:ratio5m"}
    panels = [p["expr"] for p in housekeeping.panels(ROOT / "include/grafana")]
    used = housekeeping.rule_and_metric_use(rules, panels)
    assert housekeeping.unused_recordings(rules, used, slow_seconds=1) == ([], [])  # both read by alerts
    extra = [*rules, {"name": "job:orphan:sum", "type": "recording", "group": "g", "query": "sum(up)", "seconds": 2.5}]
    unused, slow = housekeeping.unused_recordings(extra, housekeeping.rule_and_metric_use(extra, panels),
                                                  slow_seconds=1)
    assert [r["name"] for r in unused] == [r["name"] for r in slow] == ["job:orphan:sum"]
    counts = [("container_memory_working_set_bytes", 5000), ("http_request_duration_seconds_bucket", 9000),
              ("pg_up", 3000), ("prometheus_tsdb_head_series", 4000), ("rarely_seen", 10)]
    (heavy,) = housekeeping.unused_heavy_metrics(counts, used, min_series=1000)  # read by no rule, no panel
    assert heavy["metric"] == "container_memory_working_set_bytes" and "action: drop" in heavy["proposal"]
    # On the real TSDB's head: whatever it proposes, nothing reads.
    real = housekeeping.unused_heavy_metrics(_tsdb_with_cardinality(prometheus)["by_metric"], used, min_series=1)
    assert real and not {h["metric"] for h in real} & used


def test_series_are_deleted_in_the_window_after_a_snapshot_and_only_what_the_policy_selects(
        stack, platform_db, airflow_db, slack, tmp_path, monkeypatch):
    from zoneinfo import ZoneInfo

    from maintenance import clock
    from maintenance.monitoring import tsdb_admin

    prometheus, _ = stack
    in_window = datetime(2026, 12, 6, 3, 0, tzinfo=ZoneInfo("America/New_York"))
    monkeypatch.setattr(clock, "now", lambda: in_window)
    others = (r"^(gate_archive|archive|partition_planning|(plan_)?debloat|update_review|security_audit|compliance"
              r"|monthly_report)$")
    assert tsdb_admin.series_count(prometheus, "legacy_requests_total", timeout=5) == 2
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus, "delete_series": [
        "legacy_requests_total"], "max_series_deleted_per_run": 1})
    capped = run_dag("maintenance_monthly", in_window, {"dry_run": False}, mark_success_pattern=others)
    assert capped.states["prometheus_series_deletion"] == "failed"
    assert "the selectors select 2 series, the cap is 1" in capped.xcom("prometheus_series_deletion", "outcome")
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": prometheus, "delete_series": [
        "legacy_requests_total"]})
    dry = run_dag("maintenance_monthly", in_window, {"dry_run": True}, mark_success_pattern=others)
    assert dry.xcom("prometheus_series_deletion")["planned"] == {"legacy_requests_total": 2}
    assert tsdb_admin.series_count(prometheus, "legacy_requests_total", timeout=5) == 2  # a dry run deletes nothing
    done = run_dag("maintenance_monthly", in_window, {"dry_run": False}, mark_success_pattern=others)
    assert done.states["prometheus_series_deletion"] == "success", done.states
    summary = done.xcom("prometheus_series_deletion")
    assert summary["deleted"] == {"legacy_requests_total": 2}
    assert tsdb_admin.series_count(prometheus, "legacy_requests_total", timeout=5) == 0
    assert tsdb_admin.series_count(prometheus, "container_memory_working_set_bytes", timeout=5) == 2  # the rest stays
    snapshots = list((PROMETHEUS_HOMES[prometheus] / "data" / "snapshots").iterdir())
    assert [p.name for p in snapshots] == [summary["snapshot"]] and any(snapshots[0].iterdir())  # blocks kept
    recorded = platform_db.execute("SELECT action, outcome, rows_affected FROM maintenance.actions WHERE run_id = %s "
                                   "AND system = 'prometheus' ORDER BY seq", (done.run.run_id,))
    assert recorded == [("tsdb_snapshot", "applied", None), ("delete_series", "applied", 2)]


def test_availability_from_the_probe_series_counts_its_down_minutes(stack):
    from maintenance.monitoring.availability import downtime, query_range
    from maintenance.policy.incidents import Availability

    url, _ = stack
    settings = Availability(query='min(probe_success{job="platform-health"})', step_seconds=60)
    found = downtime(url, settings, start=NOW - timedelta(days=7), end=NOW - timedelta(minutes=2))
    lengths = [round((b - a).total_seconds() / 60) for a, b in found["spans"]]
    assert lengths == [12, 3], found["spans"]
    assert [abs((a - begin).total_seconds()) < 60 for (a, _), (begin, _) in zip(found["spans"], PROBE_DOWN,
                                                                               strict=True)] == [True, True]
    with pytest.raises(ValueError, match=r"incidents\.availability\.query: returns 2 series; aggregate it"):
        query_range(url, 'probe_success or label_replace(probe_success, "x", "y", "", "")',
                    start=NOW - timedelta(hours=1), end=NOW, step=60)


def test_the_weekly_report_counts_the_probes_downtime_with_no_incident(stack, platform_db, airflow_db, slack, s3,
                                                                       tmp_path, monkeypatch):
    url, _ = stack
    use_policy(tmp_path, monkeypatch, monitoring={"prometheus_url": url},
               incidents={"availability": {"query": 'min(probe_success{job="platform-health"})'}})
    result, _ = weekly_task(platform_db, "friday", "health_report", NOW, others="post_mortems|documentation_review")
    k = result.xcom("friday.health_report")["kpis"]
    assert k["probe_down_minutes"] == pytest.approx(15, abs=1)
    assert platform_db.execute("SELECT count(*) FROM maintenance.incidents WHERE outage") == [(0,)]
    assert k["unplanned_downtime_minutes"] == pytest.approx(15, abs=1) and k["uptime_pct"] < 99.9
