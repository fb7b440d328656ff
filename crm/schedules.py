"""The periodic jobs of the product, declared as data and created idempotently by ``setup_schedules``.

Each entry: (name, dotted function, schedule type, minutes for MINUTES schedules). Later apps append theirs
(the SLA sweep, callbacks) in their own ``schedules.py`` listed in ``SCHEDULE_MODULES``.
"""

SCHEDULE_MODULES = ["crm.schedules", "customers.schedules"]

SCHEDULES = [
    ("tongdai: clear expired sessions", "django.core.management.call_command", "D", None, ("clearsessions",)),
]
