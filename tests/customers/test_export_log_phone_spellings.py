"""A phone typed into a list's search in any spelling the search accepts (brackets, slashes, non-breaking
spaces: ``core.phones.PHONE_SEPARATORS``) is masked in the export log as on the customers' pages."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from django.urls import reverse

from crm.models import ExportLog, Role
from crm.services import export_filters_shown
from customers.normalise import normalise_phone


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("(028) 3822 1234", "(***) **** *234"),
        ("0903/123/456", "****/***/456"),
        ("(0903) 123 456", "(****) *** 456"),
        ("0903\u00a0123\u00a0456", "****\u00a0***\u00a0456"),  # non-breaking spaces
        ("0903 / 123 / 456", "**** / *** / 456"),
    ],
)
def test_a_phone_in_an_accepted_spelling_is_masked_for_a_manager(staff, typed, shown):
    normalise_phone(typed)  # the search accepts this spelling
    assert export_filters_shown(staff[Role.MANAGER], f"q={typed}") == f"q={shown}"
    assert export_filters_shown(staff[Role.AGENT], f"q={typed}") == f"q={typed}"  # agents see phones whole


@pytest.mark.parametrize("typed", ["31/01/2026", "2026-01-31 10:00", "2026-0001234", "sdt0903123456"])
def test_dates_tickets_numbers_and_glued_numbers_stay_as_typed(staff, typed):
    assert export_filters_shown(staff[Role.MANAGER], f"q={typed}") == f"q={typed}"


def test_the_export_log_page_shows_a_manager_a_bracketed_landline_masked(client, staff, make_customer, org):
    # given: an agent exports the customers found by a landline typed with brackets
    make_customer(org["home"], phones=["028 3822 1234"])
    client.force_login(staff[Role.AGENT])
    exported = client.post(
        reverse("admin:customers_customer_export_all") + "?q=(028) 3822 1234", {"file_format": "csv"}
    )
    b"".join(exported.streaming_content)
    log = ExportLog.objects.get(source="customers.customer")
    assert (QueryDict(log.filters)["q"], log.row_count) == ("(028) 3822 1234", 1)

    # when: the manager reads the export log
    client.force_login(staff[Role.MANAGER])
    page = client.get(reverse("admin:crm_exportlog_changelist")).content.decode()

    # then
    assert "3822 1234" not in page
    assert "q=(***) **** *234" in page
