"""The maintenance gate: pure decision rules, then real dag.test() runs through it."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from maintenance import clock
from maintenance.calendar import MaintenanceCalendar
from maintenance.gate.blockers import Facts, TaskProfile, decide, find_blockers
from maintenance.policy import load_policy

from tests.support.airflow_runs import run_dag
from tests.support.emergency import answer_when_asked
from tests.support.load import active_users, quick_load_policy

NY = ZoneInfo("America/New_York")
RULES = {"max_affected_users": 1000, "active_users_threshold": 50000}
CHRISTMAS_EVE = datetime(2026, 12, 24, 12, 0, tzinfo=NY)
ORDINARY_DAY = datetime(2026, 11, 27, 12, 0, tzinfo=NY)
IN_WINDOW = datetime(2026, 12, 6, 3, 0, tzinfo=NY)


@pytest.fixture(scope="module")
def cal():
    return MaintenanceCalendar.from_policy(load_policy())


def kinds(blockers):
    return [b.kind for b in blockers]


def test_critical_work_is_never_blocked(cal):
    facts = Facts(now=CHRISTMAS_EVE, active_users=90000, manual_freeze="incident 42")
    assert find_blockers(TaskProfile(critical=True), facts, cal, **RULES) == []


def test_blackout_freeze_and_load_blockers(cal):
    facts = Facts(now=CHRISTMAS_EVE, active_users=60000, manual_freeze="incident 42")
    found = find_blockers(TaskProfile(), facts, cal, **RULES)
    assert kinds(found) == ["blackout", "manual_freeze", "load"]
    assert "holidays" in found[0].reason and "60,000 active users (> 50,000)" in found[2].reason
    assert decide(found).outcome == "skip"


def test_load_alone_waits_and_threshold_is_exclusive(cal):
    assert decide(find_blockers(TaskProfile(), Facts(ORDINARY_DAY, 50001), cal, **RULES)).outcome == "wait"
    assert decide(find_blockers(TaskProfile(), Facts(ORDINARY_DAY, 50000), cal, **RULES)).outcome == "proceed"


@pytest.mark.parametrize(("profile", "when", "expected"), [
    (TaskProfile(zero_downtime=False, affected_users=1001), ORDINARY_DAY, ["outside_window"]),
    (TaskProfile(zero_downtime=False, affected_users=1000), ORDINARY_DAY, []),
    (TaskProfile(zero_downtime=True, affected_users=10**6), ORDINARY_DAY, []),
    (TaskProfile(zero_downtime=False, affected_users=10**6), IN_WINDOW, []),
])
def test_impact_rule_waits_for_the_window(cal, profile, when, expected):
    assert kinds(find_blockers(profile, Facts(when), cal, **RULES)) == expected


def test_force_lifts_calendar_blockers_only(cal):
    found = find_blockers(TaskProfile(zero_downtime=False, affected_users=5000),
                          Facts(CHRISTMAS_EVE, 10), cal, **RULES)
    forced = decide(found, "CAB-7 approved emergency")
    assert forced.outcome == "proceed" and forced.forced_reason == "CAB-7 approved emergency"
    assert kinds(forced.lifted) == ["blackout", "outside_window"]
    frozen = find_blockers(TaskProfile(), Facts(ORDINARY_DAY, 10, manual_freeze="yes"), cal, **RULES)
    assert decide(frozen, "please").outcome == "skip"
    loaded = find_blockers(TaskProfile(), Facts(ORDINARY_DAY, 60000), cal, **RULES)
    assert decide(loaded, "please").outcome == "wait"
    assert decide(found, "   ").outcome == "skip"  # a blank reason is no reason


# --- real runs through dag.test() ---------------------------------------------------------

@pytest.fixture
def platform(platform_db, slack, airflow_db, monkeypatch):
    """The platform database; its learning_sessions table is what the load probe counts."""
    platform_db.execute("TRUNCATE learning_sessions")
    monkeypatch.delenv("AIRFLOW_VAR_MAINTENANCE_FREEZE", raising=False)
    return platform_db


def at(monkeypatch, instant: datetime) -> None:
    monkeypatch.setattr(clock, "now", lambda: instant.astimezone(UTC))


def test_blackout_skips_routine_work_and_runs_critical(platform, slack, monkeypatch):
    at(monkeypatch, CHRISTMAS_EVE)
    result = run_dag("gate_probe", CHRISTMAS_EVE)
    assert result.states == {"gate": "skipped", "routine_work": "skipped", "critical_work": "success",
                             "gate_window": "skipped", "heavy_work": "skipped", "run_summary": "success"}
    decision = result.xcom("gate", "gate_decision")
    assert decision["outcome"] == "skip" and decision["blockers"][0]["kind"] == "blackout"
    text = slack.messages("#ops-maintenance")[0]["text"]
    assert "Skipped: `routine_work` (gate: in blackout holidays (Holiday season)" in text
    assert "Done: `critical_work`" in text


def test_forced_run_proceeds_and_records_the_reason_when_the_policy_asks_no_approval(platform, monkeypatch,
                                                                                    tmp_path):
    from tests.conftest import use_policy

    use_policy(tmp_path, monkeypatch, emergency={"approval": False})
    at(monkeypatch, CHRISTMAS_EVE)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force_reason": "INC-311 hotfix, CAB ok"})
    assert result.states["routine_work"] == "success" and result.states["heavy_work"] == "success"
    assert result.emergency == "skipped"  # nobody asked: the policy says the reason alone forces
    decision = result.xcom("gate", "gate_decision")
    assert decision["outcome"] == "proceed"
    assert decision["forced_reason"] == "INC-311 hotfix, CAB ok"
    assert [b["kind"] for b in decision["lifted_by_force"]] == ["blackout"]


# --- emergency maintenance: two approvals --------------------------------------------------------

@pytest.fixture
def emergency(platform, tmp_path, monkeypatch):
    """Forced work asks for approval; the gates look again every second."""
    from maintenance.ledger.schema import ensure_schema

    from tests.conftest import use_policy
    from tests.support.airflow_runs import unpause

    use_policy(tmp_path, monkeypatch, emergency={"recheck_seconds": 10})
    unpause("maintenance_emergency_approval")
    with platform.connect() as conn:
        ensure_schema(conn, "maintenance")
    at(monkeypatch, CHRISTMAS_EVE)
    return platform


def test_forced_work_waits_for_the_oncall_lead_and_a_director_then_runs(emergency):
    from maintenance.change.emergency import APPROVAL_DAG

    answer_when_asked(emergency, {"oncall_lead": ("approved", "lead-ann"), "director": ("approved", "dir-bo")},
                      after_a_gate_waits=True)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force_reason": "INC-311 hotfix"})
    assert result.emergency == "success"  # it asked
    # and a gate waited, holding no slot, for the answers (which gate looked first is not ordered)
    assert result.reschedules("gate") + result.reschedules("gate_window") >= 1
    assert result.states["routine_work"] == "success" and result.states["heavy_work"] == "success"
    decision = result.xcom("gate_window", "gate_decision")
    assert decision["emergency"] == {"state": "approved", "said": "emergency maintenance approved by lead-ann "
                                                                  "(on-call lead) and dir-bo (director)"}
    asked = result.xcom("emergency_approval", "trigger_run_id")
    assert asked == f"emergency__gate_probe__{result.run.run_id}"
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=APPROVAL_DAG, run_id=asked).one()
        assert run.conf["reason"] == "INC-311 hotfix" and "blackout holidays" in run.conf["forced_past"]


@pytest.mark.parametrize(("answers", "said"), [
    ({"oncall_lead": ("approved", "lead-ann"), "director": ("rejected", "dir-bo")},
     "emergency maintenance not approved: a director rejected it (dir-bo, "),
    ({"oncall_lead": ("timed_out", None), "director": ("approved", "dir-bo")},
     "emergency maintenance not approved: the on-call lead did not answer in time"),
    ({"oncall_lead": ("approved", "ann"), "director": ("approved", "ann")},
     "emergency maintenance not approved: ann gave both approvals; the on-call lead and a director must be two "
     "people"),
], ids=["rejected", "timed-out", "one-person-twice"])
def test_forced_work_without_both_approvals_is_skipped_saying_why(emergency, answers, said):
    answer_when_asked(emergency, answers)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force_reason": "INC-312"})
    assert result.states["heavy_work"] == "skipped" and result.states["routine_work"] == "skipped"
    assert result.states["critical_work"] == "success"
    assert result.xcom("gate_window", "gate_decision")["emergency"]["said"].startswith(said)


def test_a_paused_approval_dag_fails_the_request_and_the_gates_do_not_wait_for_nobody(emergency):
    from tests.support.airflow_runs import unpause

    unpause("maintenance_emergency_approval", paused=True)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force_reason": "INC-313"})
    assert result.states["emergency_approval"] == "failed" and result.state == "failed"
    assert result.states["heavy_work"] == "skipped" and result.states["critical_work"] == "success"
    assert result.xcom("gate", "gate_decision")["emergency"]["said"] == (
        "emergency maintenance not approved: nobody could be asked (emergency_approval failed: is "
        "maintenance_emergency_approval paused? its log says)")


def test_a_forced_run_with_nothing_in_its_way_asks_nobody(emergency, monkeypatch):
    at(monkeypatch, IN_WINDOW)
    result = run_dag("gate_probe", IN_WINDOW, {"force_reason": "just in case"})
    assert result.emergency == "skipped"
    assert result.states["heavy_work"] == "success" and result.states["routine_work"] == "success"


def test_a_field_the_form_does_not_have_fails_the_gate_naming_it(platform, monkeypatch, slack):
    """A REST caller's {"force": true} (or any typo) is refused by name, not silently ignored."""
    at(monkeypatch, CHRISTMAS_EVE)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force": True})
    assert result.states["gate"] == "failed"
    assert result.states["critical_work"] == "success"
    assert result.states["run_summary"] == "failed"  # the run shows the failure
    (message,) = slack.messages("#ops-maintenance")
    assert ("force: not a field of this DAG's trigger form (to force, give the reason in force_reason)"
            in message["text"])
    assert "/dags/gate_probe/runs/" in message["text"] and "/tasks/gate|log>" in message["text"]
    assert "Skipped: `routine_work` (gate failed)" not in message["text"]  # failed upstream, not skipped
    assert "• Failed: `routine_work` (gate failed)" in message["text"]


