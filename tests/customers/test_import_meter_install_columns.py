"""A meters file's install refused by ``meter_install`` is reported under the file's columns (``Installed at``,
``Reading at installation``), never under the service's argument names (``at``, ``reading``)."""

import datetime as dt

import pytest

from crm.models import Role
from customers import services
from customers.models import Meter, MeterAssignment
from tests.customers.test_import_export import csv_bytes, preview, problems


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    return client


def _contract(org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    return services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1), status="active"
    )


def _row(contract, serial, installed_at):
    return {"serial": serial, "unit": "PE0100", "kind": "electronic", "contract": contract.number,
            "installed_at": installed_at, "reading_at_install": "5"}  # fmt: skip


@pytest.mark.parametrize("installed_at", ["2019-06-01 08:30", "2099-06-01 08:30"])  # before the contract; future
def test_a_service_refusal_of_an_install_names_the_files_column_not_the_services_argument(
    clerk_client, org, installed_at
):
    contract = _contract(org)
    previewed = preview(clerk_client, "meter", csv_bytes([_row(contract, "NEW-0001", installed_at)]))
    ((row, messages),) = problems(previewed)
    assert row == 2
    assert len(messages) == 1 and messages[0].startswith("Installed at: "), messages
    assert not Meter.objects.filter(serial="NEW-0001").exists()
    assert not MeterAssignment.objects.filter(contract=contract).exists()


def test_an_install_refusal_is_headed_by_the_column_in_vietnamese_too(clerk_client, org):
    contract = _contract(org)
    clerk_client.cookies.load({"django_language": "vi"})
    previewed = preview(clerk_client, "meter", csv_bytes([_row(contract, "NEW-0002", "2099-06-01 08:30")]))
    ((_, messages),) = problems(previewed)
    heading = messages[0].split(":")[0]
    assert heading not in ("at", "reading", "Installed at"), messages


def test_a_reading_below_the_meters_last_removal_is_refused_under_its_column(clerk_client, org):
    from django.utils import timezone

    first, second = _contract(org), _contract(org)
    meter = services.meter_register(actor=None, unit=org["home"], serial="OLD-0001", kind="electronic")
    services.meter_install(actor=None, meter=meter, contract=first,
                           at=timezone.make_aware(dt.datetime(2024, 1, 1, 8)), reading=50)  # fmt: skip
    services.meter_remove(actor=None, meter=meter, at=timezone.make_aware(dt.datetime(2025, 1, 1, 8)),
                          reading=100, reason="Chuyển hợp đồng")  # fmt: skip
    row = dict(_row(second, "OLD-0001", "2025-02-01 08:30"), reading_at_install="5")
    previewed = preview(clerk_client, "meter", csv_bytes([row]))
    ((_, messages),) = problems(previewed)
    assert len(messages) == 1 and messages[0].startswith("Reading at installation: "), messages
    assert not MeterAssignment.objects.filter(contract=second).exists()


def test_a_changed_install_time_or_register_of_a_hung_meter_is_refused_not_reported_unchanged(clerk_client, org):
    from django.utils import timezone

    contract = _contract(org)
    meter = services.meter_register(actor=None, unit=org["home"], serial="KHO-0100", kind="electronic")
    services.meter_install(actor=None, meter=meter, contract=contract,
                           at=timezone.make_aware(dt.datetime(2025, 3, 1, 8, 30)), reading=7)  # fmt: skip
    as_exported = {"serial": "KHO-0100", "unit": "PE0100", "kind": "electronic", "contract": contract.number,
                   "installed_at": "2025-03-01 08:30", "reading_at_install": "7"}  # fmt: skip
    assert problems(preview(clerk_client, "meter", csv_bytes([as_exported]))) == []  # the file as exported
    # the clerk "corrects" the install's time and register in the file
    previewed = preview(clerk_client, "meter", csv_bytes([
        {**as_exported, "installed_at": "2025-03-02 09:00", "reading_at_install": "70"}
    ]))  # fmt: skip
    ((_row_number, messages),) = problems(previewed)
    assert any(m.startswith("Installed at: The installation is recorded once") for m in messages), messages
    assert any(m.startswith("Reading at installation: The installation is recorded once: this meter read 7")
               for m in messages), messages  # fmt: skip
    assignment = MeterAssignment.objects.get(meter=meter)
    assert (assignment.reading_at_install, timezone.localtime(assignment.installed_at).hour) == (7, 8)
