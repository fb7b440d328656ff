"""A meter's register at install or removal is one its column holds (``MeterAssignment.largest_register``):
a register beyond it (a digit too many) is refused under ``reading`` by ``meter_install``/``meter_remove``,
on every path (API 400, replacement form field, the meters import's bad cell of its row), never a 500, a
number wrapped by PostgreSQL's server-side binding, or a register SQLite keeps and PostgreSQL could not."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import Role
from customers import services
from customers.models import Meter, MeterAssignment, MeterKind, MeterStatus
from tests.customers.test_import_export import confirm, csv_bytes, preview, problems

LARGEST = 2_147_483_647  # a PositiveIntegerField's range on PostgreSQL (int4)
TYPO = 99_999_999_999  # a register of 8 digits typed with 3 too many


def aware(*args):
    return timezone.make_aware(dt.datetime(*args))


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    client.raise_request_exception = False  # a 500 is an answer these tests check, not an exception
    return client


@pytest.fixture
def contract(org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    return services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1), status="active"
    )


@pytest.fixture
def stock_meter(org):
    return services.meter_register(actor=None, unit=org["home"], serial="KHO-0009", kind=MeterKind.ELECTRONIC)


def state():
    return (
        sorted(
            MeterAssignment.objects.values_list(
                "id", "reading_at_install", "removed_at", "reading_at_removal"
            )
        ),
        sorted(Meter.objects.values_list("serial", "status")),
    )


def too_large(reading: int) -> str:
    return (
        f"A meter's register reads at most {LARGEST} kWh; {reading} cannot be its reading: check the digits."
    )


def test_the_bound_is_the_columns_range_on_every_database():
    assert MeterAssignment.largest_register("reading_at_install") == LARGEST
    assert MeterAssignment.largest_register("reading_at_removal") == LARGEST


def test_an_install_register_beyond_the_column_is_a_400_on_reading_and_installs_nothing(
    clerk_client, contract, stock_meter
):
    before = state()
    response = clerk_client.post(
        "/api/v1/meters/KHO-0009/install/",
        {"contract": contract.number, "at": "2025-03-01T08:30:00+07:00", "reading": TYPO},
        content_type="application/json",
    )
    assert (response.status_code, response.json()) == (400, {"reading": [too_large(TYPO)]})
    assert state() == before


def test_the_largest_register_installs_as_typed_and_one_more_is_refused_at_removal(
    clerk_client, contract, stock_meter
):
    installed = clerk_client.post(
        "/api/v1/meters/KHO-0009/install/",
        {"contract": contract.number, "at": "2025-03-01T08:30:00+07:00", "reading": LARGEST},
        content_type="application/json",
    )
    assert installed.status_code == 201, installed.content[:300]
    assignment = MeterAssignment.objects.get(meter=stock_meter)
    assert (installed.json()["reading_at_install"], assignment.reading_at_install) == (LARGEST, LARGEST)
    before = state()
    for faulty in (False, True):  # a faulty meter may read below its install, never beyond its column
        removed = clerk_client.post(
            "/api/v1/meters/KHO-0009/remove/",
            {"at": "2025-04-01T08:00:00+07:00", "reading": LARGEST + 1, "reason": "Hỏng", "faulty": faulty},
            content_type="application/json",
        )
        assert (removed.status_code, removed.json()) == (400, {"reading": [too_large(LARGEST + 1)]})
    assert state() == before
    assert Meter.objects.get(pk=stock_meter.pk).status == MeterStatus.INSTALLED


def test_the_services_refuse_it_under_reading_and_a_replacement_under_its_own_fields(
    clerk, contract, stock_meter, org
):
    with pytest.raises(ValidationError) as refused:
        services.meter_install(
            actor=clerk, meter=stock_meter, contract=contract, at=aware(2025, 3, 1, 8), reading=TYPO
        )
    assert refused.value.message_dict == {"reading": [too_large(TYPO)]}
    services.meter_install(
        actor=clerk, meter=stock_meter, contract=contract, at=aware(2025, 3, 1, 8), reading=7
    )
    spare = services.meter_register(
        actor=None, unit=org["home"], serial="KHO-0010", kind=MeterKind.ELECTRONIC
    )
    before = state()
    with pytest.raises(ValidationError) as removal:
        services.meter_remove(actor=clerk, meter=stock_meter, at=aware(2025, 4, 1, 8), reading=-1, reason="x")
    assert removal.value.message_dict == {"reading": ["A reading cannot be negative."]}
    with pytest.raises(ValidationError) as old_register:
        services.meter_replace(
            actor=clerk, contract=contract, at=aware(2025, 4, 1, 8), removal_reading=TYPO, reason="Thay",
            new_meter=spare, install_reading=0,
        )  # fmt: skip
    assert old_register.value.message_dict == {"removal_reading": [too_large(TYPO)]}
    with pytest.raises(ValidationError) as new_register:
        services.meter_replace(
            actor=clerk, contract=contract, at=aware(2025, 4, 1, 8), removal_reading=90, reason="Thay",
            new_meter=spare, install_reading=TYPO,
        )  # fmt: skip
    assert new_register.value.message_dict == {"install_reading": [too_large(TYPO)]}
    assert state() == before  # the replacement's removal went back with its refused install


@pytest.mark.parametrize(
    "register, message",
    [
        (str(TYPO), f"Reading at installation: {too_large(TYPO)}"),
        ("99999999999999999999", None),  # not even a number the file's column reads: a bad cell already
    ],
)
def test_an_import_row_with_a_register_beyond_the_column_is_a_bad_row_the_others_import_without(
    clerk_client, contract, register, message
):
    rows = [
        {"serial": "NEW-0010", "unit": "PE0100", "kind": "electronic", "contract": contract.number,
         "installed_at": "2025-03-01 08:30", "reading_at_install": register},
        {"serial": "NEW-0011", "unit": "PE0100", "kind": "electronic", "contract": "",
         "installed_at": "", "reading_at_install": ""},
    ]  # fmt: skip
    previewed = preview(clerk_client, "meter", csv_bytes(rows))
    assert previewed.status_code == 200
    found = problems(previewed)
    assert [row for row, _ in found] == [2]
    ((reason,),) = [messages for _, messages in found]
    assert reason.startswith("Reading at installation: "), reason
    if message is not None:
        assert reason == message
    assert not Meter.objects.filter(serial__in=["NEW-0010", "NEW-0011"]).exists()  # a preview writes nothing
    written = confirm(clerk_client, "meter", previewed, skip_bad_rows=True)
    assert written.status_code == 200
    assert list(Meter.objects.filter(serial__startswith="NEW-").values_list("serial", "status")) == [
        ("NEW-0011", MeterStatus.IN_STOCK)
    ]
    assert not MeterAssignment.objects.filter(contract=contract).exists()
