"""kured's reboots follow the maintenance calendar (procedures 1.1), every day at the planned
window's start and end times (02:00 and 06:00).

**kured_lock** holds kured's reboot lock (the `weave.works/kured-node-lock` annotation on its
DaemonSet) outside the planned window and in every blackout and freeze, and releases it for the
window: kured reboots nodes only when this calendar allows. A lock a node holds (a reboot under
way) is left to kured. Off unless `kubernetes.kured.enabled`; clusters without kured use
`maintenance_kubernetes`'s own node maintenance. Not gated: holding the lock is what keeps
blackouts free of reboots. (Each run is an Airflow task; its summary goes to Slack.)"""

from maintenance import dagkit
from maintenance.kubernetes.operators import KuredLockOperator

window = dagkit.policy().planned_window
# At the window's start (released on its day) and end (held again); every 15 minutes when the
# two times' minutes differ, as one cron line cannot say both.
cron = (f"{window.start.minute} {window.start.hour},{window.end.hour} * * *"
        if window.start.minute == window.end.minute else "*/15 * * * *")

with dagkit.maintenance_dag(
    "maintenance_kured",
    cron=cron,
    title="kured's reboot lock",
    doc=__doc__,
    destructive=False,
    tags=["kubernetes", "change"],
) as dag:
    KuredLockOperator(task_id="kured_lock") >> dagkit.run_summary()
