"""A contract's meters over time: one meter a contract and one contract a meter, over the whole history; a meter
comes off its contract (with its final reading) before the contract ends, after the readings taken on it and
not below them; and whoever hangs a meter on a contract may change both."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services as billing
from crm.models import Role
from crm.permissions import NotAllowed
from customers import services
from customers.models import (
    ContractStatus,
    CustomerEvent,
    CustomerEventKind,
    MeterAssignment,
    MeterKind,
    MeterStatus,
)
from tests.customers.test_import_export import csv_bytes, preview, problems


def aware(*args):
    return timezone.make_aware(dt.datetime(*args))


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


def only_assignment(contract) -> MeterAssignment:
    return MeterAssignment.objects.get(contract=contract)


def events(customer, kind) -> int:
    return CustomerEvent.objects.filter(customer=customer, kind=kind).count()


# Ending a contract ----------------------------------------------------------------------------------------


def test_a_contract_is_not_terminated_while_its_meter_is_installed_on_it(org, make_customer, clerk):
    customer = make_customer()
    contract = customer.contracts.get()
    with pytest.raises(ValidationError) as refused:
        services.contract_set_status(
            actor=clerk, contract=contract, status=ContractStatus.TERMINATED, on=dt.date(2025, 6, 30)
        )
    serial = only_assignment(contract).meter.serial
    assert refused.value.messages == [
        f"Meter {serial} is still installed on contract {contract.number}: remove it with its final reading "
        "first, then terminate the contract."
    ]
    contract.refresh_from_db()
    assert (contract.status, contract.end_date) == (ContractStatus.ACTIVE, None)
    assert only_assignment(contract).removed_at is None
    assert events(customer, CustomerEventKind.CONTRACT_STATUS) == 0


def test_a_contract_is_terminated_once_its_meter_came_off_and_not_before_that_day(org, make_customer, clerk):
    customer = make_customer()
    contract = customer.contracts.get()
    meter = only_assignment(contract).meter
    services.meter_remove(
        actor=clerk, meter=meter, at=aware(2025, 10, 20, 10), reading=250, reason="Chuyển đi"
    )

    with pytest.raises(ValidationError) as refused:
        services.contract_set_status(
            actor=clerk, contract=contract, status=ContractStatus.TERMINATED, on=dt.date(2025, 10, 19)
        )
    assert refused.value.message_dict == {
        "end_date": [
            f"Contract {contract.number} cannot end before its meter was removed (20/10/2025 10:00)."
        ]
    }
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE

    services.contract_set_status(
        actor=clerk, contract=contract, status=ContractStatus.TERMINATED, on=dt.date(2025, 10, 20)
    )
    contract.refresh_from_db()
    assert (contract.status, contract.end_date) == (ContractStatus.TERMINATED, dt.date(2025, 10, 20))


# One meter a contract, one contract a meter ---------------------------------------------------------------


def test_a_second_meter_is_not_hung_on_a_contract_that_has_one(org, make_customer, clerk):
    customer = make_customer()
    contract = customer.contracts.get()
    first = only_assignment(contract).meter
    second = services.meter_register(
        actor=clerk, unit=org["home"], serial="AUD0000002", kind=MeterKind.MECHANICAL
    )
    with pytest.raises(ValidationError) as refused:
        services.meter_install(actor=clerk, meter=second, contract=contract, at=aware(2025, 1, 1), reading=0)
    assert refused.value.message_dict == {
        "contract": [
            f"Contract {contract.number} already has meter {first.serial} installed; remove it first."
        ]
    }
    assert MeterAssignment.objects.filter(contract=contract, removed_at__isnull=True).count() == 1
    second.refresh_from_db()
    assert second.status == MeterStatus.IN_STOCK
    assert events(customer, CustomerEventKind.METER_INSTALLED) == 1  # the first meter's only


def test_the_database_keeps_one_open_meter_assignment_a_contract(org, make_customer):
    contract = make_customer().contracts.get()
    second = services.meter_register(
        actor=None, unit=org["home"], serial="AUD0000005", kind=MeterKind.MECHANICAL
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        MeterAssignment.objects.create(meter=second, contract=contract, installed_at=aware(2025, 1, 1),
                                       reading_at_install=0)  # fmt: skip
    assert MeterAssignment.objects.filter(contract=contract).count() == 1


def test_an_import_does_not_hang_a_second_meter_on_a_contract(clerk_client, org, make_customer):
    contract = make_customer().contracts.get()
    first = only_assignment(contract).meter
    rows = [{"serial": "IMP-0001", "unit": "PE0100", "kind": "electronic", "phases": "1", "manufacturer": "",
             "status": "", "contract": contract.number, "installed_at": "2025-03-01 08:30",
             "reading_at_install": "0"}]  # fmt: skip
    previewed = preview(clerk_client, "meter", csv_bytes(rows))
    assert problems(previewed) == [
        (
            2,
            [
                f"Contract: Contract {contract.number} already has meter {first.serial} installed; remove it first."
            ],
        )
    ]
    assert not MeterAssignment.objects.filter(meter__serial="IMP-0001").exists()


def test_a_meter_is_not_installed_back_in_time_over_its_own_history(org, make_customer, clerk):
    a = make_customer()
    b = make_customer(name="Phạm Văn Bình", phones=["0912 000 111"])
    meter = MeterAssignment.objects.get(contract__customer=a).meter
    services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 6, 1), reading=900, reason="Thay công tơ")
    b_meter = MeterAssignment.objects.get(contract__customer=b).meter
    services.meter_remove(
        actor=clerk, meter=b_meter, at=aware(2024, 12, 1), reading=100, reason="Hỏng", faulty=True
    )
    contract = b.contracts.get()
    with pytest.raises(ValidationError) as refused:
        services.meter_install(actor=clerk, meter=meter, contract=contract, at=aware(2025, 1, 1), reading=900)
    assert refused.value.message_dict == {
        "at": [
            f"Meter {meter.serial} served contract {a.contracts.get().number} until 01/06/2025 00:00; it cannot "
            "be installed before then."
        ]
    }
    assert MeterAssignment.objects.filter(meter=meter).count() == 1

    moved = services.meter_install(
        actor=clerk, meter=meter, contract=contract, at=aware(2025, 6, 2), reading=900
    )
    assert (moved.contract, moved.installed_at) == (contract, aware(2025, 6, 2))


def test_a_new_meter_is_not_installed_before_the_contracts_previous_meter_came_off(org, make_customer, clerk):
    customer = make_customer()
    contract = customer.contracts.get()
    old = only_assignment(contract).meter
    services.meter_remove(
        actor=clerk, meter=old, at=aware(2025, 6, 1), reading=900, reason="Hỏng", faulty=True
    )
    new = services.meter_register(
        actor=clerk, unit=org["home"], serial="AUD0000006", kind=MeterKind.ELECTRONIC
    )
    with pytest.raises(ValidationError) as refused:
        services.meter_install(actor=clerk, meter=new, contract=contract, at=aware(2025, 5, 1), reading=0)
    assert refused.value.message_dict == {
        "at": [
            f"Contract {contract.number} had meter {old.serial} until 01/06/2025 00:00; a new meter is "
            "installed after that."
        ]
    }
    assert not MeterAssignment.objects.filter(meter=new).exists()


def test_a_meter_is_not_installed_before_its_contract_starts(org, make_customer, clerk):
    customer = make_customer()
    contract = services.contract_create(
        actor=clerk, customer=customer, purpose="Kinh doanh", start_date=dt.date(2025, 9, 1), status="active"
    )
    meter = services.meter_register(
        actor=clerk, unit=org["home"], serial="AUD0000004", kind=MeterKind.MECHANICAL
    )
    with pytest.raises(ValidationError) as refused:
        services.meter_install(actor=clerk, meter=meter, contract=contract, at=aware(2025, 3, 1), reading=0)
    assert refused.value.message_dict == {
        "at": [
            f"A meter is installed while its contract runs: contract {contract.number} starts on 01/09/2025."
        ]
    }
    assert not MeterAssignment.objects.filter(contract=contract).exists()
    meter.refresh_from_db()
    assert meter.status == MeterStatus.IN_STOCK


# Removal against the readings -----------------------------------------------------------------------------


@pytest.fixture
def read_in_october(make_customer, clerk):
    """A contract whose meter read 1 500 kWh at the end of October 2025."""
    contract = make_customer().contracts.get()
    billing.reading_record(
        actor=clerk, contract=contract, period=dt.date(2025, 10, 1), value=1500, source="handheld",
        taken_at=aware(2025, 10, 31, 9),
    )  # fmt: skip
    return contract


def test_a_meter_is_not_removed_below_its_last_reading(read_in_october, clerk):
    meter = only_assignment(read_in_october).meter
    with pytest.raises(ValidationError) as refused:
        services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 11, 20), reading=800, reason="Thay")
    assert refused.value.message_dict == {
        "reading": ["The removal reading 800 is below the meter's last reading, 1500 kWh for 10/2025."]
    }
    assert only_assignment(read_in_october).removed_at is None
    meter.refresh_from_db()
    assert meter.status == MeterStatus.INSTALLED


def test_a_faulty_meter_is_removed_with_the_register_it_shows(read_in_october, clerk):
    meter = only_assignment(read_in_october).meter
    services.meter_remove(
        actor=clerk, meter=meter, at=aware(2025, 11, 20), reading=800, reason="Hỏng", faulty=True
    )
    assignment = only_assignment(read_in_october)
    assert (assignment.removed_at, assignment.reading_at_removal) == (aware(2025, 11, 20), 800)


def test_a_meter_is_not_removed_before_a_reading_already_taken_on_it(read_in_october, clerk):
    meter = only_assignment(read_in_october).meter
    with pytest.raises(ValidationError) as refused:
        services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 9, 1), reading=1600, reason="Thay")
    assert refused.value.message_dict == {
        "at": [
            f"Meter {meter.serial} was read on 31/10/2025 09:00; it cannot be removed before that reading."
        ]
    }
    assert only_assignment(read_in_october).removed_at is None

    services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 11, 1), reading=1600, reason="Thay")
    assert only_assignment(read_in_october).reading_at_removal == 1600


def test_a_reading_keyed_in_after_its_month_vouches_for_its_month_only(make_customer, clerk):
    """October's register, keyed in weeks later (taken_at is then when it was entered), does not stop the
    meter's removal in November; a removal dated before October still contradicts it."""
    contract = make_customer().contracts.get()
    billing.reading_record(
        actor=clerk, contract=contract, period=dt.date(2025, 10, 1), value=500, source="handheld"
    )
    meter = only_assignment(contract).meter
    with pytest.raises(ValidationError) as refused:
        services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 9, 15), reading=520, reason="Thay")
    assert refused.value.message_dict == {
        "at": [f"Meter {meter.serial} was read on 10/2025; it cannot be removed before that reading."]
    }
    services.meter_remove(actor=clerk, meter=meter, at=aware(2025, 11, 10), reading=520, reason="Thay")
    assert only_assignment(contract).removed_at == aware(2025, 11, 10)


