"""The periodic jobs of the product, declared as data and created idempotently by ``setup_schedules``, and
the registry of every function the task cluster may run.

Each app's ``schedules.py`` (listed in ``SCHEDULE_MODULES``) declares:
- ``SCHEDULES``: (name, dotted function, schedule type (D daily, I every N minutes), N minutes, arguments);
- ``TASKS`` (optional): functions the app queues on demand or an administrator may schedule by hand.

A schedule, or any task queued to the cluster, may name only a function declared in one of these lists
(``crm.task_registry``): the cluster never runs an arbitrary dotted path such as ``os.system``.
"""

SCHEDULE_MODULES = ["crm.schedules", "customers.schedules", "tickets.schedules", "billing.schedules"]

SCHEDULES = [
    ("tongdai: deliver the outbox", "crm.tasks.deliver_outbox", "I", 1, ()),
    # The health check (/health/) answers 503 when no cluster has run this in the last 2 minutes.
    ("tongdai: task cluster heartbeat", "crm.tasks.cluster_heartbeat", "I", 1, ()),
    ("tongdai: clear expired sessions", "crm.tasks.clear_expired_sessions", "D", None, ()),
    # Monthly, on the 1st at 07:00 local. An entry here has no start time (and cron needs croniter, which is
    # not installed), so it ticks every 15 minutes and the task itself waits for the 1st at 07:00: the reports
    # leave within 15 minutes of it, a tick costs no query at other times, and reruns send nothing twice.
    ("tongdai: monthly reports to managers", "crm.tasks.send_monthly_reports_when_due", "I", 15, ()),
]

TASKS = ["crm.tasks.send_monthly_reports"]
