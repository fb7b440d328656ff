"""The managers' monthly report: the dashboard's tables for a month as an XLSX workbook, mailed through the outbox.

``monthly_reports_send`` runs on the 1st of each month (``reports.tasks.send_monthly_reports``): for every active
manager it builds the workbook of the previous month over the manager's scope and writes an email with the
workbook attached to the outbox. The deduplication key ``monthly-report:<user id>:<YYYY-MM>`` makes a rerun
(or two clusters running it at once) send nothing twice. Each workbook sent is recorded in the export log
under the manager it went to.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re

from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from core.exports import xlsx_text
from core.routers import replica_reads
from crm.models import ExportKind, OutboxChannel, OutboxMessage, Role, StaffProfile, Unit
from crm.outbox import outbox_enqueue
from crm.scoping import Scope, merged_away, scope_for
from crm.services import export_log_record
from reports import dashboard

logger = logging.getLogger("tongdai.reports")

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RELEASE_HOUR = 7  # local time on the 1st


def _sheet_title(title: str, taken: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the workbook."""
    base = re.sub(r"[\[\]:*?/\\]", "-", title).strip("'")[:31] or "Sheet"
    name, n = base, 2
    while name.lower() in taken:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(name.lower())
    return name


def monthly_report_xlsx(user, month: dt.date) -> bytes:
    """The workbook of ``month`` (any day of it) for ``user``'s scope: one sheet per dashboard table, the
    table's title in the first row (a sheet's name holds 31 characters at most), its column titles in the
    second, the numbers as numbers."""
    return monthly_report_workbook(user, month)[0]


@replica_reads()
def monthly_report_workbook(user, month: dt.date) -> tuple[bytes, int]:
    """``monthly_report_xlsx`` and the number of data rows in all its sheets (for the export log).

    A sheet's name holds at most 31 characters, so every sheet gives its table's full title in its first row
    (the Vietnamese titles do not fit in the names) and its column titles in the second. Text cells are cleaned as the streamed
    exports clean them (``core.exports.xlsx_text``): a control character pasted into a name is dropped."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    start, end = dashboard.month_bounds(month)
    workbook = Workbook()
    workbook.remove(workbook.active)
    workbook.properties.title = _("Monthly report %(month)s") % {"month": f"{start:%m/%Y}"}
    taken: set[str] = set()
    tables = [(table, _sheet_title(str(table.title), taken)) for table in dashboard.tables(user, start, end)]
    row_count = 0
    for table, name in tables:
        row_count += len(table.rows)
        sheet = workbook.create_sheet(name)
        sheet.append([_cell(table.title)])
        sheet.append([_cell(column) for column in table.columns])
        for row in sheet.iter_rows(min_row=1, max_row=sheet.max_row):
            for cell in row:
                cell.font = Font(bold=True)
        for values in table.rows:
            sheet.append([_cell(value) for value in values])
            for cell in sheet[sheet.max_row]:
                if cell.data_type == "f":  # a name typed with a leading "=" is text, never a formula
                    cell.data_type = "s"
        heading_row = 2
        for i, column in enumerate(table.columns, start=1):
            widest = max(
                [len(str(column)), *(len(str(r[i - 1])) for r in table.rows if r[i - 1] is not None)]
            )
            sheet.column_dimensions[sheet.cell(row=heading_row, column=i).column_letter].width = min(
                max(widest + 2, 10), 60
            )
        sheet.freeze_panes = f"B{heading_row + 1}"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), row_count


def _cell(value):
    """A table's value as a workbook cell: text without the characters an XLSX file cannot hold."""
    return xlsx_text(str(value)) if isinstance(value, str | Promise) else value


def previous_month(today: dt.date | None = None) -> dt.date:
    today = today or timezone.localdate()
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def dedupe_key(user_id: int, month: dt.date) -> str:
    return f"monthly-report:{user_id}:{month:%Y-%m}"


def monthly_reports_send(*, month: dt.date | None = None) -> int:
    """Write one email per active manager with the workbook of ``month`` (default: the previous month) to the
    outbox; returns how many were written. Managers who already have theirs are skipped before any workbook
    is built; the outbox's unique key settles a race. Managers without an email address are logged, and so
    is a manager whose report fails: the others still get theirs, and the next run tries that one again."""
    month = (month or previous_month()).replace(day=1)
    managers = list(
        StaffProfile.objects.filter(role=Role.MANAGER, user__is_active=True)
        .select_related("user")
        .order_by("pk")
    )
    done = set(
        OutboxMessage.objects.filter(
            dedupe_key__in=[dedupe_key(p.user_id, month) for p in managers]
        ).values_list("dedupe_key", flat=True)
    )
    written = 0
    for profile in managers:
        user, key = profile.user, dedupe_key(profile.user_id, month)
        if key in done:
            continue
        if not user.email:
            logger.warning("monthly report %s: manager %s has no email address", f"{month:%Y-%m}", user.pk)
            continue
        try:
            written += _monthly_report_send(user, month, key)
        except Exception:  # one manager's workbook failing must not keep the others from theirs
            logger.exception("monthly report %s: the report of manager %s failed", f"{month:%Y-%m}", user.pk)
    return written


def units_in_service(scope: Scope) -> int:
    """How many units ``scope`` covers as units of their own: its units less those merged away into one of
    them (the scope keeps those so that their old records stay visible, but they are not units any more)."""
    today = timezone.localdate()
    units = Unit.objects.filter(pk__in=sorted(scope.unit_ids)).only("pk", "successor_id", "valid_to")
    return sum(1 for unit in units if not merged_away(unit, today=today))


def _monthly_report_send(user, month: dt.date, key: str) -> bool:
    """Write ``user``'s email with the workbook of ``month`` to the outbox under ``key``; False when the
    outbox already held it (a race with another run)."""
    scope = scope_for(user)
    content, row_count = monthly_report_workbook(user, month)
    label = f"{month:%m/%Y}"
    with transaction.atomic():
        message = outbox_enqueue(
            channel=OutboxChannel.EMAIL,
            recipient=user.email,
            staff=user,  # addressed again at delivery: nothing to a manager who has left
            subject=_("Monthly report %(month)s") % {"month": label},
            body=_(
                "Dear %(name)s,\n\nattached is the customer-care report for %(month)s over %(scope)s: "
                "requests by channel, category and unit, SLA compliance, handling time, callback "
                "satisfaction, outage restore times, consumption rises, refunds and bill reductions.\n"
            )
            % {
                "name": user.get_full_name() or user.get_username(),
                "month": label,
                "scope": _("every unit")
                if scope.everything
                else _("%(n)d units") % {"n": units_in_service(scope)},
            },
            dedupe_key=key,
            attachment_name=f"tongdai-report-{month:%Y-%m}.xlsx",
            attachment_content=content,
        )
        if message is not None:  # the workbook leaves the system by e-mail: an export for the manager
            export_log_record(
                user=user, kind=ExportKind.REPORT, source="monthly-report", file_format="xlsx",
                row_count=row_count, filters=f"month={month:%Y-%m}",
            )  # fmt: skip
    return message is not None


def monthly_reports_due(now: dt.datetime | None = None) -> dt.date | None:
    """The month whose reports are due at ``now``: the previous month from 07:00 local on the 1st, with the
    2nd and 3rd as catch-up days if the task queue was down; otherwise None."""
    local = timezone.localtime(now)
    if (local.day == 1 and local.hour >= RELEASE_HOUR) or local.day in (2, 3):
        return previous_month(local.date())
    return None
