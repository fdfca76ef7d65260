"""Change management through the DAGs: the monthly DAG runs on the window's day, placed around
blackouts, and the daily calendar review reports months without a window and pages when window
work has waited too long."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.airflow_runs import delete_runs, run_dag, unpause

ALL_BUT = r"^(?!({})$).*"  # mark every other task done: only the named ones run


@pytest.fixture
def change_env(platform_db, slack, airflow_db):
    return platform_db


def test_a_scheduled_run_on_a_sunday_that_is_not_the_window_ends_at_once(change_env):
    # January 2027: the first Sunday (the 3rd) is in the holidays blackout; the window is the 10th.
    sunday_3rd = datetime(2027, 1, 3, 7, tzinfo=UTC)
    result = run_dag("maintenance_monthly", sunday_3rd, queued_at=sunday_3rd)
    assert result.states["months_run_day"] == "success"
    assert {s for t, s in result.states.items() if t != "months_run_day"} == {"skipped"}, result.states
    assert result.xcom("months_run_day", key="outcome") == (
        "not the month's run day (2027-01-03); this month's is 2027-01-10: the planned window, window 2027-01 "
        "(planned maintenance): 2027-01-10 02:00 EST until 2027-01-10 06:00 EST")


def test_the_scheduled_run_on_the_placed_window_goes_ahead(change_env):
    sunday_10th = datetime(2027, 1, 10, 7, tzinfo=UTC)
    result = run_dag("maintenance_monthly", sunday_10th, queued_at=sunday_10th,
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    # Nothing skipped (the mapped de-bloat, its plan marked done without one, cannot expand).
    assert "skipped" not in result.states.values() and result.states["monthly_report"] == "success", result.states
    assert result.xcom("months_run_day", key="outcome").startswith("the month's run: the planned window, window "
                                                                   "2027-01")


def test_a_month_without_a_window_runs_its_reviews_on_the_nominal_day_and_a_person_always_can(change_env):
    april_4th = datetime(2027, 4, 4, 6, tzinfo=UTC)  # the first Sunday of April, 02:00 EDT
    result = run_dag("maintenance_monthly", april_4th, queued_at=april_4th,
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    assert result.states["months_run_day"] == "success" and result.states["monthly_report"] == "success"
    assert "no usable window this month" in result.xcom("months_run_day", key="outcome")
    manual = run_dag("maintenance_monthly", datetime(2027, 1, 3, 7, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("months_run_day"))
    assert manual.states["months_run_day"] == "success" and manual.states["update_review"] == "success"


def test_the_calendar_review_reports_months_without_a_window_and_pages_when_work_is_overdue(change_env, slack):
    # 2 May 2027: the last window was 7 February (84 days, more than max_wait_days 45).
    result = run_dag("maintenance_daily", datetime(2027, 5, 2, 4, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("calendar_review"))
    assert result.states["calendar_review"] == "success"
    summary = result.xcom("calendar_review")
    assert summary["months_without_window"] == ["2027-05", "2027-06"] and summary["days_since_last_window"] == 83
    assert summary["next_window"].startswith("window 2027-07 (planned maintenance): 2027-07-04 02:00 EDT")
    findings = dict(change_env.execute("SELECT check_name || ' ' || target, severity FROM maintenance.findings "
                                       "WHERE run_id = %s", (result.run.run_id,)))
    assert findings == {"no_window 2027-05": "warning", "no_window 2027-06": "warning",
                        "window_overdue planned_window": "critical"}
    (page,) = slack.messages("#ops-oncall")
    assert "Maintenance windows overdue" in page["text"] and "no planned window since 2027-02-07" in page["text"]
    # The next day's review reminds only after the policy's reminder interval: no second page.
    run_dag("maintenance_daily", datetime(2027, 5, 3, 4, tzinfo=UTC),
            mark_success_pattern=ALL_BUT.format("calendar_review"))
    assert len(slack.messages("#ops-oncall")) == 1


# --- the window's notice -------------------------------------------------------------------------

NY_DEC_6_WINDOW = datetime(2026, 12, 6, 7, tzinfo=UTC)  # Sunday 02:00 EST, December's window


def _approval_run(run_id: str):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(DagRun).filter_by(dag_id="maintenance_window_approval", run_id=run_id).one_or_none()
        return None if found is None else dict(found.conf or {})


def _at(monkeypatch, instant: datetime) -> None:
    from maintenance import clock

    monkeypatch.setattr(clock, "now", lambda: instant)


def test_the_notice_goes_out_once_seven_days_ahead_saying_what_will_run(change_env, slack, monkeypatch):
    from maintenance.ledger import notices
    from maintenance.ledger.schema import ensure_schema

    with change_env.connect() as conn:
        ensure_schema(conn, "maintenance")
        conn.execute("DELETE FROM maintenance.window_notices")
        conn.execute("DELETE FROM maintenance.window_approvals")
    unpause("maintenance_window_approval", paused=True)  # as Airflow makes it: paused
    delete_runs("maintenance_window_approval")
    _at(monkeypatch, datetime(2026, 11, 29, 5, tzinfo=UTC))  # the Sunday before, 00:00 EST: 7 days 2 hours ahead
    paused = run_dag("maintenance_daily", datetime(2026, 11, 29, 5, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("window_notice|request_approval"))
    # The approval DAG starts paused: the board would never be asked, so the request fails, loudly.
    assert paused.states["window_notice"] == "success" and paused.states["request_approval"] == "failed"
    unpause("maintenance_window_approval")
    slack.calls.clear()
    change_env.execute("DELETE FROM maintenance.window_notices")
    result = run_dag("maintenance_daily", datetime(2026, 11, 29, 5, tzinfo=UTC),
                     mark_success_pattern=ALL_BUT.format("window_notice|request_approval"))
    summary = result.xcom("window_notice")
    assert summary["sent"] and not summary["late"] and summary["delivered"]
    (told,) = slack.messages("#maintenance-announcements")
    lines = told["text"].splitlines()
    assert lines[0] == ":calendar: *Planned maintenance window Sunday 2026-12-06 02:00-06:00 EST*"
    assert "• kubernetes nodes: not known (" in told["text"]  # no cluster here: said, not fatal
    assert any(li.startswith("Expected duration: ") for li in lines) and any(
        li.startswith("Systems affected: ") for li in lines)
    assert change_env.execute("SELECT window_start, channel, delivered FROM maintenance.window_notices") == [
        (NY_DEC_6_WINDOW, "#maintenance-announcements", True)]
    assert summary["approval_run_id"] == "cab__20261206T0700Z"
    assert result.states["request_approval"] == "success", result.states
    conf = _approval_run("cab__20261206T0700Z")
    assert conf["window_start"] == "2026-12-06T07:00:00+00:00" and conf["notice"].startswith(":calendar: *Planned")
    # The next day: the notice is not sent again; the approval is still undecided, so asked again
    # (the approval run exists: skipped).
    again = run_dag("maintenance_daily", datetime(2026, 11, 30, 5, tzinfo=UTC),
                    mark_success_pattern=ALL_BUT.format("window_notice|request_approval"))
    assert not again.xcom("window_notice")["sent"] and len(slack.messages("#maintenance-announcements")) == 1
    assert again.states["request_approval"] == "skipped"
    with change_env.connect() as conn:
        notices.record_approval(conn, "maintenance", window_start=NY_DEC_6_WINDOW, decision="approved",
                                decided_by="cab", decided_at=datetime(2026, 11, 30, 15, tzinfo=UTC), run_id="x")
    decided = run_dag("maintenance_daily", datetime(2026, 12, 1, 5, tzinfo=UTC),
                      mark_success_pattern=ALL_BUT.format("window_notice|request_approval"))
    assert decided.states["window_notice"] == "skipped" and decided.states["request_approval"] == "skipped"
    assert decided.xcom("window_notice", key="outcome") == (
        "the notice of window 2026-12 (planned maintenance): 2026-12-06 02:00 EST until 2026-12-06 06:00 EST went "
        "out 2026-11-29 00:00 EST; the board approved it")


def _scheduled_window_run(monkeypatch):
    _at(monkeypatch, datetime(2026, 12, 6, 8, tzinfo=UTC))  # 03:00 EST, inside the window
    return run_dag("maintenance_monthly", NY_DEC_6_WINDOW, queued_at=NY_DEC_6_WINDOW,
                   mark_success_pattern=r"^(?!(months_run_day|gate_window)$).*")


def test_a_scheduled_windows_disruptive_work_needs_its_notice_in_time(change_env, slack, monkeypatch):
    from maintenance.ledger import notices

    change_env.execute("DELETE FROM maintenance.window_notices; DELETE FROM maintenance.window_approvals")
    held = _scheduled_window_run(monkeypatch)
    assert held.states["gate_window"] == "skipped"
    (blocker,) = held.xcom("gate_window", key="gate_decision")["blockers"]
    assert blocker["kind"] == "notice" and blocker["reason"].startswith(
        "the notice of window 2026-12 (planned maintenance): 2026-12-06 02:00 EST until 2026-12-06 06:00 EST was "
        "not sent (7 days ahead, procedures 1.1)")
    with change_env.connect() as conn:  # told, but three days ahead only: still held
        notices.record(conn, "maintenance", window_start=NY_DEC_6_WINDOW, window_end=datetime(2026, 12, 6, 11,
                       tzinfo=UTC), sent_at=datetime(2026, 12, 3, 5, tzinfo=UTC), channel="#x", text="late",
                       parts={}, delivered=True, run_id="late")
    late = _scheduled_window_run(monkeypatch)
    assert late.states["gate_window"] == "skipped"
    assert "less than 7 days ahead" in late.xcom("gate_window", key="gate_decision")["blockers"][0]["reason"]
    change_env.execute("UPDATE maintenance.window_notices SET sent_at = '2026-11-29 05:00+00'")
    unapproved = _scheduled_window_run(monkeypatch)  # told in time, but the board has not decided
    assert unapproved.states["gate_window"] == "skipped"
    assert unapproved.xcom("gate_window", key="gate_decision")["blockers"][0]["reason"].startswith(
        "the Change Advisory Board has not approved this window")
    for decision, expected in (("rejected", "skipped"), ("approved", "success")):
        with change_env.connect() as conn:
            notices.record_approval(conn, "maintenance", window_start=NY_DEC_6_WINDOW, decision=decision,
                                    decided_by="cab", decided_at=datetime(2026, 12, 1, 15, tzinfo=UTC), run_id="x")
        told = _scheduled_window_run(monkeypatch)
        assert told.states["gate_window"] == expected, told.xcom("gate_window", key="gate_decision")
    assert "rejected this window (cab, 2026-12-01 10:00 EST)" not in str(told.xcom("gate_window", key="gate_decision"))


# --- the board's approval, in the Airflow UI's API, under a real API server ---------------------------

def _call(url: str, *, method: str = "GET", body=None, token: str | None = None) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _hitl(api: str, token: str, dag_id: str, run_id: str, task_id: str, *, timeout: float = 180) -> dict:
    """The question a human-in-the-loop task asks, once it waits for a person."""
    import time

    task = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    deadline = time.monotonic() + timeout
    while (state := _call(task, token=token))[1].get("state") != "awaiting_input":
        assert time.monotonic() < deadline, state
        time.sleep(2)
    # As a person, who reads the question for a moment: an answer within a fraction of a second
    # of the task pausing races the scheduler's handling of that pause (Airflow 3.3 then runs the
    # task again, and the question is asked twice).
    time.sleep(3)
    found = _call(f"{task}/-1/hitlDetails", token=token)
    assert found[0] == 200, found
    return found[1] | {"url": f"{task}/-1/hitlDetails"}


def _answer(question: dict, token: str, option: str) -> int:
    return _call(question["url"], method="PATCH", body={"chosen_options": [option]}, token=token)[0]


APPROVERS = {"cab-chair": "the Change Advisory Board's chair", "lead-ann": "an on-call lead", "dir-bo": "a director",
             "intruder": "any other admin"}


def test_the_board_and_the_emergency_approvers_answer_in_airflow_and_only_the_people_the_policy_names_can(
        platform_db, slack, tmp_path, monkeypatch):
    import json

    from tests.conftest import ROOT, use_policy
    from tests.support.standalone import cli, standalone, wait_until_finished

    # Every day a blackout: the forced run below needs its two emergency approvals.
    use_policy(tmp_path, monkeypatch, planned_window={"approvers": ["cab-chair"]},
               emergency={"oncall_leads": ["lead-ann"], "directors": ["dir-bo"], "recheck_seconds": 10},
               blackouts=[{"name": "all_year", "start": "01-01", "end": "12-31", "reason": "exam season"}])
    only = tmp_path / "dags"
    only.mkdir()
    for name in ("maintenance_window_approval.py", "maintenance_emergency_approval.py"):
        (only / name).symlink_to(ROOT / "dags" / name)
    (only / "gate_probe.py").symlink_to(ROOT / "tests" / "dags" / "gate_probe.py")
    home = tmp_path / "airflow"
    run_id = "cab__20261206T0700Z"
    with standalone(home, only, ["maintenance_window_approval", "maintenance_emergency_approval", "gate_probe"],
                    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:admin" for u in APPROVERS)) as (
            env, airflow_db):
        api = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        tokens = {user: _call(f"{api}/auth/token", method="POST",
                              body={"username": user, "password": passwords[user]})[1]["access_token"]
                  for user in APPROVERS}
        # The board's approval of a window.
        cli(env, "dags", "trigger", "maintenance_window_approval", "--run-id", run_id, "--conf", json.dumps(
            {"window_start": "2026-12-06T07:00:00+00:00", "notice": "de-bloat platform_db: public.x (repack)"}))
        asked = _hitl(api, tokens["cab-chair"], "maintenance_window_approval", run_id, "cab_approval")
        assert asked["subject"] == "Approve the planned maintenance window of 2026-12-06T07:00:00+00:00"
        assert "public.x (repack)" in asked["body"]
        assert _answer(asked, tokens["intruder"], "Approve") == 403
        assert _answer(asked, tokens["cab-chair"], "Approve") == 200
        # A run forced in the blackout: it asks, its gates wait for both answers, then its work runs.
        cli(env, "dags", "trigger", "gate_probe", "--run-id", "manual__forced", "--conf",
            json.dumps({"force_reason": "INC-77 certificate expiring"}))
        emergency_run = "emergency__gate_probe__manual__forced"
        lead = _hitl(api, tokens["lead-ann"], "maintenance_emergency_approval", emergency_run, "oncall_lead_approval")
        director = _hitl(api, tokens["dir-bo"], "maintenance_emergency_approval", emergency_run, "director_approval")
        assert "INC-77 certificate expiring" in lead["body"] and "blackout all_year" in lead["body"]
        assert _answer(lead, tokens["intruder"], "Approve") == 403
        assert _answer(director, tokens["lead-ann"], "Approve") == 403  # the lead is not a director
        assert _answer(lead, tokens["lead-ann"], "Approve") == 200
        assert _answer(director, tokens["dir-bo"], "Approve") == 200
        cab = wait_until_finished(airflow_db, "maintenance_window_approval", count=1, timeout=180)
        approvals = wait_until_finished(airflow_db, "maintenance_emergency_approval", count=1, timeout=180)
        # (the scheduler may also have made gate_probe's latest scheduled run: only the forced one counts)
        forced = [r for r in wait_until_finished(airflow_db, "gate_probe", count=1, timeout=240)
                  if r[0] == "manual__forced"]
        states = {task: state for task, state in _task_states(airflow_db, "gate_probe", "manual__forced")}
    assert [state for *_, state in cab + approvals + forced] == ["success"] * 3, (cab, approvals, forced)
    assert states["heavy_work"] == states["routine_work"] == states["emergency_approval"] == "success", states
    decided = platform_db.execute("SELECT decision, decided_by, run_id FROM maintenance.window_approvals")
    assert decided == [("approved", "cab-chair", run_id)]
    assert any(m["text"].startswith(":white_check_mark: The planned window of 2026-12-06 02:00 EST is approved by "
                                    "cab-chair") for m in slack.messages("#maintenance-announcements"))
    emergency = platform_db.execute("SELECT role, decision, decided_by, reason, approval_run_id FROM "
                                    "maintenance.emergency_approvals ORDER BY role")
    assert emergency == [("director", "approved", "dir-bo", "INC-77 certificate expiring", emergency_run),
                         ("oncall_lead", "approved", "lead-ann", "INC-77 certificate expiring", emergency_run)]
    assert any("emergency maintenance approved by lead-ann (on-call lead) and dir-bo (director)" in m["text"]
               for m in slack.messages("#ops-oncall"))


def _task_states(db, dag_id: str, run_id: str) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                            (dag_id, run_id)).fetchall()
