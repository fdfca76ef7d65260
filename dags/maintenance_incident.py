"""Record an incident where on-call already works: open or resolve it from the trigger form.

The ledger's incidents feed the KPIs (uptime, MTTR, MTBF, downtime, change failure rate)
in the weekly and monthly reports."""

from datetime import datetime

from airflow.sdk import DAG, Param
from maintenance import dagkit
from maintenance.ledger.incidents import SEVERITIES, RecordIncidentOperator

with DAG(
    dag_id="maintenance_incident",
    schedule=None,  # on demand only: a form, not a job
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args=dagkit.default_args(),
    params={
        "action": Param("open", enum=["open", "resolve"], title="Open or resolve",
                        description="Open a new incident, or resolve an open one by its number."),
        "severity": Param("sev3", enum=list(SEVERITIES), title="Severity", description="sev1 is the worst."),
        "summary": Param(None, type=["null", "string"], title="Summary",
                         description="What happened (required to open an incident)."),
        "outage": Param(False, type="boolean", title="Platform was down",
                        description="Counts as downtime in the KPIs."),
        "planned": Param(False, type="boolean", title="Planned downtime",
                         description="Downtime taken on purpose inside a maintenance window."),
        "started_at": Param(None, type=["null", "string"], format="date-time", title="Started at",
                            description="With a timezone offset; empty means now."),
        "ended_at": Param(None, type=["null", "string"], format="date-time", title="Ended at",
                          description="When opening an incident that is already over; when resolving, "
                                      "empty means now."),
        "incident_id": Param(None, type=["null", "integer"], title="Incident number",
                             description="Required to resolve: the number the open run logged."),
        "cause": Param(None, type=["null", "string"], title="Cause", description="Root cause, when known."),
        "caused_by_action": Param(None, type=["null", "integer"], title="Caused by maintenance action",
                                  description="Ledger action id, when a maintenance step caused it "
                                              "(counts in the change failure rate)."),
    },
    tags=["maintenance", "incident", "on-demand"],
    doc_md=__doc__,
) as dag:
    RecordIncidentOperator(task_id="record_incident")
