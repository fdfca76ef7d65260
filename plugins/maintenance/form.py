"""The trigger form of the maintenance DAGs: its fields, and the one reader of a run's form.

Every field a person can leave empty is nullable, so the Airflow UI enables Trigger with
the defaults (the UI treats a field whose type does not admit ``null`` as required). The
form cannot say "force" without a reason: forcing *is* giving a reason, so there is no
invalid pair of fields to discover at run time. What JSON Schema can check (types, enums,
date format, the shape of a table name) is checked by Airflow when the run is triggered;
what only the run can know (a name that is not a table of the database) fails the first
step that reads it, without retries, naming the field.

Nothing else reads ``context["params"]``: operators, the gate and the ledger ask
:meth:`RunForm.of` for the fields they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from airflow.sdk import Param

from maintenance.errors import InputError

DRY_RUN, FORCE_REASON, TABLES, THEME, DR_DRILL, ARCHIVE_AS_OF = (
    "dry_run", "force_reason", "tables", "theme", "dr_drill", "archive_as_of")
WEEKLY_THEMES = ("monday", "tuesday", "wednesday", "thursday", "friday")
# One table name as people type it: table, schema.table, "Quoted"."Names", optionally
# prefixed by the connection id of one database (platform_db:public.table).
TABLE_NAME_PATTERN = r'^\s*([A-Za-z_][A-Za-z0-9_]*:)?("(?:[^"]|"")+"|[^".\s:]+)(\.("(?:[^"]|"")+"|[^".\s]+))?\s*$'


def fields(*, destructive: bool, **extra: Param) -> dict[str, Param]:
    """The fields every maintenance DAG's form has, then the DAG's own (``extra``)."""
    dry_run_doc = (
        "Plan only: every step lists what it would change and stops there. "
        + ("Manual runs of this DAG default to a dry run; scheduled runs and backfills apply "
           "their plan." if destructive else "Scheduled runs and backfills apply their plan.")
    )
    return {
        DRY_RUN: Param(destructive, type="boolean", title="Dry run", description=dry_run_doc),
        FORCE_REASON: Param(
            None, type=["null", "string"], title="Force past a blackout or freeze: reason",
            description="Empty: the calendar decides. A reason (a change or incident number and why) runs "
                        "non-critical work although a blackout, a one-off freeze or the planned window blocks "
                        "it; it is recorded in the task log, XCom and the maintenance ledger. The manual "
                        "freeze switch and platform load are never forced."),
        **extra,
    }


def tables_field() -> Param:
    return Param(None, type=["null", "array"], items={"type": "string", "pattern": TABLE_NAME_PATTERN}, title="Tables",
                 description="Limit PostgreSQL work to these tables, one per line: `table` when one schema has "
                             "it, else `schema.table`; \"Quoted\" names keep their case. A name that is not a "
                             "table fails the run, naming it. Empty: all tables of the policy's schemas.")


def theme_field() -> Param:
    return Param("auto", enum=["auto", *WEEKLY_THEMES], title="Weekday theme",
                 description="auto: the theme of the run's weekday. Pick one to run that day's work now.")


def drill_field() -> Param:
    return Param("auto", enum=["auto", "true", "false"], title="Disaster-recovery drill",
                 description="Thursday's restore test becomes the DR drill (smoke queries, timed against the "
                             "recovery time objective). auto: on the month's first Thursday.")


def archive_as_of_field() -> Param:
    return Param(None, type=["null", "string"], format="date", title="Archive as of (YYYY-MM-DD)",
                 description="Archive rows older than each table's age counted back from this date, which "
                             "may not be later than the run's date. Empty: the run's logical date.")


def run_type_of(context) -> str:
    """``manual``, ``scheduled``, ``backfill`` or ``asset_triggered``, however Airflow spells it."""
    run = context.get("dag_run")
    raw = getattr(run, "run_type", None)
    return str(getattr(raw, "value", raw) or "manual").lower().rsplit(".", 1)[-1]


@dataclass(frozen=True)
class RunForm:
    """What the person who triggered the run asked for (a scheduled run: the defaults)."""

    run_type: str = "manual"
    dry_run_asked: bool = False
    force_reason: str | None = None
    tables: tuple[str, ...] = ()
    theme: str = "auto"
    dr_drill: str = "auto"
    archive_as_of: date | None = None

    @property
    def manual(self) -> bool:
        return self.run_type == "manual"

    @property
    def scheduled(self) -> bool:
        return self.run_type == "scheduled"

    @property
    def dry_run(self) -> bool:
        """Dry run applies to manual runs only: a scheduled run or a backfill does its work."""
        return self.dry_run_asked and self.manual

    @classmethod
    def of(cls, context, *, strict: bool = True) -> RunForm:
        """The run's form. ``strict``: a key the DAG's form does not declare (a typo, or a field
        this form does not have) raises InputError naming it; critical work reads the form
        leniently, so a slip in a manual run's form never stops a backup."""
        params = dict(context.get("params") or {})
        dag = context.get("dag")
        declared = set(getattr(dag, "params", None) or ()) if dag is not None else set(params)
        unknown = sorted(set(params) - declared)
        if unknown and strict:
            hint = " (to force, give the reason in force_reason)" if "force" in unknown else ""
            raise InputError(f"{', '.join(unknown)}: not a field of this DAG's trigger form{hint}; "
                             f"its fields are {', '.join(sorted(declared))}")
        return cls(
            run_type=run_type_of(context),
            dry_run_asked=bool(params.get(DRY_RUN)),
            force_reason=(params.get(FORCE_REASON) or "").strip() or None,
            tables=tuple(t.strip() for t in params.get(TABLES) or () if t and t.strip()),
            theme=(params.get(THEME) or "auto").lower(),
            dr_drill=str(params.get(DR_DRILL) or "auto").lower(),
            archive_as_of=_date(ARCHIVE_AS_OF, params.get(ARCHIVE_AS_OF)),
        )


