"""The export log: one row per export on every path (changelists, selections, the dashboard's tables, the
monthly report), completed with the exact row count when the stream ends or marked interrupted; append-only
in the database; read by managers (their staff's exports) and administrators only."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import helpers
from django.core.signals import request_finished
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.exports import StreamingExportMixin
from crm.models import ExportKind, ExportLog, ExportStatus, Role
from crm.services import export_log_finish, export_log_record, export_log_start, staff_create
from customers.models import Customer
from reports import dashboard
from reports import monthly as reports
from tickets import services as ticket_services
from tickets.models import Ticket


def streaming_export_admins():
    """Every changelist with "Export (all matching rows)" and the "Export selected" actions."""
    return sorted(
        (
            (model._meta.label_lower, admin.site.get_model_admin(model))
            for model in apps.get_models()
            if admin.site.is_registered(model)
            and isinstance(admin.site.get_model_admin(model), StreamingExportMixin)
        ),
        key=lambda pair: pair[0],
    )


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(body)))


def only_log() -> ExportLog:
    (log,) = ExportLog.objects.all()
    return log


def test_the_lists_that_export_are_the_four_known_ones():
    assert [label for label, _a in streaming_export_admins()] == [
        "billing.dispute", "billing.invoice", "customers.customer", "tickets.ticket",
    ]  # fmt: skip


@pytest.mark.parametrize("label", [label for label, _a in streaming_export_admins()])
def test_every_list_export_is_logged_with_its_exact_row_count(client, staff, two_customers, label):
    before = set(ExportLog.objects.values_list("pk", flat=True))
    administrator = staff[Role.ADMINISTRATOR]
    client.force_login(administrator)
    model = apps.get_model(label)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export_all")

    response = client.post(url, {"file_format": "csv"})
    started = ExportLog.objects.exclude(pk__in=before).get()
    assert (started.status, started.row_count, started.finished_at) == (ExportStatus.STARTED, None, None)
    _header, *rows = csv_rows(response)

    log = ExportLog.objects.get(pk=started.pk)
    assert len(rows) == model._default_manager.count() > 0
    assert (log.user, log.kind, log.source, log.file_format, log.filters) == (
        administrator, ExportKind.LIST, label, "csv", "",
    )  # fmt: skip
    assert (log.status, log.row_count) == (ExportStatus.COMPLETE, len(rows))
    assert log.finished_at >= log.started_at


def test_a_filtered_export_records_its_filters_and_the_rows_it_gave(client, staff, org, make_customer):
    for n in range(3):
        make_customer(org["home"], name=f"Nhà {n}", phones=[f"0903 000 10{n}"])
    make_customer(org["sibling"], name="Bên cạnh", phones=["0903 000 200"])
    manager = staff[Role.MANAGER]
    client.force_login(manager)
    url = reverse("admin:customers_customer_export_all") + f"?unit={org['home'].pk}&customer_type=residential"

    response = client.post(url, {"file_format": "xlsx"})
    rows = list(openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0].values)

    log = only_log()
    assert len(rows) - 1 == 3
    assert (log.user, log.kind, log.source, log.file_format, log.filters, log.row_count, log.status) == (
        manager, ExportKind.LIST, "customers.customer", "xlsx", f"unit={org['home'].pk}&customer_type=residential",
        3, ExportStatus.COMPLETE,
    )  # fmt: skip


def test_a_refused_filter_exports_nothing_and_logs_nothing(client, staff, org):
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:customers_customer_export_all") + "?nonsense=1", {"file_format": "csv"}
    )
    assert response.status_code == 302
    assert not ExportLog.objects.exists()


def test_an_export_of_selected_rows_records_which_rows(client, staff, org, make_customer, catalogue):
    customer = make_customer(org["home"])
    tickets = [
        ticket_services.ticket_open(actor=None, category=catalogue["outage"], channel="phone", description=f"{n}",
                                    customer=customer).ticket
        for n in range(3)
    ]  # fmt: skip
    agent = staff[Role.AGENT]
    client.force_login(agent)
    chosen = [tickets[0].pk, tickets[2].pk]
    response = client.post(
        reverse("admin:tickets_ticket_changelist") + "?status__exact=new",
        {"action": "export_selected_xlsx", helpers.ACTION_CHECKBOX_NAME: chosen},
    )
    rows = list(openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0].values)

    log = only_log()
    assert sorted(r[0] for r in rows[1:]) == sorted(t.number for t in Ticket.objects.filter(pk__in=chosen))
    assert (log.user, log.kind, log.source, log.file_format, log.row_count, log.status) == (
        agent, ExportKind.SELECTION, "tickets.ticket", "xlsx", 2, ExportStatus.COMPLETE,
    )  # fmt: skip
    assert log.filters == f"status__exact=new&selected={chosen[0]}&selected={chosen[1]}"


def streamed_export(user):
    """The export view itself, as the server runs it (the test client would read the whole stream)."""
    request = RequestFactory().post(reverse("admin:customers_customer_export_all"), {"file_format": "csv"})
    request.user = user
    return admin.site.get_model_admin(Customer).export_all_view(request)


def close_as_the_server_does(response) -> None:
    """Close the response, as the server does when the client goes away. (Its "request finished" signal
    would also close the test's database connection, held open in a transaction: Django's test client keeps
    that handler off around its own close, and so does this.)"""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


@override_settings(TONGDAI_EXPORT_CHUNK_SIZE=1, TONGDAI_EXPORT_BUFFER_BYTES=1)
def test_a_download_stopped_halfway_is_logged_as_interrupted_with_the_rows_read(staff, org, make_customer):
    for n in range(5):
        make_customer(org["home"], name=f"Nhà {n}", phones=[f"0903 000 30{n}"])
    response = streamed_export(staff[Role.AGENT])
    content = iter(response.streaming_content)

    first, second = next(content), next(content)  # the header with the first row, then the second row
    close_as_the_server_does(response)  # the client went away

    log = only_log()
    assert first.decode("utf-8").count("\n") == 2 and second.decode("utf-8").count("\n") == 1
    assert (log.status, log.row_count) == (ExportStatus.INCOMPLETE, 2)
    assert log.finished_at is not None


def test_a_download_closed_before_its_first_byte_is_logged_as_interrupted(staff, make_customer):
    make_customer()
    response = streamed_export(staff[Role.AGENT])
    assert only_log().status == ExportStatus.STARTED

    close_as_the_server_does(response)

    log = only_log()
    assert (log.status, log.row_count) == (ExportStatus.INCOMPLETE, 0)
    assert log.finished_at is not None


def test_each_dashboard_table_export_is_logged_with_its_rows(client, staff, org, make_customer, catalogue):
    customer = make_customer(org["home"])
    for channel in ("phone", "app", "zalo"):
        ticket_services.ticket_open(actor=None, category=catalogue["outage"], channel=channel, description="x",
                                    customer=customer)  # fmt: skip
    manager = staff[Role.MANAGER]
    client.force_login(manager)
    start, end = dashboard.month_bounds(timezone.localdate())
    period = {"start": start.isoformat(), "end": end.isoformat()}
    expected = dashboard.widget_table(
        dashboard.Dashboard(manager, start, end, None), dashboard.WIDGETS_BY_KEY["channels"]
    ).rows

    # (as the widget's forms send them: a POST of the period, the widget and the format)
    _header, *rows = csv_rows(
        client.post(reverse("dashboard"), {**period, "export": "channels", "format": "csv"})
    )
    workbook = client.post(reverse("dashboard"), {**period, "export": "channels", "format": "xlsx"})
    sheet = list(
        openpyxl.load_workbook(io.BytesIO(b"".join(workbook.streaming_content))).worksheets[0].values
    )

    assert len(rows) == len(sheet) - 1 == len(expected) == 3
    logs = list(ExportLog.objects.order_by("id").values_list("user", "kind", "source", "file_format", "row_count",
                                                             "status", "filters"))  # fmt: skip
    query = f"start={start.isoformat()}&end={end.isoformat()}&export=channels"
    assert logs == [
        (manager.pk, ExportKind.DASHBOARD, "dashboard.channels", "csv", 3, ExportStatus.COMPLETE,
         query + "&format=csv"),
        (manager.pk, ExportKind.DASHBOARD, "dashboard.channels", "xlsx", 3, ExportStatus.COMPLETE,
         query + "&format=xlsx"),
    ]  # fmt: skip


def test_each_monthly_report_sent_is_logged_once_under_its_manager(org, make_customer, catalogue):
    manager = staff_create(
        actor=None,
        username="manager-report", password="s3cret-pass-word", role=Role.MANAGER, badge_number="M-9",
        units=[org["home"]], email="lan@example.vn",
    )  # fmt: skip
    month = reports.previous_month()
    received = timezone.make_aware(dt.datetime.combine(month.replace(day=10), dt.time(9)))
    ticket_services.ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                                customer=make_customer(org["home"]), at=received)  # fmt: skip
    _content, expected_rows = reports.monthly_report_workbook(manager, month)
    assert expected_rows == sum(
        len(t.rows) for t in dashboard.tables(manager, *dashboard.month_bounds(month))
    )

    assert reports.monthly_reports_send(month=month) == 1
    assert reports.monthly_reports_send(month=month) == 0  # a rerun sends and logs nothing more

    log = only_log()
    assert (log.user, log.kind, log.source, log.file_format, log.filters, log.row_count, log.status) == (
        manager, ExportKind.REPORT, "monthly-report", "xlsx", f"month={month:%Y-%m}", expected_rows,
        ExportStatus.COMPLETE,
    )  # fmt: skip


# Append-only ----------------------------------------------------------------------------------------------


def refused(sql: str, params=()) -> None:
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def snapshot(log: ExportLog) -> tuple:
    log = ExportLog.objects.get(pk=log.pk)
    return (log.user_id, log.started_at, log.finished_at, log.kind, log.source, log.filters, log.file_format,
            log.row_count, log.status)  # fmt: skip


def test_the_database_completes_an_export_once_and_refuses_any_other_change(staff):
    log = export_log_start(user=staff[Role.AGENT], kind=ExportKind.LIST, source="customers.customer",
                           file_format="csv", filters="unit=1")  # fmt: skip
    # Completing a started export is the one change allowed, and only that.
    refused("UPDATE crm_exportlog SET source = 'x', status = 'complete', row_count = 1, finished_at = started_at "
            "WHERE id = %s", [log.pk])  # fmt: skip
    refused("UPDATE crm_exportlog SET filters = '' WHERE id = %s", [log.pk])
    assert export_log_finish(log=log, row_count=7) is True
    done = snapshot(log)

    refused("UPDATE crm_exportlog SET row_count = 1 WHERE id = %s", [log.pk])
    refused("UPDATE crm_exportlog SET status = 'incomplete' WHERE id = %s", [log.pk])
    refused("DELETE FROM crm_exportlog WHERE id = %s", [log.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        ExportLog.objects.filter(pk=log.pk).delete()
    assert export_log_finish(log=log, row_count=1, complete=False) is False  # once only

    assert snapshot(log) == done
    assert (done[-2], done[-1]) == (7, ExportStatus.COMPLETE)


@pytest.mark.postgres
def test_postgresql_refuses_to_truncate_the_export_log(staff):
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    log = export_log_record(user=staff[Role.AGENT], kind=ExportKind.LIST, source="tickets.ticket",
                            file_format="csv", row_count=3)  # fmt: skip
    refused("TRUNCATE crm_exportlog")
    assert snapshot(log)[-2:] == (3, ExportStatus.COMPLETE)


def test_the_database_refuses_a_finished_export_without_its_count(staff):
    log = export_log_start(user=staff[Role.AGENT], kind=ExportKind.LIST, source="tickets.ticket",
                           file_format="csv")  # fmt: skip
    refused("UPDATE crm_exportlog SET status = 'complete', finished_at = started_at WHERE id = %s", [log.pk])
    assert snapshot(log)[-2:] == (None, ExportStatus.STARTED)


# Who reads it ---------------------------------------------------------------------------------------------


@pytest.fixture
def exports(org, staff, make_staff):
    """An export by staff of the home unit, of another company of the same corporation, of another
    corporation, and one by the administrator (who serves no unit)."""
    made = {}
    for key, user in (
        ("home", staff[Role.AGENT]),
        ("other_company", make_staff(Role.BILLING_CLERK, [org["other_company"]])),
        ("other_corporation", make_staff(Role.AGENT, [org["other_corporation"]])),
        ("administrator", staff[Role.ADMINISTRATOR]),
    ):
        made[key] = export_log_record(user=user, kind=ExportKind.LIST, source="customers.customer",
                                      file_format="csv", row_count=1)  # fmt: skip
    return made


def listed(client) -> set[int]:
    response = client.get(reverse("admin:crm_exportlog_changelist"))
    assert response.status_code == 200
    return {log.pk for log in response.context["cl"].result_list}


def test_a_manager_reads_the_exports_of_the_staff_of_their_corporation(client, staff, exports):
    client.force_login(staff[Role.MANAGER])
    assert listed(client) == {exports["home"].pk, exports["other_company"].pk}
    page = client.get(reverse("admin:crm_exportlog_change", args=[exports["home"].pk]))
    assert page.status_code == 200 and "customers.customer" in page.content.decode()
    hidden = client.get(reverse("admin:crm_exportlog_change", args=[exports["other_corporation"].pk]))
    assert hidden.status_code == 302 and hidden["Location"] == reverse("admin:index")


def test_an_administrator_reads_every_export_and_nobody_changes_one(client, staff, exports):
    client.force_login(staff[Role.ADMINISTRATOR])
    assert listed(client) == {log.pk for log in exports.values()}
    log = exports["home"]
    before = snapshot(log)
    change = reverse("admin:crm_exportlog_change", args=[log.pk])
    assert client.post(change, {"source": "x", "row_count": 0}).status_code == 403
    assert (
        client.post(reverse("admin:crm_exportlog_delete", args=[log.pk]), {"post": "yes"}).status_code == 403
    )
    assert client.get(reverse("admin:crm_exportlog_add")).status_code == 403
    assert snapshot(log) == before


@pytest.mark.parametrize(
    "role", [Role.AGENT, Role.SUPERVISOR, Role.DISPATCHER, Role.FIELD_CREW, Role.BILLING_CLERK]
)
def test_other_roles_cannot_read_the_export_log(client, staff, exports, role):
    client.force_login(staff[role])
    assert client.get(reverse("admin:crm_exportlog_changelist")).status_code == 403
    assert client.get(reverse("admin:crm_exportlog_change", args=[exports["home"].pk])).status_code == 403


def test_the_export_log_list_takes_the_same_queries_for_few_and_many_rows(client, staff, exports):
    client.force_login(staff[Role.MANAGER])
    with CaptureQueriesContext(connection) as few:
        listed(client)
    for _n in range(10):
        export_log_record(user=staff[Role.AGENT], kind=ExportKind.SELECTION, source="tickets.ticket",
                          file_format="xlsx", row_count=5)  # fmt: skip
    with CaptureQueriesContext(connection) as many:
        assert len(listed(client)) == 12
    assert len(many) == len(few)


def test_the_export_log_shows_a_typed_phone_and_national_id_as_its_reader_sees_them(client, staff, make_customer):
    """A billing clerk (who sees phones and national IDs whole) searches the customers by the caller's phone,
    filters them by a national ID, and exports; the manager of the unit, who sees only the last digits of
    both, reads the export log with them masked, and an administrator reads them whole."""
    make_customer(name="Nguyễn Văn An", phones=["0903 123 456"], national_id="079123456789")
    client.force_login(staff[Role.BILLING_CLERK])
    export_all = reverse("admin:customers_customer_export_all")
    for query in ("?q=0903123456", "?national_id=079123456789&customer_type__exact=residential"):
        response = client.post(export_all + query, {"file_format": "csv"})
        b"".join(response.streaming_content)
    assert ExportLog.objects.count() == 2
    client.force_login(staff[Role.MANAGER])
    html = client.get(reverse("admin:crm_exportlog_changelist")).content.decode()
    assert "0903123456" not in html and "079123456789" not in html
    assert "q=*******456" in html
    assert "national_id=********6789&amp;customer_type__exact=residential" in html
    log = ExportLog.objects.get(filters__contains="national_id")
    page = client.get(reverse("admin:crm_exportlog_change", args=[log.pk])).content.decode()
    assert "079123456789" not in page and "********6789" in page
    client.force_login(staff[Role.ADMINISTRATOR])
    html = client.get(reverse("admin:crm_exportlog_changelist")).content.decode()
    assert "q=0903123456" in html and "national_id=079123456789" in html


def test_a_reader_who_sees_identifiers_masked_cannot_filter_the_export_log_on_them(
    client, staff, make_customer
):
    """A billing clerk exports the customers found by a caller's phone; the unit's manager sees that export's
    filters as ``q=*******456``. Filtering the export log's list in its URL on the text of those filters
    (``?filters__contains=q=0903…``) is refused like any filter on a masked value, whether the guessed digits
    are right or not, else the manager would read the whole number one digit at a time. An administrator, who
    sees them whole, filters on them."""
    make_customer(name="Nguyễn Văn An", phones=["0903 123 456"], national_id="079123456789")
    client.force_login(staff[Role.BILLING_CLERK])
    export_all = reverse("admin:customers_customer_export_all")
    b"".join(client.post(export_all + "?q=0903123456", {"file_format": "csv"}).streaming_content)
    log = ExportLog.objects.get()
    client.force_login(staff[Role.MANAGER])
    changelist = reverse("admin:crm_exportlog_changelist")
    right = client.get(changelist, {"filters__contains": "q=09031"})
    wrong = client.get(changelist, {"filters__contains": "q=09032"})
    assert (right.status_code, wrong.status_code) == (400, 400)
    own_filter = client.get(changelist, {"kind__exact": log.kind})  # the list's own filters are unchanged
    assert own_filter.context["cl"].result_count == 1
    client.force_login(staff[Role.ADMINISTRATOR])
    found = client.get(changelist, {"filters__contains": "q=09031"})
    assert found.status_code == 200 and [row.pk for row in found.context["cl"].result_list] == [log.pk]
