"""django-q2 entry points of the reports: each is safe to run twice."""

import datetime as dt

from reports import monthly


def send_monthly_reports(month: str | None = None) -> int:
    """Mail every active manager the workbook of ``month`` ("YYYY-MM"; default: the previous month). Safe to
    run twice: each manager's email for a month has its own outbox key."""
    return monthly.monthly_reports_send(month=dt.date.fromisoformat(f"{month}-01") if month else None)


def send_monthly_reports_when_due() -> int:
    """The schedule's entry point: from 07:00 local on the 1st (the 2nd and 3rd catch up after downtime) it
    sends the previous month's reports not sent yet; at any other time it does nothing, without a query."""
    month = monthly.monthly_reports_due()
    return monthly.monthly_reports_send(month=month) if month else 0
