"""Contracts and meters over their life in the admin and the API: their pages have nothing to save, a contract
that has not started can be cancelled, a contract's dates and a meter's moves stay within the dates a record
can have (``customers.rules``), and a move page at a mangled address is not found."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from customers import rules, services
from customers.models import (
    Contract,
    ContractStatus,
    CustomerEvent,
    CustomerEventKind,
    Meter,
    MeterAssignment,
    MeterKind,
    MeterStatus,
)
from tests.customers.test_import_export import csv_bytes, preview, problems


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    client.raise_request_exception = False  # a server error is answered as a 500, as a browser gets it
    return client


@pytest.fixture
def stock_meter(org):
    return services.meter_register(
        actor=None, unit=org["home"], serial="NEW-000001", kind=MeterKind.MECHANICAL
    )


def contracts_state():
    return sorted(
        Contract.objects.values_list("id", "number", "customer_id", "start_date", "end_date", "status")
    )


def moves_state():
    return (
        sorted(
            MeterAssignment.objects.values_list("id", "meter_id", "contract_id", "installed_at", "removed_at")
        ),
        sorted(Meter.objects.values_list("serial", "status")),
        CustomerEvent.objects.count(),
    )


def error_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


def next_month() -> dt.date:
    return timezone.localdate() + dt.timedelta(days=30)


# The change pages of a signed contract and a registered meter ----------------------------------------------


def test_a_contracts_page_offers_no_save_and_a_save_sent_anyway_changes_nothing(clerk_client, make_customer):
    contract = make_customer().contracts.get()
    url = reverse("admin:customers_contract_change", args=[contract.pk])
    page = clerk_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b'name="_continue"' not in page.content
    assert b'name="_addanother"' not in page.content
    before = contracts_state(), CustomerEvent.objects.count()
    response = clerk_client.post(
        url, {"_save": "Save"}, follow=True
    )  # a page left open from before, or a hand-made request
    assert response.redirect_chain == [(url, 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "Nothing is changed from this page: use its actions and buttons."
    ]
    assert (contracts_state(), CustomerEvent.objects.count()) == before


def test_a_meters_page_offers_no_save_and_a_save_sent_anyway_changes_nothing(clerk_client, make_customer):
    make_customer()
    meter = Meter.objects.get()
    url = reverse("admin:customers_meter_change", args=[meter.pk])
    page = clerk_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b'name="_continue"' not in page.content
    before = moves_state()
    response = clerk_client.post(url, {"_continue": "Save and continue", "serial": "X-1", "status": "faulty"},
                                 follow=True)  # fmt: skip
    assert response.redirect_chain == [(url, 302)]
    assert [str(m) for m in response.context["messages"]] == ["Nothing is changed from this page: use its actions and buttons."]
    assert moves_state() == before
    assert list(Meter.objects.values_list("serial", "unit_id", "status")) == [
        (meter.serial, meter.unit_id, MeterStatus.INSTALLED)
    ]


def test_the_add_pages_still_offer_save(clerk_client):
    for name in ("admin:customers_contract_add", "admin:customers_meter_add"):
        page = clerk_client.get(reverse(name))
        assert page.status_code == 200 and b'name="_save"' in page.content


# The meter-move pages at a mangled address --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["customers_contract_replace_meter", "customers_meter_install", "customers_meter_remove"]
)
@pytest.mark.parametrize("object_id", ["abc", "1x", "1.0", "99999999999999999999999"])
def test_a_meter_move_page_at_an_id_no_record_can_have_is_not_found(
    clerk_client, make_customer, name, object_id
):
    make_customer()
    before = moves_state()
    assert clerk_client.get(reverse(f"admin:{name}", args=[object_id])).status_code == 404
    assert clerk_client.post(reverse(f"admin:{name}", args=[object_id]), {}).status_code == 404
    assert moves_state() == before


def test_a_meter_move_page_of_a_real_id_still_opens(clerk_client, make_customer):
    contract = make_customer().contracts.get()
    meter = MeterAssignment.objects.get(contract=contract).meter
    assert (
        clerk_client.get(reverse("admin:customers_contract_replace_meter", args=[contract.pk])).status_code
        == 200
    )
    assert clerk_client.get(reverse("admin:customers_meter_remove", args=[meter.pk])).status_code == 200


# Cancelling a contract that has not started ---------------------------------------------------------------------


def test_a_pending_contract_that_starts_next_month_is_cancelled_and_ends_on_its_start_date(
    clerk_client, make_customer
):
    customer = make_customer()
    contract = services.contract_create(
        actor=None, customer=customer, purpose="Kinh doanh", start_date=next_month()
    )
    assert contract.status == ContractStatus.PENDING
    response = clerk_client.post(
        reverse("admin:customers_contract_changelist"),
        {"action": "terminate", "_selected_action": [contract.pk]},
    )
    assert response.status_code == 302
    assert error_messages(response) == []
    contract.refresh_from_db()
    assert (contract.status, contract.end_date) == (ContractStatus.TERMINATED, next_month())
    event = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.CONTRACT_STATUS)
    assert (event.before["status"], event.after["status"]) == (
        ContractStatus.PENDING,
        ContractStatus.TERMINATED,
    )


def test_a_contract_activated_before_its_start_is_cancelled_on_its_start_date(make_customer, clerk):
    contract = services.contract_create(
        actor=None, customer=make_customer(), purpose="Kho", start_date=next_month()
    )
    services.contract_set_status(actor=clerk, contract=contract, status=ContractStatus.ACTIVE)
    services.contract_set_status(actor=clerk, contract=contract, status=ContractStatus.TERMINATED)
    contract.refresh_from_db()
    assert (contract.status, contract.end_date) == (ContractStatus.TERMINATED, next_month())


def test_a_pending_contract_starting_today_ends_today(make_customer, clerk):
    today = timezone.localdate()
    contract = services.contract_create(actor=None, customer=make_customer(), purpose="Kho", start_date=today)
    services.contract_set_status(actor=clerk, contract=contract, status=ContractStatus.TERMINATED)
    contract.refresh_from_db()
    assert (contract.status, contract.end_date) == (ContractStatus.TERMINATED, today)


def test_a_contract_ends_no_earlier_than_it_starts_when_the_end_date_is_given(make_customer, clerk):
    contract = services.contract_create(
        actor=None, customer=make_customer(), purpose="Kho", start_date=next_month()
    )
    before = contracts_state()
    with pytest.raises(ValidationError) as refused:
        services.contract_set_status(
            actor=clerk, contract=contract, status=ContractStatus.TERMINATED, on=timezone.localdate()
        )
    assert refused.value.message_dict == {
        "end_date": [f"A contract cannot end before it starts ({next_month():%d/%m/%Y})."]
    }
    assert contracts_state() == before
    assert not CustomerEvent.objects.filter(kind=CustomerEventKind.CONTRACT_STATUS).exists()


def test_a_cancelled_contract_takes_no_meter(make_customer, clerk, stock_meter):
    contract = services.contract_create(
        actor=None, customer=make_customer(), purpose="Kho", start_date=next_month()
    )
    services.contract_set_status(actor=clerk, contract=contract, status=ContractStatus.TERMINATED)
    before = moves_state()
    with pytest.raises(ValidationError) as refused:
        services.meter_install(
            actor=clerk, meter=stock_meter, contract=contract, at=timezone.now(), reading=0
        )
    assert refused.value.messages == ["A meter cannot be installed on a terminated contract."]
    assert moves_state() == before


# The dates a contract can have ------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["0001-01-01", "1899-12-31", "2205-03-01", "9999-12-31"])
def test_a_contract_start_date_outside_1900_to_a_year_ahead_is_a_form_error(
    clerk_client, make_customer, typed
):
    customer = make_customer()
    before = contracts_state(), CustomerEvent.objects.count()
    response = clerk_client.post(
        reverse("admin:customers_contract_add"),
        {
            "customer": customer.pk,
            "tariff_category": "residential",
            "purpose": "Sinh hoạt",
            "start_date": typed,
        },
    )
    assert response.status_code == 200, response.status_code
    day = dt.date.fromisoformat(typed)
    latest = rules.latest_contract_day()
    assert response.context["adminform"].form.errors == {
        "start_date": [
            f"{day.day:02d}/{day.month:02d}/{day.year:04d} is not a date a contract can have: give a date "
            f"from 01/01/1900 to {latest:%d/%m/%Y}."
        ]
    }
    assert (contracts_state(), CustomerEvent.objects.count()) == before


def test_the_first_and_last_dates_a_contract_can_have_are_taken(make_customer):
    customer = make_customer()
    first = services.contract_create(
        actor=None, customer=customer, purpose="Kho", start_date=dt.date(1900, 1, 1)
    )
    last = services.contract_create(
        actor=None, customer=customer, purpose="Kho", start_date=rules.latest_contract_day()
    )
    assert (first.start_date, last.start_date) == (dt.date(1900, 1, 1), rules.latest_contract_day())
    with pytest.raises(ValidationError) as refused:
        services.contract_create(
            actor=None,
            customer=customer,
            purpose="Kho",
            start_date=rules.latest_contract_day() + dt.timedelta(days=1),
        )
    assert list(refused.value.message_dict) == ["start_date"]


def test_a_year_from_a_29_february_is_the_28_february(monkeypatch):
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: dt.date(2028, 2, 29))
    assert rules.latest_contract_day() == dt.date(2029, 2, 28)


def test_an_import_row_with_a_start_date_far_from_today_is_refused_and_signs_nothing(
    client, clerk, make_customer
):
    customer = make_customer()
    client.force_login(clerk)
    base = {"number": "", "customer": customer.code, "tariff_category": "residential", "purpose": "Kinh doanh",
            "end_date": "", "status": ""}  # fmt: skip
    before = contracts_state()
    previewed = preview(client, "contract", csv_bytes([{**base, "start_date": "2205-03-01"}]))
    assert problems(previewed) == [
        (
            2,  # the file's second line, under its header
            [
                f"Start date: 01/03/2205 is not a date a contract can have: give a date from 01/01/1900 to "
                f"{rules.latest_contract_day():%d/%m/%Y}."
            ],
        )
    ]
    assert contracts_state() == before


@pytest.mark.parametrize("on", [dt.date(1, 1, 1), dt.date(1899, 12, 31), dt.date(9999, 12, 31)])
def test_a_contract_end_date_far_from_today_is_refused_and_changes_nothing(make_customer, clerk, on):
    contract = services.contract_create(
        actor=None, customer=make_customer(), purpose="Kho", start_date=dt.date(2024, 1, 1)
    )
    before = contracts_state()
    with pytest.raises(ValidationError) as refused:
        services.contract_set_status(actor=clerk, contract=contract, status=ContractStatus.TERMINATED, on=on)
    assert list(refused.value.message_dict) == ["end_date"]
    assert "is not a date a contract can have" in refused.value.messages[0]
    assert contracts_state() == before


def test_a_contract_signed_with_a_far_date_before_the_rule_can_still_be_cancelled(make_customer, clerk):
    # written by an earlier version that took any date: not started, it ends on its start date
    customer = make_customer()
    typo = Contract.objects.create(
        number=f"{customer.code}-09", customer=customer, purpose="Kho", start_date=dt.date(2205, 3, 1)
    )
    services.contract_set_status(actor=clerk, contract=typo, status=ContractStatus.TERMINATED)
    typo.refresh_from_db()
    assert (typo.status, typo.end_date) == (ContractStatus.TERMINATED, dt.date(2205, 3, 1))


# The moments a meter move can have ------------------------------------------------------------------------------


@pytest.fixture
def year_one_contract(make_customer):
    """A contract dated year 1, as an earlier version signed any date."""
    customer = make_customer()
    return Contract.objects.create(
        number=f"{customer.code}-09", customer=customer, purpose="Sinh hoạt", start_date=dt.date(1, 1, 1),
        status=ContractStatus.ACTIVE,
    )  # fmt: skip


def test_an_install_dated_in_year_one_is_a_form_error_not_a_server_error(
    clerk_client, year_one_contract, stock_meter
):
    before = moves_state()
    response = clerk_client.post(
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        {"contract": year_one_contract.number, "at_0": "0001-01-01", "at_1": "00:00", "reading": "0"},
    )
    assert response.status_code == 400, response.status_code
    assert response.context["form"].errors == {
        "at": ["A meter move is dated from 01/01/1990 on: 01/01/0001 00:00 is too early."]
    }
    assert moves_state() == before
    stock_meter.refresh_from_db()
    assert stock_meter.status == MeterStatus.IN_STOCK


@pytest.mark.parametrize(
    "at", ["0001-01-01T03:00:00+00:00", "0001-01-01T00:00:00+07:00", "1989-12-31T16:59:59+00:00"]
)
def test_the_api_refuses_an_install_before_1990_with_400(clerk_client, year_one_contract, stock_meter, at):
    before = moves_state()
    response = clerk_client.post(
        f"/api/v1/meters/{stock_meter.serial}/install/",
        {"contract": year_one_contract.number, "at": at, "reading": 0},
        content_type="application/json",
    )
    assert response.status_code == 400, response.status_code
    assert list(response.json()) == ["at"]
    assert moves_state() == before


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00"])
def test_the_api_refuses_an_install_at_the_end_of_the_calendar_with_400(
    clerk_client, make_customer, stock_meter, at
):
    contract = make_customer().contracts.get()
    services.meter_remove(
        actor=None, meter=MeterAssignment.objects.get(contract=contract).meter, at=timezone.now(), reading=5,
        reason="Thay",
    )  # fmt: skip
    before = moves_state()
    response = clerk_client.post(
        f"/api/v1/meters/{stock_meter.serial}/install/",
        {"contract": contract.number, "at": at, "reading": 0},
        content_type="application/json",
    )
    assert response.status_code == 400, response.status_code
    assert list(response.json()) == ["at"]
    assert moves_state() == before


@pytest.mark.parametrize("date", ["0001-01-01", "1989-12-31", "9999-12-31"])
def test_a_take_off_far_from_today_is_a_form_error_and_the_api_answers_400(clerk_client, make_customer, date):
    contract = make_customer().contracts.get()
    meter = MeterAssignment.objects.get(contract=contract).meter
    before = moves_state()
    form = clerk_client.post(
        reverse("admin:customers_meter_remove", args=[meter.pk]),
        {"at_0": date, "at_1": "23:59", "reading": "10", "reason": "Hỏng", "faulty": "stock"},
    )
    api = clerk_client.post(
        f"/api/v1/meters/{meter.serial}/remove/",
        {"at": f"{date}T23:59:00+07:00", "reading": 10, "reason": "Hỏng"},
        content_type="application/json",
    )
    assert form.status_code == 400, form.status_code
    assert list(form.context["form"].errors) == ["at"]
    assert api.status_code == 400, api.status_code
    assert list(api.json()) == ["at"]
    assert moves_state() == before


def test_a_move_at_the_first_moment_of_1990_is_taken(year_one_contract, stock_meter):
    first = timezone.make_aware(dt.datetime(1990, 1, 1))
    assignment = services.meter_install(
        actor=None, meter=stock_meter, contract=year_one_contract, at=first, reading=0
    )
    assert assignment.installed_at == first
    with pytest.raises(ValidationError) as refused:
        services.meter_remove(
            actor=None, meter=stock_meter, at=first - dt.timedelta(seconds=1), reading=0, reason="Thay"
        )
    assert refused.value.message_dict == {
        "at": ["A meter move is dated from 01/01/1990 on: 31/12/1989 23:59 is too early."]
    }


def test_a_moment_local_time_cannot_hold_is_written_as_given():
    at = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert rules.moment_text(at) == "31/12/9999 23:59"
    with pytest.raises(ValidationError) as refused:
        rules.check_move_moment(at)
    assert refused.value.message_dict == {
        "at": ["A meter move is recorded once done: 31/12/9999 23:59 is in the future."]
    }
