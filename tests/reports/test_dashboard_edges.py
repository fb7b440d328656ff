"""The managers' dashboard at its edges: a period at the calendar's ends, programmes of the same name."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import RebateBand, RebateProgramme
from crm.models import ExportLog, Role
from customers.models import Contract
from reports import dashboard


@pytest.mark.parametrize(
    "start,end",
    [("9999-12-01", "9999-12-31"), ("0001-01-01", "0001-01-31"), ("3000-01-01", "3000-01-31")],
)
def test_a_period_at_the_edge_of_the_calendar_is_a_form_error_not_a_server_error(client, staff, start, end):
    client.force_login(staff[Role.ADMINISTRATOR])
    client.raise_request_exception = False
    page = client.get(reverse("dashboard"), {"start": start, "end": end})
    assert page.status_code == 200
    assert "Choose dates from 01/01/1900 to 31/12/2999." in page.content.decode()
    export = client.post(
        reverse("dashboard"), {"start": start, "end": end, "export": "refunds", "format": "csv"}
    )
    assert export.status_code == 400
    assert export.content.decode() == "Choose a valid period first."
    assert not ExportLog.objects.exists()  # nothing was exported


def test_the_last_day_the_form_takes_is_a_page(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    page = client.get(reverse("dashboard"), {"start": "2999-12-01", "end": "2999-12-31"})
    assert page.status_code == 200
    assert "Choose dates from" not in page.content.decode()


def _two_rounds(org, make_customer, bases):
    billing.tariffs_load_reference()
    sep, oct_ = dt.date(2025, 9, 1), dt.date(2025, 10, 1)
    customer = make_customer(org["home"])
    contract = Contract.objects.get(customer=customer)
    billing.reading_record(actor=None, contract=contract, period=sep, value=200, source="handheld")
    billing.reading_record(actor=None, contract=contract, period=oct_, value=400, source="handheld")
    billing.billing_run(actor=None, period=sep)
    billing.billing_run(actor=None, period=oct_)
    programmes = []
    for period, basis, percent in ((sep, bases[0], "10"), (oct_, bases[1], "20")):
        programme = RebateProgramme.objects.create(
            name="Giảm giá điện", legal_basis=basis, period_from=period, period_to=period
        )
        RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
        billing.rebate_apply(actor=None, programme=programme)
        programmes.append(programme)
    return programmes


def test_two_programmes_of_the_same_name_are_two_rows_named_by_their_legal_basis(org, make_customer, staff):
    round4, round5 = _two_rounds(org, make_customer, ("Nghị quyết vòng 4", "Nghị quyết vòng 5"))
    today = timezone.localdate()
    data = dashboard.rebates(staff[Role.MANAGER], today, today)
    rows = {r["programme"]: (r["count"], r["amount"]) for r in data["by_programme"]}
    amounts = {p.pk: sum(a.amount for a in p.applications.all()) for p in (round4, round5)}
    assert rows == {
        "Giảm giá điện (Nghị quyết vòng 4)": (1, amounts[round4.pk]),
        "Giảm giá điện (Nghị quyết vòng 5)": (1, amounts[round5.pk]),
    }
    assert data["count"] == 2 and data["amount"] == amounts[round4.pk] + amounts[round5.pk]


def test_two_programmes_of_the_same_name_and_basis_are_told_apart_by_their_number(org, make_customer, staff):
    first, second = _two_rounds(org, make_customer, ("Nghị quyết 01", "Nghị quyết 01"))
    today = timezone.localdate()
    data = dashboard.rebates(staff[Role.MANAGER], today, today)
    assert [r["programme"] for r in data["by_programme"]] == [
        f"Giảm giá điện (Nghị quyết 01) #{first.pk}",
        f"Giảm giá điện (Nghị quyết 01) #{second.pk}",
    ]


def test_the_electronic_share_table_heads_its_phone_column_as_the_channel_in_vietnamese(staff):
    from django.utils import translation

    with translation.override("vi"):
        board = dashboard.Dashboard(staff[Role.MANAGER], dt.date(2026, 3, 1), dt.date(2026, 3, 31))
        columns = dashboard.widget_table(board, dashboard.WIDGETS_BY_KEY["electronic"]).columns
    # the requests taken by phone, headed as the channel beside "kênh điện tử", not as "a phone number"
    assert columns[1:3] == ["kênh điện tử", "qua điện thoại"], columns
