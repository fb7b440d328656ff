"""A date filter at the calendar's first day, typed into a list's URL: read, or an invalid filter (?e=1), never a
server error nor a download that breaks. (Fails on SQLite, the embedded default; PostgreSQL reads the filter.)"""

import pytest
from django.urls import reverse

from crm.models import ExportLog, ExportStatus, Role


def test_the_export_log_filtered_from_the_first_day_of_the_calendar_is_no_server_error(client, staff):
    # given a manager who types the earliest date there is into the export log's URL
    client.force_login(staff[Role.MANAGER])
    client.raise_request_exception = False
    response = client.get(reverse("admin:crm_exportlog_changelist") + "?started_at__gte=0001-01-01")
    # then the list is shown, or says the filter is invalid (Django's ?e=1), as for a year of 10^20
    assert response.status_code == 200 or (
        response.status_code == 302 and response["Location"].endswith("?e=1")
    ), response.status_code


def test_an_export_filtered_from_the_first_day_of_the_calendar_is_whole_or_refused(client, staff):
    # given a supervisor exporting every ticket "from 01/01/0001"
    client.force_login(staff[Role.SUPERVISOR])
    client.raise_request_exception = False
    url = reverse("admin:tickets_ticket_export_all") + "?created_at__gte=0001-01-01"
    response = client.post(url, {"file_format": "csv"})
    # then the file comes whole, or the export is refused as an invalid filter (back to the list with ?e=1),
    # never a 200 whose stream breaks after its first bytes (a truncated file, an interrupted export)
    if response.status_code == 200:
        try:
            b"".join(response.streaming_content)
        except Exception as exc:
            raise AssertionError(f"the download broke: {exc!r}") from exc
    else:
        assert response.status_code == 302 and response["Location"].endswith("?e=1"), response.status_code
    assert not ExportLog.objects.filter(status=ExportStatus.INCOMPLETE).exists()


@pytest.mark.parametrize("query", ["created_at__gte=0001-01-01", "created_at__year=0"])
def test_the_tickets_list_filtered_at_the_first_day_of_the_calendar_is_no_server_error(client, staff, query):
    client.force_login(staff[Role.SUPERVISOR])
    client.raise_request_exception = False
    response = client.get(reverse("admin:tickets_ticket_changelist") + "?" + query)
    assert response.status_code == 200 or (
        response.status_code == 302 and response["Location"].endswith("?e=1")
    ), response.status_code


@pytest.mark.parametrize(
    ("role", "export_all", "query"),
    [
        (Role.BILLING_CLERK, "admin:customers_customer_export_all", "created_at__gte=0001-01-01"),
        (Role.BILLING_CLERK, "admin:billing_invoice_export_all", "issued_at__gte=0001-01-01"),
    ],
)
def test_customers_and_invoices_exported_from_the_first_day_of_the_calendar_are_whole_or_refused(
    client, staff, role, export_all, query
):
    client.force_login(staff[role])
    client.raise_request_exception = False
    response = client.post(reverse(export_all) + "?" + query, {"file_format": "csv"})
    if response.status_code == 200:
        b"".join(response.streaming_content)
    else:
        assert response.status_code == 302 and response["Location"].endswith("?e=1"), response.status_code
        assert not ExportLog.objects.exists()  # refused before anything was logged
    assert not ExportLog.objects.filter(status=ExportStatus.INCOMPLETE).exists()


def test_a_list_that_can_hold_nothing_is_still_shown(client, make_staff):
    # given a supervisor who serves no unit (their scope holds nothing: no SQL to compile)
    client.force_login(make_staff(Role.SUPERVISOR, []))
    response = client.get(reverse("admin:tickets_ticket_changelist"))
    assert response.status_code == 200 and response.context["cl"].result_count == 0