# Scope -----------------------------------------------------------------------------------------------------


def test_a_clerk_hangs_no_meter_on_a_contract_of_a_unit_they_do_not_serve(org, make_customer, clerk):
    theirs = make_customer(org["other_corporation"], name="Lê Văn Xa", phones=["0912 000 222"])
    contract = theirs.contracts.get()
    services.meter_remove(
        actor=None, meter=only_assignment(contract).meter, at=aware(2025, 1, 1), reading=10, reason="Hỏng",
        faulty=True,
    )  # fmt: skip
    mine = services.meter_register(
        actor=clerk, unit=org["home"], serial="AUD0000003", kind=MeterKind.MECHANICAL
    )
    with pytest.raises(NotAllowed):
        services.meter_install(actor=clerk, meter=mine, contract=contract, at=aware(2025, 2, 1), reading=0)
    assert not MeterAssignment.objects.filter(meter=mine).exists()
    mine.refresh_from_db()
    assert mine.status == MeterStatus.IN_STOCK
    assert not theirs.events.filter(kind=CustomerEventKind.METER_INSTALLED, actor=clerk).exists()


def test_contract_numbers_stored_in_small_letters_are_put_in_capitals_unless_another_contract_has_them(
    make_customer, capsys
):
    """The data migration 0007: a number the admin stored as typed becomes the one every path looks up; one whose
    capitals another contract holds is kept as it is and named, for a clerk to settle."""
    import importlib

    from django.apps import apps
    from django.db import connection

    from customers.models import Contract

    migration = importlib.import_module("customers.migrations.0007_contract_numbers_in_capitals")
    customer = make_customer()
    code = customer.code
    Contract.objects.bulk_create([
        Contract(customer=customer, number=f" {code.lower()}-02", purpose="Sinh hoạt", start_date=dt.date(2024, 1, 1)),
        Contract(customer=customer, number=f"{code.lower()}-01", purpose="Sinh hoạt", start_date=dt.date(2024, 1, 1)),
    ])  # fmt: skip
    clash = Contract.objects.get(number=f"{code.lower()}-01")

    migration.numbers_in_capitals(apps, type("Editor", (), {"connection": connection})())

    assert sorted(Contract.objects.filter(customer=customer).values_list("number", flat=True)) == sorted(
        [f"{code}-01", f"{code}-02", f"{code.lower()}-01"]
    )
    assert f"Contract {clash.pk} keeps its number '{code.lower()}-01': {code}-01 is another contract's." in (
        capsys.readouterr().out
    )
