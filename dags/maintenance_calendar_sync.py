"""The other systems' own maintenance follows this calendar (procedures 1.1), every day at the
planned window's start and end times (02:00 and 06:00). Each run is an Airflow task; its
summary goes to Slack.

**kured_lock** holds kured's reboot lock (the `weave.works/kured-node-lock` annotation on its
DaemonSet) outside the planned window and in every blackout and freeze, and releases it for the
window: kured reboots nodes only when this calendar allows. A lock a node holds (a reboot under
way) is left to kured. Off unless `kubernetes.kured.enabled`; clusters without kured use
`maintenance_kubernetes`'s own node maintenance.

**alertmanager_windows** keeps the planned windows of the next months as Alertmanager's mute
time interval `maintenance_planned_windows`, on the routes of the receivers the policy names
(`monitoring.mute_windows_receivers`). Off unless `monitoring.alertmanager_config_file` is set.

Not gated: both keep blackouts free of disruption."""

from maintenance import dagkit
from maintenance.kubernetes.operators import KuredLockOperator
from maintenance.monitoring.operators import AlertmanagerWindowsOperator

window = dagkit.policy().planned_window
# At the window's start (released on its day) and end (held again); every 15 minutes when the
# two times' minutes differ, as one cron line cannot say both.
cron = (f"{window.start.minute} {window.start.hour},{window.end.hour} * * *"
        if window.start.minute == window.end.minute else "*/15 * * * *")

with dagkit.maintenance_dag(
    "maintenance_calendar_sync",
    cron=cron,
    title="Calendar sync: kured and Alertmanager",
    doc=__doc__,
    destructive=False,
    tags=["kubernetes", "monitoring", "change"],
) as dag:
    summary = dagkit.run_summary()
    KuredLockOperator(task_id="kured_lock") >> summary
    AlertmanagerWindowsOperator(task_id="alertmanager_windows") >> summary
