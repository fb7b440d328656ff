"""django-q2 entry points of the crm app: each calls a service and is safe to run twice."""

import datetime as dt

from django.core.exceptions import PermissionDenied
from django.core.management import call_command

from crm.outbox import outbox_deliver_due


def deliver_outbox() -> int:
    return outbox_deliver_due()


def send_monthly_reports(month: str | None = None) -> int:
    """Mail every active manager the workbook of ``month`` ("YYYY-MM"; default: the previous month). Safe to
    run twice: each manager's email for a month has its own outbox key."""
    from crm.reports import monthly_reports_send

    return monthly_reports_send(month=dt.date.fromisoformat(f"{month}-01") if month else None)


def send_monthly_reports_when_due() -> int:
    """The schedule's entry point: from 07:00 local on the 1st (the 2nd and 3rd catch up after downtime) it
    sends the previous month's reports not sent yet; at any other time it does nothing, without a query."""
    from crm.reports import monthly_reports_due, monthly_reports_send

    month = monthly_reports_due()
    return monthly_reports_send(month=month) if month else 0


def clear_expired_sessions() -> None:
    """Delete the sessions that have expired (Django's ``clearsessions``)."""
    call_command("clearsessions")


def cluster_heartbeat() -> None:
    """Record that this host's task cluster runs tasks (every minute; the health check reads it)."""
    from crm.services import cluster_heartbeat_record

    cluster_heartbeat_record()


def refused_task(name: str) -> None:
    """What the cluster runs instead of a task naming a function tongdai does not register
    (``crm.task_registry``): it fails, and the failure says why."""
    raise PermissionDenied(f"{name} is not a registered task function of tongdai; it was not run.")