def refused(context, exc: InputError):
    """The failure to raise for a form the run cannot use: at once, no retry, its reason recorded
    as the task's outcome for the run summary."""
    from airflow.sdk.exceptions import AirflowFailException

    context["ti"].xcom_push(key="outcome", value=str(exc)[:300])
    return AirflowFailException(str(exc))


def _date(field: str, value) -> date | None:
    text = (value or "").strip() if isinstance(value, str) else value
    if not text:
        return None
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{field}: expected a date as YYYY-MM-DD, got {text!r}") from None


# --- the incident form (maintenance_incident) -------------------------------------------------------

INCIDENT_ACTIONS = ("open", "acknowledge", "resolve", "add_action_item", "close_action_item")


def incident_fields() -> dict[str, Param]:
    return {
        "action": Param("open", enum=list(INCIDENT_ACTIONS), title="What to do",
                        description="Open a new incident (its severity's channel is told, its playbook runs, "
                                    "on-call is paged as the policy says), acknowledge or resolve one by its number, "
                                    "or add or close one of its post-mortem's action items."),
        DRY_RUN: Param(False, type="boolean", title="Dry run",
                       description="Show what opening would do (severity, who is told and paged, the playbook and "
                                   "its steps) without recording, telling or running anything."),
        "severity": Param("sev3", enum=list(INCIDENT_SEVERITIES), title="Severity", description="sev1 is the worst."),
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
                             description="Required to acknowledge, resolve or add an action item: the number the "
                                         "open run logged."),
        "cause": Param(None, type=["null", "string"], title="Cause", description="Root cause, when known."),
        "labels": Param(None, type=["null", "object"], title="Alert labels",
                        description="Set by the alert intake (its alertname chooses the playbook); when opening by "
                                    "hand, e.g. {\"alertname\": \"PostgresIdleInTransaction\"} runs that playbook."),
        "alert_key": Param(None, type=["null", "string"], title="Alert",
                           description="Set by the alert intake: the Alertmanager alert (fingerprint and start) "
                                       "this incident follows; resolving by it needs no incident number."),
        "caused_by_action": Param(None, type=["null", "integer"], title="Caused by maintenance action",
                                  description="Ledger action id, when a maintenance step caused it "
                                              "(counts in the change failure rate)."),
        "item": Param(None, type=["null", "string"], title="Action item",
                      description="add_action_item: what must be done so it does not happen again."),
        "owner": Param(None, type=["null", "string"], title="Action item owner", description="add_action_item: who."),
        "due": Param(None, type=["null", "string"], format="date", title="Action item due (YYYY-MM-DD)",
                     description="add_action_item: by when; reminded in the weekly summary once overdue."),
        "action_item_id": Param(None, type=["null", "integer"], title="Action item number",
                                description="close_action_item: the item's number (from the weekly summary)."),
    }


INCIDENT_SEVERITIES = ("sev1", "sev2", "sev3", "sev4")