def test_an_empty_reason_does_not_force(platform, monkeypatch):
    at(monkeypatch, CHRISTMAS_EVE)
    result = run_dag("gate_probe", CHRISTMAS_EVE, {"force_reason": "   "})
    assert result.states["gate"] == "skipped"
    assert result.xcom("gate", "gate_decision")["lifted_by_force"] == []


def test_a_catch_up_run_after_unpausing_skips_the_gated_work(platform, monkeypatch, slack):
    """Unpausing makes the scheduler run the latest missed time at once: that run does not apply
    gated work nobody asked for; critical work runs."""
    at(monkeypatch, ORDINARY_DAY)
    due = datetime(2026, 11, 1, 0, 0, tzinfo=NY)
    result = run_dag("gate_probe", due, queued_at=ORDINARY_DAY)
    assert result.states["gate"] == "skipped" and result.states["routine_work"] == "skipped"
    assert result.states["critical_work"] == "success"
    (blocker,) = result.xcom("gate", "gate_decision")["blockers"]
    assert blocker["kind"] == "catch_up"
    assert "scheduled for 2026-11-01 00:00 EDT, started 26.5 days late" in blocker["reason"]
    assert "trigger a run to do it now" in slack.messages("#ops-maintenance")[0]["text"]


def test_a_scheduled_run_on_time_is_not_a_catch_up(platform, monkeypatch):
    at(monkeypatch, ORDINARY_DAY)
    result = run_dag("gate_probe", ORDINARY_DAY, queued_at=ORDINARY_DAY + timedelta(minutes=3))
    assert result.states["gate"] == "success" and result.states["routine_work"] == "success"


