"""What a manager reads in the export log's filters column."""

import pytest

from crm.models import ExportKind, Role
from crm.services import export_filters_shown, export_log_record


def test_a_manager_reads_the_dates_and_numbers_of_a_logged_export_as_they_were_typed(staff):
    # given exports of the dashboard for January and of the tickets list searched by a ticket's number
    manager = staff[Role.MANAGER]
    dashboard = export_log_record(
        user=manager, kind=ExportKind.DASHBOARD, source="dashboard.sla", file_format="csv", row_count=3,
        filters="start=2026-01-01&end=2026-01-31&export=sla",
    )  # fmt: skip
    tickets = export_log_record(
        user=staff[Role.SUPERVISOR], kind=ExportKind.LIST, source="tickets.ticket", file_format="csv",
        row_count=1, filters="created_at__gte=2026-01-01&q=2026-0001234",
    )  # fmt: skip

    # then the manager reads the period and the ticket's number: neither is anybody's phone or national ID
    assert export_filters_shown(manager, dashboard.filters) == "start=2026-01-01&end=2026-01-31&export=sla"
    assert export_filters_shown(manager, tickets.filters) == "created_at__gte=2026-01-01&q=2026-0001234"


@pytest.mark.parametrize(
    ("filters", "shown"),
    [
        # a phone typed into the search, alone or glued to other digits, and a national ID: masked
        ("q=0903123456", "q=*******456"),
        ("q=0903 123 456", "q=**** *** 456"),
        ("q=079123456789", "q=********6789"),
        ("q=123456789", "q=******789"),  # read as a phone without its 0
        ("q=2026-01-01-0903123456", "q=****-**-**-******3456"),
        # any value of a filter on a phone or a national ID
        ("phones__number__startswith=0903", "phones__number__startswith=*903"),
        ("customer__national_id__startswith=079123", "customer__national_id__startswith=**9123"),
        # dates (with a time), tickets' numbers, short numbers and the selected rows' ids: as typed
        ("created_at__gte=2026-01-01 10:00:00", "created_at__gte=2026-01-01 10:00:00"),
        ("q=1999-0000001", "q=1999-0000001"),
        ("amount__gte=1500000", "amount__gte=1500000"),
        ("selected=12345678&selected=9876543210", "selected=12345678&selected=9876543210"),
    ],
)
def test_a_manager_reads_identifiers_masked_and_everything_else_as_typed(staff, filters, shown):
    assert export_filters_shown(staff[Role.MANAGER], filters) == shown
    assert export_filters_shown(staff[Role.ADMINISTRATOR], filters) == filters
