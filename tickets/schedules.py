"""Periodic jobs of the tickets app (created by ``manage.py setup_schedules``)."""

SCHEDULES = [
    ("tongdai: SLA sweep", "tickets.tasks.sweep_sla", "I", 1, ()),
    ("tongdai: callback sweep", "tickets.tasks.sweep_callbacks", "I", 5, ()),
]
