"""The periodic jobs of the product, declared as data and created idempotently by ``setup_schedules``.

Each entry: (name, dotted function, schedule type (D daily, I every N minutes), N minutes, arguments). Later apps append theirs
(the SLA sweep, callbacks) in their own ``schedules.py`` listed in ``SCHEDULE_MODULES``.
"""

SCHEDULE_MODULES = ["crm.schedules", "customers.schedules", "tickets.schedules"]

SCHEDULES = [
    ("tongdai: deliver the outbox", "crm.tasks.deliver_outbox", "I", 1, ()),
    ("tongdai: clear expired sessions", "django.core.management.call_command", "D", None, ("clearsessions",)),
    # Monthly, on the 1st at 07:00 local. An entry here has no start time (and cron needs croniter, which is
    # not installed), so it ticks every 15 minutes and the task itself waits for the 1st at 07:00: the reports
    # leave within 15 minutes of it, a tick costs no query at other times, and reruns send nothing twice.
    ("tongdai: monthly reports to managers", "crm.tasks.send_monthly_reports_when_due", "I", 15, ()),
]
