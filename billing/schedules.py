"""Task functions of the billing app (see ``crm.schedules``): it has no periodic job of its own."""

SCHEDULES: list[tuple] = []

TASKS = ["billing.tasks.run_reading_import", "billing.tasks.run_billing_job"]
