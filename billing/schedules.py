"""Periodic jobs and task functions of the billing app (see ``crm.schedules``)."""

SCHEDULES = [
    # Once ``manage.py partition_billing`` has partitioned the readings and the invoices: the coming months'
    # partitions (nothing to do before, or on SQLite).
    ("tongdai: billing month partitions", "billing.tasks.ensure_billing_partitions", "D", None, ()),
]

TASKS = ["billing.tasks.run_reading_import", "billing.tasks.run_billing_job"]
