"""Incident response where on-call already works: open, acknowledge or resolve an incident from
the trigger form (Alertmanager's alerts do it through the alert intake), run its playbook, write
its post-mortem.

- **record_incident**: the ledger's record; the severity's Slack channel is told, PagerDuty paged
  for the severities that page, the diagnostics bundle stored in S3. Also adds or closes a
  post-mortem action item.
- **run_playbook** (when one opens): the playbook its alert labels match
  (`include/incident_playbooks.yaml`), one step at a time, each proven by its check; on-call is
  paged when the severity is critical, no playbook matches, or a step fails. Dry run shows it.
- **post_mortem** (when one of the policy's severities resolves): the document (timeline,
  impact, sections for the review, action items), Markdown and HTML in S3, linked in Slack.

The ledger's incidents feed the KPIs (uptime, MTTR, MTTA, downtime, change failure rate) in the
weekly and monthly reports. How to use it: docs/operations.md, "Incidents"."""

from datetime import datetime

from airflow.sdk import DAG
from maintenance import dagkit, form
from maintenance.incidents.operators import PostMortemOperator, RecordIncidentOperator, RunPlaybookOperator

with DAG(
    dag_id="maintenance_incident",
    schedule=None,  # on demand only: a form, not a job
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    default_args=dagkit.default_args(),
    params=form.incident_fields(),
    tags=["maintenance", "incident", "on-demand"],
    doc_md=__doc__,
) as dag:
    record = RecordIncidentOperator(task_id="record_incident")
    # A step's failure does not fail the task: it stops the playbook and pages. A retry is for
    # what went wrong around it (the ledger unreachable); steps already done are done again
    # only if still needed (a session still idle), their records keyed to the incident.
    record >> RunPlaybookOperator(task_id="run_playbook")
    record >> PostMortemOperator(task_id="post_mortem")
