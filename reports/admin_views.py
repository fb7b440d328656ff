"""The managers' dashboard page in the admin (``/admin/dashboard/``), and its CSV exports.

Staff with ``crm.view_dashboard`` choose a period and one of their units; every widget (registered by the app
that owns its data, ``reports.dashboard``) is one aggregate query over their scope, shown as an SVG chart above
its table. Each widget's CSV and XLSX buttons are small POST forms (with the CSRF token; the period, unit, widget
and format as hidden fields) that stream its table, recorded in the export log; a GET never exports.
"""

from __future__ import annotations

import csv
import datetime as dt

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, QueryDict, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.days import FIRST_DAY, LAST_DAY
from core.exports import CSV, XLSX, XLSX_CONTENT_TYPE, LoggedExport, csv_cell, xlsx_chunks
from core.routers import replica_reads
from crm.models import ExportKind, Unit
from crm.services import export_log_start
from reports import dashboard

PERMISSION = "crm.view_dashboard"
MAX_DAYS = 366
# The dates a period may take: the page reads them as local days in UTC and the day after the end, which the
# calendar's own edges (01/01/0001, 31/12/9999) do not have.


class DashboardForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"}))
    unit = forms.ModelChoiceField(
        label=gettext_lazy("Unit"),
        queryset=Unit.objects.none(),
        required=False,
        empty_label=gettext_lazy("All my units"),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = Unit.objects.for_user(user).only("id", "code", "name").order_by("code")

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The period ends before it starts."))
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(_("Choose a period of at most a year."))
            if start < FIRST_DAY or end > LAST_DAY:
                raise forms.ValidationError(
                    _("Choose dates from %(a)s to %(b)s.")
                    % {"a": f"{FIRST_DAY:%d/%m/%Y}", "b": f"{LAST_DAY:%d/%m/%Y}"}
                )
        return data


def _default_period() -> dict[str, str]:
    first, last = dashboard.month_bounds(timezone.localdate())
    return {"start": first.isoformat(), "end": last.isoformat()}


class _Echo:
    def write(self, value):
        return value


def _cell(value):
    """A CSV cell; text that a spreadsheet would run as a formula gets a leading quote, by the list exports'
    rule (``core.exports.csv_cell``)."""
    if value is None:
        return ""
    return csv_cell(value)


def _csv_response(table: dashboard.Table, start: dt.date, end: dt.date, logged) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff"  # so that spreadsheet programs read the Vietnamese text as UTF-8
        yield writer.writerow(table.columns)
        for row in logged.rows(table.rows):
            yield writer.writerow([_cell(v) for v in row])

    response = StreamingHttpResponse(logged.chunks(lines()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="dashboard-{table.key}-{start:%Y%m%d}-{end:%Y%m%d}.csv"'
    )
    return response


def _xlsx_response(table: dashboard.Table, start: dt.date, end: dt.date, logged) -> StreamingHttpResponse:
    # The values as they are: a workbook's inline text never runs as a formula (no quote before it), as in the
    # monthly report's workbook of the same tables.
    response = StreamingHttpResponse(
        logged.chunks(xlsx_chunks(list(table.columns), logged.rows(table.rows), sheet_name=table.key)),
        content_type=XLSX_CONTENT_TYPE,
    )
    response["Content-Disposition"] = (
        f'attachment; filename="dashboard-{table.key}-{start:%Y%m%d}-{end:%Y%m%d}.xlsx"'
    )
    return response


def dashboard_view(request):
    """The dashboard: a period and unit form, then each widget's chart and table (and its CSV or XLSX export).

    An export is a POST of the widget's small form (with its CSRF token), never a GET: a link from another site
    must not stream a file nor write the export log in the name of whoever follows it. A GET carrying
    ``export=`` shows the page and exports nothing."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    if request.method == "POST":
        return _dashboard_export(request)
    params = (
        request.GET if {"start", "end"} & set(request.GET) else {**_default_period(), **request.GET.dict()}
    )
    form = DashboardForm(params, user=request.user)
    widgets = []
    period_fields: list[tuple[str, str]] = []
    if form.is_valid():
        start, end, unit = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["unit"]
        board = dashboard.Dashboard(request.user, start, end, unit)
        period_fields = [("start", start.isoformat()), ("end", end.isoformat())]
        if unit:
            period_fields.append(("unit", str(unit.pk)))
        for widget in dashboard.WIDGETS:
            with replica_reads():
                data = board.data(widget)
            columns, rows = widget.table(data)
            widgets.append(
                {
                    "key": widget.key,
                    "title": widget.title,
                    "note": widget.note,
                    "chart": widget.chart(data, str(widget.title)) if widget.chart else "",
                    "columns": columns,
                    "rows": [
                        [{"value": dashboard.display(v), "label": isinstance(v, str)} for v in row]
                        for row in rows
                    ],
                    "data": data,
                }
            )
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "form": form,
        "widgets": widgets,
        # the hidden fields of every widget's export forms: the period and unit the page shows
        "period_fields": period_fields,
        "formats": [(CSV, "CSV"), (XLSX, "XLSX")],
    }
    return TemplateResponse(request, "admin/dashboard/index.html", context)


def _dashboard_export(request):
    """A widget's table for the POSTed period and unit (``export``: the widget, ``format``: csv or xlsx),
    streamed and recorded in the export log."""
    export = request.POST.get("export")
    if export not in dashboard.WIDGETS_BY_KEY:
        raise Http404
    form = DashboardForm(request.POST, user=request.user)
    if not form.is_valid():
        # The form's own errors: the unit's when the unit is what is wrong (no longer one of the user's units,
        # say), the period's otherwise. Plain text: nothing typed is shown as markup.
        refusals = []
        if form.errors.keys() - {"unit"}:
            refusals.append(_("Choose a valid period first."))
        if "unit" in form.errors:
            refusals.append(
                _("%(field)s: %(errors)s Reload the dashboard and choose one of your units.")
                % {"field": form.fields["unit"].label, "errors": " ".join(form.errors["unit"])}
            )
        return HttpResponseBadRequest("\n".join(refusals), content_type="text/plain; charset=utf-8")
    start, end, unit = form.cleaned_data["start"], form.cleaned_data["end"], form.cleaned_data["unit"]
    board = dashboard.Dashboard(request.user, start, end, unit)
    with replica_reads():
        table = dashboard.widget_table(board, dashboard.WIDGETS_BY_KEY[export])
    file_format = XLSX if request.POST.get("format") == XLSX else CSV
    # what was exported, as the log's filters (the period, unit, widget and format; not the CSRF token)
    filters = QueryDict(mutable=True)
    filters.update(
        {"start": start.isoformat(), "end": end.isoformat(), **({"unit": unit.pk} if unit else {})}
    )
    filters.update({"export": export, "format": file_format})
    log = export_log_start(
        user=request.user, kind=ExportKind.DASHBOARD, source=f"dashboard.{export}",
        file_format=file_format, filters=filters.urlencode(),
    )  # fmt: skip
    respond = _xlsx_response if file_format == XLSX else _csv_response
    return respond(table, start, end, LoggedExport(log))
