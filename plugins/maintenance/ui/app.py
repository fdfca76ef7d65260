"""The "Maintenance calendar" page on Airflow's API server, behind Airflow's own login.

Mounted by ``plugins/maintenance_calendar.py`` at ``/maintenance-calendar`` and shown in the
UI's navigation (an external view rendered inside the Airflow UI). Whoever is not signed in to
Airflow, or whom Airflow's auth manager does not let see the website, is sent to Airflow's
login page. Read-only: the ledger session is read-only and time-limited, and the DAGs' runs are
read from Airflow's own tables, never changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

app = FastAPI(title="Pathfinity maintenance: calendar",
              description="Blackouts, windows, notices and approvals, scheduled runs and the gate, the ledger, KPIs.")
MAX_RUNS_PER_DAG = 1000


async def signed_in_user(request: Request):
    """The Airflow user of this request (its bearer token, else the UI's session cookie), if
    Airflow's auth manager lets them see the website; None otherwise."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    try:
        user = await resolve_user_from_token(token)
    except HTTPException:
        return None
    return user if get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user) else None


def airflow_schedules(start: datetime, end: datetime) -> tuple[dict[str, list[datetime]], dict[str, bool]]:
    """Each scheduled maintenance DAG's run times in ``[start, end]``, from its timetable as the
    scheduler knows it (the serialized DAG), and whether it is paused."""
    from airflow.models import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.timetables.base import TimeRestriction
    from airflow.utils.session import create_session
    from sqlalchemy import select

    schedules, paused = {}, {}
    with create_session() as session:
        for model in session.scalars(select(DagModel).where(DagModel.is_stale.is_(False))).unique():
            if "maintenance" not in {tag.name for tag in model.tags}:
                continue
            dag = SerializedDagModel.get_dag(model.dag_id, session=session)
            if dag is None or not dag.timetable.can_be_scheduled:
                continue
            restriction, times = TimeRestriction(earliest=start, latest=end, catchup=True), []
            info = dag.timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
            while info is not None and info.run_after <= end and len(times) < MAX_RUNS_PER_DAG:
                times.append(datetime.fromisoformat(info.run_after.isoformat()))
                info = dag.timetable.next_dagrun_info(last_automated_data_interval=info.data_interval,
                                                      restriction=restriction)
            schedules[model.dag_id], paused[model.dag_id] = times, bool(model.is_paused)
    return schedules, paused


def build_page(policy, days: int):
    """The page's data, from the policy, Airflow's DAGs and the ledger (the calendar is shown even when
    the ledger cannot be reached: the page says so)."""
    from maintenance import clock
    from maintenance.pgsession import session
    from maintenance.ui.calendar_data import collect

    now = clock.now()
    schedules, paused = airflow_schedules(now, now + timedelta(days=days))

    def read_only(conn) -> None:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET statement_timeout = '20s'")

    try:
        with session(policy.connections.ledger, setup=read_only) as conn:
            return collect(policy, conn, now=now, schedules=schedules, paused=paused, days=days)
    except Exception as exc:  # the ledger is down or not there: the calendar still shows
        reason = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        return collect(policy, None, now=now, schedules=schedules, paused=paused, days=days, ledger_error=reason)


@app.get("/", response_class=HTMLResponse)
async def calendar_page(request: Request, days: int = Query(90, ge=7, le=400)):
    import asyncio

    from maintenance.policy import load_policy
    from maintenance.ui.calendar_html import render

    user = await signed_in_user(request)
    if user is None:
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    policy = load_policy()  # read on every request: a changed policy shows at once
    page = await asyncio.to_thread(build_page, policy, days)
    return HTMLResponse(render(page, policy, user=user.get_name()))
