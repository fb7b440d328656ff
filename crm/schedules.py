"""The periodic jobs of the product, declared as data and created idempotently by ``setup_schedules``.

Each entry: (name, dotted function, schedule type (D daily, I every N minutes), N minutes, arguments). Later apps append theirs
(the SLA sweep, callbacks) in their own ``schedules.py`` listed in ``SCHEDULE_MODULES``.
"""

SCHEDULE_MODULES = ["crm.schedules", "customers.schedules", "tickets.schedules"]

SCHEDULES = [
    ("tongdai: deliver the outbox", "crm.tasks.deliver_outbox", "I", 1, ()),
    ("tongdai: clear expired sessions", "django.core.management.call_command", "D", None, ("clearsessions",)),
]
