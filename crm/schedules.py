"""The organisation's periodic jobs. The jobs of the product are declared as data, created idempotently by
``setup_schedules``, and make the registry of every function the task cluster may run.

Each installed app's ``schedules.py`` (found by ``core.task_registry.schedule_modules``) declares:
- ``SCHEDULES``: (name, dotted function, schedule type (D daily, I every N minutes), N minutes, arguments);
- ``TASKS`` (optional): functions the app queues on demand or an administrator may schedule by hand.

A schedule, or any task queued to the cluster, may name only a function declared in one of these lists
(``core.task_registry``): the cluster never runs an arbitrary dotted path such as ``os.system``.
"""


SCHEDULES = [
    ("tongdai: deliver the outbox", "crm.tasks.deliver_outbox", "I", 1, ()),
    # The health check (/health/) answers 503 when no cluster has run this in the last 2 minutes.
    ("tongdai: task cluster heartbeat", "crm.tasks.cluster_heartbeat", "I", 1, ()),
    ("tongdai: clear expired sessions", "crm.tasks.clear_expired_sessions", "D", None, ()),
    ("tongdai: delete expired API tokens", "crm.tasks.delete_expired_tokens", "D", None, ()),
]