def test_manual_freeze_switch_holds_work_even_when_forced(platform, monkeypatch):
    at(monkeypatch, ORDINARY_DAY)
    monkeypatch.setenv("AIRFLOW_VAR_MAINTENANCE_FREEZE", "INC-400 database failover in progress")
    result = run_dag("gate_probe", ORDINARY_DAY, {"force_reason": "try anyway"})
    assert result.states["gate"] == "skipped" and result.states["critical_work"] == "success"
    assert "INC-400" in result.xcom("gate", "gate_decision")["blockers"][0]["reason"]


def test_window_gate_proceeds_inside_the_planned_window(platform, monkeypatch):
    at(monkeypatch, IN_WINDOW)
    result = run_dag("gate_probe", IN_WINDOW)
    assert result.states["gate_window"] == "success" and result.states["heavy_work"] == "success"


def test_load_defers_then_proceeds_when_it_drops(platform, monkeypatch, tmp_path):
    at(monkeypatch, ORDINARY_DAY)
    quick_load_policy(tmp_path, monkeypatch, recheck_s=1.0, give_up_s=60)
    active_users(platform, 20)
    threading.Timer(4.0, lambda: platform.execute("UPDATE learning_sessions SET ended_at = now()")).start()
    result = run_dag("gate_probe", ORDINARY_DAY)
    assert result.reschedules("gate") >= 1  # waited in reschedule mode, holding no slot
    assert result.states["gate"] == "success" and result.states["routine_work"] == "success"
    assert result.xcom("gate", "gate_decision")["active_users"] == 0


