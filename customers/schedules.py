"""Periodic jobs of the customers app (created by ``manage.py setup_schedules``)."""

SCHEDULES = [
    ("tongdai: refresh search statistics", "customers.tasks.refresh_search_statistics", "D", None, ()),
]
