"""A metering clerk installs a meter from stock on a contract, takes it off (back to stock or faulty), and
replaces a contract's meter in one go, from the admin and through the API; every refusal is a form error
(or a 400) and changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from customers import services
from customers.models import (
    ContractStatus,
    CustomerEvent,
    CustomerEventKind,
    Meter,
    MeterAssignment,
    MeterKind,
    MeterStatus,
)


def aware(*args):
    return timezone.make_aware(dt.datetime(*args))


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


@pytest.fixture
def stock_meter(org):
    return services.meter_register(
        actor=None, unit=org["home"], serial="NEW-000001", kind=MeterKind.ELECTRONIC
    )


@pytest.fixture
def bare_contract(make_customer):
    """A second contract of a customer, with no meter on it yet."""
    customer = make_customer()
    return services.contract_create(
        actor=None,
        customer=customer,
        purpose="Kinh doanh",
        start_date=dt.date(2024, 1, 1),
        status=ContractStatus.ACTIVE,
    )


def state():
    """Every assignment and meter status, and the number of meter events: what a refused move must leave."""
    return (
        sorted(
            MeterAssignment.objects.values_list(
                "id", "meter_id", "contract_id", "removed_at", "reading_at_removal", "removal_reason"
            )
        ),
        sorted(Meter.objects.values_list("serial", "status")),
        CustomerEvent.objects.filter(
            kind__in=[CustomerEventKind.METER_INSTALLED, CustomerEventKind.METER_REMOVED]
        ).count(),
    )


def moment(prefix: str, date: str, time: str) -> dict[str, str]:
    return {f"{prefix}_0": date, f"{prefix}_1": time}


# Install and take off, from the meter's page ----------------------------------------------------------------


def test_a_clerk_installs_a_meter_from_stock_then_takes_it_off_as_faulty(
    clerk_client, stock_meter, bare_contract
):
    # given a meter in stock: its page offers the install, not the take-off
    page = clerk_client.get(reverse("admin:customers_meter_change", args=[stock_meter.pk])).content.decode()
    assert reverse("admin:customers_meter_install", args=[stock_meter.pk]) in page
    assert reverse("admin:customers_meter_remove", args=[stock_meter.pk]) not in page
    form = clerk_client.get(reverse("admin:customers_meter_install", args=[stock_meter.pk]))
    assert form.status_code == 200
    assert list(form.context["form"].fields) == ["contract", "at", "reading"]
    # when the clerk installs it on the contract by its number
    installed = clerk_client.post(
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        {"contract": f" {bare_contract.number} ", **moment("at", "2025-03-01", "09:30"), "reading": "12"},
    )
    # then it is on the contract from that moment, with its register
    assert installed.status_code == 302
    assignment = MeterAssignment.objects.get(meter=stock_meter)
    assert (assignment.contract_id, assignment.installed_at, assignment.reading_at_install) == (
        bare_contract.pk,
        aware(2025, 3, 1, 9, 30),
        12,
    )
    assert Meter.objects.get(pk=stock_meter.pk).status == MeterStatus.INSTALLED
    event = CustomerEvent.objects.get(customer=bare_contract.customer, kind=CustomerEventKind.METER_INSTALLED,
                                      after__meter="NEW-000001")  # fmt: skip
    assert (event.actor, event.after["contract"], event.after["reading"]) == (
        installed.wsgi_request.user,
        bare_contract.number,
        12,
    )
    page = clerk_client.get(reverse("admin:customers_meter_change", args=[stock_meter.pk])).content.decode()
    assert reverse("admin:customers_meter_remove", args=[stock_meter.pk]) in page
    assert reverse("admin:customers_meter_install", args=[stock_meter.pk]) not in page

    assert clerk_client.get(reverse("admin:customers_meter_remove", args=[stock_meter.pk])).status_code == 200
    # when the clerk takes it off, faulty
    removed = clerk_client.post(
        reverse("admin:customers_meter_remove", args=[stock_meter.pk]),
        {
            **moment("at", "2025-04-02", "14:00"),
            "reading": "80",
            "reason": "Cháy cuộn dây",
            "faulty": "faulty",
        },
    )
    # then the stay is closed with its register and reason, and the meter is faulty
    assert removed.status_code == 302
    assignment.refresh_from_db()
    assert (assignment.removed_at, assignment.reading_at_removal, assignment.removal_reason) == (
        aware(2025, 4, 2, 14),
        80,
        "Cháy cuộn dây",
    )
    assert Meter.objects.get(pk=stock_meter.pk).status == MeterStatus.FAULTY
    assert (
        CustomerEvent.objects.filter(
            customer=bare_contract.customer, kind=CustomerEventKind.METER_REMOVED, reason="Cháy cuộn dây"
        ).count()
        == 1
    )


def test_an_install_before_the_contract_starts_is_a_form_error_and_changes_nothing(
    clerk_client, stock_meter, bare_contract
):
    before = state()
    response = clerk_client.post(
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        {"contract": bare_contract.number, **moment("at", "2023-12-31", "08:00"), "reading": "0"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "at": [
            f"A meter is installed while its contract runs: contract {bare_contract.number} starts on 01/01/2024."
        ]
    }
    assert state() == before


def test_an_install_on_a_contract_outside_the_clerks_units_is_a_form_error(clerk_client, stock_meter, org,
                                                                           make_customer):  # fmt: skip
    theirs = make_customer(org["other_corporation"]).contracts.get()
    before = state()
    response = clerk_client.post(
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        {"contract": theirs.number, **moment("at", "2025-03-01", "09:30"), "reading": "0"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "contract": [f"No contract numbered “{theirs.number}” in your units."]
    }
    assert state() == before


def test_a_take_off_below_the_register_at_install_is_a_form_error_and_changes_nothing(
    clerk_client, make_customer
):
    contract = make_customer().contracts.get()
    meter = MeterAssignment.objects.get(contract=contract).meter
    services.meter_remove(actor=None, meter=meter, at=aware(2021, 1, 1), reading=500, reason="Kiểm định")
    services.meter_install(actor=None, meter=meter, contract=contract, at=aware(2021, 2, 1), reading=500)
    before = state()
    response = clerk_client.post(
        reverse("admin:customers_meter_remove", args=[meter.pk]),
        {**moment("at", "2025-04-02", "14:00"), "reading": "499", "reason": "Chuyển đi", "faulty": "stock"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "reading": ["The removal reading is below the reading at install."]
    }
    assert state() == before


# Replace, from the contract's page ----------------------------------------------------------------------------


def test_a_clerk_replaces_a_contracts_meter_in_one_go(clerk_client, make_customer, stock_meter):
    # given a contract with its meter on since 2020 and a meter in stock
    customer = make_customer()
    contract = customer.contracts.get()
    old = MeterAssignment.objects.get(contract=contract)
    page = clerk_client.get(reverse("admin:customers_contract_change", args=[contract.pk])).content.decode()
    assert reverse("admin:customers_contract_replace_meter", args=[contract.pk]) in page
    form = clerk_client.get(reverse("admin:customers_contract_replace_meter", args=[contract.pk]))
    assert form.status_code == 200
    assert dict(form.context["facts"])["meter on it"] == old.meter.serial
    # when the clerk replaces it (the new meter's serial typed in lower case)
    response = clerk_client.post(
        reverse("admin:customers_contract_replace_meter", args=[contract.pk]),
        {
            **moment("at", "2025-06-01", "10:00"), "removal_reading": "1234", "reason": "Thay công tơ điện tử",
            "faulty": "stock", "new_meter": "new-000001", "install_reading": "5",
        },
    )  # fmt: skip
    # then the old one is off with its register and back in stock, the new one on from the same moment
    assert response.status_code == 302
    old.refresh_from_db()
    assert (old.removed_at, old.reading_at_removal, old.removal_reason) == (
        aware(2025, 6, 1, 10),
        1234,
        "Thay công tơ điện tử",
    )
    new = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True)
    assert (new.meter_id, new.installed_at, new.reading_at_install) == (
        stock_meter.pk,
        aware(2025, 6, 1, 10),
        5,
    )
    assert Meter.objects.get(pk=old.meter_id).status == MeterStatus.IN_STOCK
    assert Meter.objects.get(pk=stock_meter.pk).status == MeterStatus.INSTALLED
    removed = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.METER_REMOVED)
    assert (removed.after["meter"], removed.after["reading"], removed.reason) == (
        old.meter.serial,
        1234,
        "Thay công tơ điện tử",
    )
    installed = CustomerEvent.objects.filter(customer=customer, kind=CustomerEventKind.METER_INSTALLED)
    assert [e.after["meter"] for e in installed.order_by("id")] == [old.meter.serial, "NEW-000001"]


def test_a_replacement_whose_install_is_refused_leaves_the_old_meter_on(clerk_client, make_customer):
    # given a contract and a "new" meter that is in fact installed on another contract
    contract = make_customer().contracts.get()
    elsewhere = MeterAssignment.objects.get(contract=make_customer().contracts.get()).meter
    before = state()
    # when the clerk tries to replace with it
    response = clerk_client.post(
        reverse("admin:customers_contract_replace_meter", args=[contract.pk]),
        {
            **moment("at", "2025-06-01", "10:00"), "removal_reading": "1234", "reason": "Thay công tơ",
            "faulty": "stock", "new_meter": elsewhere.serial, "install_reading": "0",
        },
    )  # fmt: skip
    # then the refusal is on the form and the old meter is still on: nothing changed
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        f"Meter {elsewhere.serial} is not in stock (it is Installed)."
    ]
    assert state() == before
    assert MeterAssignment.objects.get(contract=contract).removed_at is None


def test_a_replacement_with_a_removal_register_below_the_install_is_refused_on_that_field(
    clerk_client, make_customer, stock_meter
):
    contract = make_customer().contracts.get()
    old = MeterAssignment.objects.get(contract=contract).meter
    services.meter_remove(actor=None, meter=old, at=aware(2021, 1, 1), reading=300, reason="Kiểm định")
    services.meter_install(actor=None, meter=old, contract=contract, at=aware(2021, 2, 1), reading=300)
    before = state()
    response = clerk_client.post(
        reverse("admin:customers_contract_replace_meter", args=[contract.pk]),
        {
            **moment("at", "2025-06-01", "10:00"), "removal_reading": "299", "reason": "Thay công tơ",
            "faulty": "stock", "new_meter": stock_meter.serial, "install_reading": "0",
        },
    )  # fmt: skip
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "removal_reading": ["The removal reading is below the reading at install."]
    }
    assert state() == before


# Who may ------------------------------------------------------------------------------------------------------


def test_a_clerk_of_another_unit_gets_404_and_changes_nothing(
    client, org, make_staff, make_customer, stock_meter
):
    contract = make_customer().contracts.get()
    on_contract = MeterAssignment.objects.get(contract=contract).meter
    client.force_login(make_staff(Role.BILLING_CLERK, [org["other_corporation"]]))
    before = state()
    pages = [
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        reverse("admin:customers_meter_remove", args=[on_contract.pk]),
        reverse("admin:customers_contract_replace_meter", args=[contract.pk]),
    ]
    assert [client.get(url).status_code for url in pages] == [404, 404, 404]
    posted = {
        **moment("at", "2025-06-01", "10:00"), "contract": contract.number, "reading": "9", "reason": "X",
        "faulty": "stock", "removal_reading": "9", "new_meter": stock_meter.serial, "install_reading": "0",
    }  # fmt: skip
    assert [client.post(url, posted).status_code for url in pages] == [404, 404, 404]
    assert state() == before


def test_each_role_replaces_a_meter_only_with_both_rights_else_nothing_changes(
    staff, make_customer, stock_meter
):
    contract = make_customer().contracts.get()
    allowed = []
    for role, user in staff.items():
        before = state()
        with transaction.atomic():
            try:
                services.meter_replace(
                    actor=user, contract=contract, at=aware(2025, 6, 1), removal_reading=10, reason="Thay",
                    new_meter=stock_meter, install_reading=0,
                )  # fmt: skip
            except PermissionDenied:
                assert state() == before
            else:
                allowed.append(role)
            finally:
                transaction.set_rollback(True)
    assert allowed == [Role.BILLING_CLERK, Role.ADMINISTRATOR]


def test_staff_without_the_meter_rights_see_no_buttons_and_get_403(client, staff, make_customer, stock_meter):
    contract = make_customer().contracts.get()
    on_contract = MeterAssignment.objects.get(contract=contract).meter
    client.force_login(staff[Role.AGENT])  # views customers, contracts and meters; changes none of them
    meter_page = client.get(reverse("admin:customers_meter_change", args=[stock_meter.pk])).content.decode()
    contract_page = client.get(
        reverse("admin:customers_contract_change", args=[contract.pk])
    ).content.decode()
    assert 'id="meter-install"' not in meter_page
    assert 'id="replace-meter"' not in contract_page
    before = state()
    pages = [
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        reverse("admin:customers_meter_remove", args=[on_contract.pk]),
        reverse("admin:customers_contract_replace_meter", args=[contract.pk]),
    ]
    assert [client.post(url, {}).status_code for url in pages] == [403, 403, 403]
    assert state() == before


# The API of the metering system -------------------------------------------------------------------------------


def test_the_metering_system_installs_and_removes_a_meter_by_serial_and_contract_number(
    clerk_client, stock_meter, bare_contract
):
    installed = clerk_client.post(
        "/api/v1/meters/new-000001/install/",
        {"contract": bare_contract.number, "at": "2025-03-01T09:30:00+07:00", "reading": 12},
        content_type="application/json",
    )
    assert installed.status_code == 201
    assert installed.json() == {
        "meter": "NEW-000001", "meter_status": "installed", "contract": bare_contract.number,
        "installed_at": "2025-03-01T09:30:00+07:00", "reading_at_install": 12, "removed_at": None,
        "reading_at_removal": None, "removal_reason": "",
    }  # fmt: skip
    removed = clerk_client.post(
        "/api/v1/meters/NEW-000001/remove",
        {"at": "2025-04-01T08:00:00+07:00", "reading": 90, "reason": "Chuyển đi"},
        content_type="application/json",
    )
    assert removed.status_code == 200
    assert (removed.json()["meter_status"], removed.json()["reading_at_removal"]) == ("in_stock", 90)
    assert MeterAssignment.objects.get(meter=stock_meter).removed_at == aware(2025, 4, 1, 8)


def test_a_contract_named_in_small_letters_takes_a_meter_by_the_api_as_by_the_meters_import(
    clerk_client, org, stock_meter, bare_contract, make_customer
):
    from tests.customers.test_import_export import confirm, csv_bytes, preview

    by_file = services.contract_create(
        actor=None, customer=make_customer(), purpose="Kinh doanh", start_date=dt.date(2024, 1, 1),
        status=ContractStatus.ACTIVE,
    )  # fmt: skip
    row = {"serial": "NEW-0001", "unit": "PE0100", "kind": "electronic", "contract": by_file.number.lower(),
           "installed_at": "2025-03-01 09:30", "reading_at_install": "5"}  # fmt: skip
    confirm(clerk_client, "meter", preview(clerk_client, "meter", csv_bytes([row])))
    assert MeterAssignment.objects.filter(contract=by_file, meter__serial="NEW-0001").exists()

    response = clerk_client.post(
        "/api/v1/meters/new-000001/install/",
        {"contract": f" {bare_contract.number.lower()} ", "at": "2025-03-01T09:30:00+07:00", "reading": 5},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["contract"] == bare_contract.number
    assert MeterAssignment.objects.get(meter=stock_meter).contract == bare_contract


def test_the_api_answers_a_refusal_with_400_and_its_field(clerk_client, stock_meter, bare_contract):
    before = state()
    early = clerk_client.post(
        "/api/v1/meters/NEW-000001/install/",
        {"contract": bare_contract.number, "at": "2023-06-01T09:00:00+07:00", "reading": 0},
        content_type="application/json",
    )
    unknown_contract = clerk_client.post(
        "/api/v1/meters/NEW-000001/install/",
        {"contract": "PE0100NOPE-01", "at": "2025-06-01T09:00:00+07:00", "reading": 0},
        content_type="application/json",
    )
    not_installed = clerk_client.post(
        "/api/v1/meters/NEW-000001/remove/",
        {"at": "2025-06-01T09:00:00+07:00", "reading": 0, "reason": "Hỏng"},
        content_type="application/json",
    )
    assert (early.status_code, early.json()) == (
        400,
        {
            "at": [
                f"A meter is installed while its contract runs: contract {bare_contract.number} starts on 01/01/2024."
            ]
        },
    )
    assert (unknown_contract.status_code, unknown_contract.json()) == (
        400,
        {"contract": ["No contract numbered “PE0100NOPE-01” in your units."]},
    )
    assert (not_installed.status_code, not_installed.json()) == (
        400,
        {"detail": ["Meter NEW-000001 is not installed."]},
    )
    assert state() == before


def test_the_api_answers_a_bad_serial_with_400_and_an_unknown_or_foreign_one_with_404(
    clerk_client, org, make_customer
):
    theirs = MeterAssignment.objects.get(
        contract=make_customer(org["other_corporation"]).contracts.get()
    ).meter
    body = {"at": "2025-06-01T09:00:00+07:00", "reading": 10, "reason": "Hỏng"}
    before = state()
    bad = clerk_client.post("/api/v1/meters/ab!/remove/", body, content_type="application/json")
    unknown = clerk_client.post("/api/v1/meters/NOSUCH-1/remove/", body, content_type="application/json")
    foreign = clerk_client.post(
        f"/api/v1/meters/{theirs.serial}/remove/", body, content_type="application/json"
    )
    assert (bad.status_code, bad.json()) == (
        400,
        {"serial": ["A meter serial has 4 to 20 capital letters, digits or dashes."]},
    )
    assert (unknown.status_code, foreign.status_code) == (404, 404)
    assert state() == before


def test_the_api_refuses_staff_without_the_meter_rights(client, staff, stock_meter, bare_contract):
    client.force_login(staff[Role.AGENT])
    before = state()
    response = client.post(
        "/api/v1/meters/NEW-000001/install/",
        {"contract": bare_contract.number, "at": "2025-03-01T09:30:00+07:00", "reading": 0},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert state() == before


# Moves in the future, and a register that runs backwards between contracts ----------------------------------


def test_an_install_or_take_off_in_the_future_is_refused_on_the_form_and_the_api_and_changes_nothing(
    clerk_client, make_customer, stock_meter, bare_contract
):
    tomorrow = timezone.localtime() + dt.timedelta(days=1)
    installed = MeterAssignment.objects.get(contract=make_customer().contracts.get())
    before = state()
    form_install = clerk_client.post(
        reverse("admin:customers_meter_install", args=[stock_meter.pk]),
        {"contract": bare_contract.number, **moment("at", f"{tomorrow:%Y-%m-%d}", "08:00"), "reading": "0"},
    )
    form_remove = clerk_client.post(
        reverse("admin:customers_meter_remove", args=[installed.meter.pk]),
        {**moment("at", f"{tomorrow:%Y-%m-%d}", "08:00"), "reading": "999999", "reason": "Hỏng",
         "faulty": "stock"},
    )  # fmt: skip
    api_install = clerk_client.post(
        f"/api/v1/meters/{stock_meter.serial}/install/",
        {"contract": bare_contract.number, "at": tomorrow.isoformat(), "reading": 0},
        content_type="application/json",
    )
    expected = f"A meter move is recorded once done: {tomorrow:%d/%m/%Y} 08:00 is in the future."
    assert form_install.status_code == 400
    assert form_install.context["form"].errors == {"at": [expected]}
    assert form_remove.status_code == 400
    assert form_remove.context["form"].errors == {"at": [expected]}
    assert api_install.status_code == 400
    assert list(api_install.json()) == ["at"]
    assert "is in the future" in api_install.json()["at"][0]
    assert state() == before


def test_a_move_a_few_seconds_ahead_of_the_servers_clock_is_taken(stock_meter, bare_contract):
    ahead = timezone.now() + dt.timedelta(seconds=20)
    assignment = services.meter_install(actor=None, meter=stock_meter, contract=bare_contract, at=ahead, reading=7)
    assert (assignment.installed_at, assignment.reading_at_install) == (ahead, 7)


def test_a_meter_moved_to_another_contract_keeps_its_register(clerk_client, make_customer, bare_contract):
    first = make_customer().contracts.get()
    meter = MeterAssignment.objects.get(contract=first).meter
    services.meter_remove(actor=None, meter=meter, at=aware(2025, 1, 10, 9), reading=4200, reason="Chuyển")
    before = state()
    response = clerk_client.post(
        reverse("admin:customers_meter_install", args=[meter.pk]),
        {"contract": bare_contract.number, **moment("at", "2025-02-01", "09:00"), "reading": "4199"},
    )
    assert response.status_code == 400
    assert response.context["form"].errors == {
        "reading": [
            f"Meter {meter.serial} came off contract {first.number} reading 4200 kWh; its register cannot read less now."
        ]
    }
    assert state() == before
    moved = services.meter_install(
        actor=None, meter=meter, contract=bare_contract, at=aware(2025, 2, 1, 9), reading=4200
    )
    assert (moved.contract_id, moved.reading_at_install) == (bare_contract.pk, 4200)
