"""Emergency maintenance (procedures 1.1): work forced past a blackout, a freeze, the window or
its notice needs two approvals, the on-call lead's and a director's, from two different people.
Pure rules over the approvals the ledger keeps (``ledger.notices.emergency_for``)."""

from __future__ import annotations

ROLES = {"oncall_lead": "the on-call lead", "director": "a director"}
APPROVAL_DAG = "maintenance_emergency_approval"
REQUEST_TASK = "emergency_approval"  # the task of every gated DAG that asks (dagkit.gate)


def approval_run_id(dag_id: str, run_id: str) -> str:
    """The approval run of one forced run: one per run, so a re-try asks nobody twice."""
    return f"emergency__{dag_id}__{run_id}"


def standing(approvals: dict[str, dict], *, approval_run: str, tz) -> tuple[str, str]:
    """``approved``, ``refused`` or ``pending``, and why, as a person reads it."""
    for role, said in approvals.items():
        if said["decision"] != "approved":
            how = "rejected it" if said["decision"] == "rejected" else "did not answer in time"
            who = f" ({said['decided_by']}, {said['decided_at'].astimezone(tz):%Y-%m-%d %H:%M %Z})" \
                if said["decided_by"] else ""
            return "refused", f"emergency maintenance not approved: {ROLES[role]} {how}{who}"
    missing = [ROLES[role] for role in ROLES if role not in approvals]
    if missing:
        return "pending", (f"emergency maintenance waits for {' and '.join(missing)} to approve ({APPROVAL_DAG} "
                           f"run {approval_run}, Required actions in the Airflow UI)")
    lead, director = approvals["oncall_lead"]["decided_by"], approvals["director"]["decided_by"]
    if lead == director:
        return "refused", (f"emergency maintenance not approved: {lead} gave both approvals; the on-call lead and "
                           "a director must be two people")
    return "approved", f"emergency maintenance approved by {lead} (on-call lead) and {director} (director)"
