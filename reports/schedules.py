"""The reports' periodic jobs (see ``crm.schedules``)."""

SCHEDULES = [
    # Monthly, on the 1st at 07:00 local. An entry here has no start time (and cron needs croniter, which is
    # not installed), so it ticks every 15 minutes and the task itself waits for the 1st at 07:00: the reports
    # leave within 15 minutes of it, a tick costs no query at other times, and reruns send nothing twice.
    ("tongdai: monthly reports to managers", "reports.tasks.send_monthly_reports_when_due", "I", 15, ()),
]

TASKS = ["reports.tasks.send_monthly_reports"]