@dataclass(frozen=True)
class IncidentForm:
    action: str
    severity: str
    summary: str
    outage: bool
    planned: bool
    started_at: datetime
    ended_at: datetime | None
    incident_id: int | None
    cause: str | None
    caused_by_action: int | None
    alert_key: str | None = None
    labels: dict | None = None
    item: str | None = None
    owner: str | None = None
    due: date | None = None
    action_item_id: int | None = None

    @classmethod
    def of(cls, context, now: datetime) -> IncidentForm:
        """The incident DAG's form, checked: a bad field fails the run, naming it."""
        return _parse_incident(dict(context.get("params") or {}), now)

    @property
    def after_the_fact(self) -> bool:
        """An incident opened already over: recorded and told, not paged, no playbook."""
        return self.action == "open" and self.ended_at is not None


def _when(name: str, value, default: datetime | None) -> datetime | None:
    if value in (None, ""):
        return default
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{name}: not a date and time (ISO 8601), got {value!r}") from None
    if parsed.tzinfo is None:
        raise InputError(f"{name}: give a timezone offset, e.g. 2026-11-27T03:10:00-05:00")
    return parsed


def _integer(name: str, value) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: a whole number, got {value!r}") from None


def _parse_incident(params: dict, now: datetime) -> IncidentForm:
    action = params.get("action", "open")
    if action not in INCIDENT_ACTIONS:
        raise InputError(f"action: one of {', '.join(INCIDENT_ACTIONS)}, got {action!r}")
    severity = params.get("severity", "sev3")
    if severity not in INCIDENT_SEVERITIES:
        raise InputError(f"severity: must be one of {', '.join(INCIDENT_SEVERITIES)}, got {severity!r}")
    summary = (params.get("summary") or "").strip()
    incident_id = _integer("incident_id", params.get("incident_id"))
    if action == "open" and not summary:
        raise InputError("summary: say what happened (required to open an incident)")
    alert_key = (params.get("alert_key") or "").strip() or None
    if action in ("acknowledge", "resolve", "add_action_item") and incident_id is None and not alert_key:
        raise InputError(f"incident_id: which incident to {action.replace('_', ' ')} (its number from the open "
                         "run's log)")
    labels = params.get("labels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        raise InputError(f"labels: a mapping of label names to text values, got {labels!r}")
    item, owner = (params.get("item") or "").strip() or None, (params.get("owner") or "").strip() or None
    due = _date("due", params.get("due"))
    if action == "add_action_item":
        missing = [name for name, value in (("item", item), ("owner", owner), ("due", due)) if value is None]
        if missing:
            raise InputError(f"{', '.join(missing)}: an action item needs what, who and by when")
    action_item_id = _integer("action_item_id", params.get("action_item_id"))
    if action == "close_action_item" and action_item_id is None:
        raise InputError("action_item_id: which action item to close (its number from the weekly summary)")
    started = _when("started_at", params.get("started_at"), now)
    ended = _when("ended_at", params.get("ended_at"), now if action == "resolve" else None)
    if ended is not None and action == "open" and ended < started:
        raise InputError(f"ended_at: {ended.isoformat()} is before started_at {started.isoformat()}")
    return IncidentForm(action, severity, summary, bool(params.get("outage")), bool(params.get("planned")),
                        started, ended, incident_id, (params.get("cause") or "").strip() or None,
                        _integer("caused_by_action", params.get("caused_by_action")), alert_key,
                        dict(labels) if labels else None, item, owner, due, action_item_id)


# --- the window approval's form (maintenance_window_approval) ---------------------------------------

def approved_window(context) -> datetime:
    """The window the approval run is for (set by the notice), checked: a bad value names the field."""
    raw = (context.get("params") or {}).get("window_start")
    parsed = _when("window_start", raw, None)
    if parsed is None:
        raise InputError("window_start: the window's start is required (the notice sets it)")
    return parsed


def emergency_request(context) -> dict[str, str]:
    """The forced run an emergency approval run is for (set by that run), checked: a missing
    value names the field."""
    params = context.get("params") or {}
    found = {name: str(params.get(name) or "").strip() for name in ("dag_id", "run_id", "reason", "forced_past")}
    missing = [name for name in ("dag_id", "run_id", "reason") if not found[name]]
    if missing:
        raise InputError(f"{', '.join(missing)}: set by the forced run that asks for approval; this run has none")
    return found