def test_load_that_persists_is_given_up_as_skipped_not_failed(platform, monkeypatch, tmp_path):
    at(monkeypatch, ORDINARY_DAY)
    quick_load_policy(tmp_path, monkeypatch, recheck_s=1.0, give_up_s=3.0)
    active_users(platform, 20)
    result = run_dag("gate_probe", ORDINARY_DAY)
    assert result.reschedules("gate") >= 1
    assert result.states["gate"] == "skipped" and result.states["routine_work"] == "skipped"
    assert result.states["critical_work"] == "success" and result.state == "success"
    assert "20 active users (> 5)" in result.xcom("gate", "gate_decision")["blockers"][0]["reason"]


def test_the_summary_tells_a_mapped_tasks_instances_from_other_tasks():
    from maintenance.notify.summary import task_and_index

    task_ids = {"reindex", "plan_reindex", "at_0300", "db_statistics"}
    assert task_and_index("reindex_12", task_ids) == ("reindex", 12)
    assert task_and_index("reindex", task_ids) == ("reindex", -1)  # not expanded (no step)
    assert task_and_index("at_0300", task_ids) == ("at_0300", -1)  # a task whose name ends in digits
    assert sorted(task_and_index(n, task_ids) for n in ("reindex_10", "reindex_2")) == [("reindex", 2),
                                                                                      ("reindex", 10)]


def test_alerts_hold_disruptive_work_and_a_silent_alertmanager_is_no_all_clear(cal):
    window = {"max_affected_users": 1000, "active_users_threshold": 50000}
    disruptive = TaskProfile(zero_downtime=False, affected_users=5000)
    firing = Facts(now=IN_WINDOW, firing_alerts=("PostgresDown{severity=critical,system=postgres}",))
    (blocker,) = find_blockers(disruptive, firing, cal, **window)
    assert (blocker.kind, blocker.action, blocker.forceable) == ("alerts", "wait", False)
    assert blocker.reason.startswith("alerts firing: PostgresDown{severity=critical,system=postgres}")
    assert find_blockers(TaskProfile(), firing, cal, **window) == []  # zero-downtime work goes on
    unknown = Facts(now=IN_WINDOW, alerts_unknown="http://am:9093/api/v2/alerts: Connection refused")
    assert kinds(find_blockers(disruptive, unknown, cal, **window)) == ["alerts"]
    assert decide(find_blockers(disruptive, firing, cal, **window), "CAB-1 emergency").outcome == "wait"


def test_the_window_gate_waits_while_a_critical_alert_fires_in_alertmanager(platform, monkeypatch, tmp_path):
    """A real Alertmanager: a critical alert holds the disruptive branch (the routine one goes
    on); once it resolves the gate lets the work through."""
    import json
    import urllib.request

    from devtools import prom

    am = prom.start_alertmanager(tmp_path / "alertmanager")
    try:
        def alert(labels, minutes):
            body = json.dumps([{"labels": labels, "startsAt": datetime.now(UTC).isoformat(),
                                "endsAt": (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()}])
            urllib.request.urlopen(urllib.request.Request(f"{am.url}/api/v2/alerts", data=body.encode(),
                                                          headers={"Content-Type": "application/json"}),
                                   timeout=5).close()

        alert({"alertname": "PostgresDown", "severity": "critical", "system": "postgres"}, 60)
        alert({"alertname": "ApiLatencyHigh", "severity": "warning", "system": "api"}, 60)  # not selected
        at(monkeypatch, IN_WINDOW)
        quick_load_policy(tmp_path, monkeypatch, recheck_s=1.0, give_up_s=90,
                          monitoring={"alertmanager_url": am.url})
        # Resolved (an alert sent again with its end now, as Prometheus does) as soon as the gate
        # has seen it firing once.
        from maintenance.monitoring import firing

        seen = firing.firing

        def firing_then_resolved(*args, **kwargs):
            found = seen(*args, **kwargs)
            if found:
                alert({"alertname": "PostgresDown", "severity": "critical", "system": "postgres"}, 0)
            return found

        monkeypatch.setattr(firing, "firing", firing_then_resolved)
        result = run_dag("gate_probe", IN_WINDOW)
    finally:
        am.stop()
    assert result.reschedules("gate_window") >= 1 and result.reschedules("gate") == 0
    assert result.states["gate_window"] == "success" and result.states["heavy_work"] == "success"
    assert result.states["routine_work"] == "success"
