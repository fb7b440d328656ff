"""The periodic jobs of the product, declared as data and created idempotently by ``setup_schedules``, and
the registry of every function the task cluster may run.

Each app's ``schedules.py`` (listed in ``SCHEDULE_MODULES``) declares:
- ``SCHEDULES``: (name, dotted function, schedule type (D daily, I every N minutes), N minutes, arguments);
- ``TASKS`` (optional): functions the app queues on demand or an administrator may schedule by hand.

A schedule, or any task queued to the cluster, may name only a function declared in one of these lists
(``crm.task_registry``): the cluster never runs an arbitrary dotted path such as ``os.system``.
"""

SCHEDULE_MODULES = [
    "crm.schedules", "customers.schedules", "tickets.schedules", "billing.schedules", "reports.schedules",
]  # fmt: skip

SCHEDULES = [
    ("tongdai: deliver the outbox", "crm.tasks.deliver_outbox", "I", 1, ()),
    # The health check (/health/) answers 503 when no cluster has run this in the last 2 minutes.
    ("tongdai: task cluster heartbeat", "crm.tasks.cluster_heartbeat", "I", 1, ()),
    ("tongdai: clear expired sessions", "crm.tasks.clear_expired_sessions", "D", None, ()),
]
