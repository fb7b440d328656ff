"""Audit (lifecycle): kWh across a meter swap in unusual orderings."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing import services as billing
from billing.models import MeterReading
from customers import services as customers
from customers.models import Contract, MeterAssignment, MeterKind
from tests.billing.conftest import OCT

AUG, SEP = dt.date(2025, 8, 1), dt.date(2025, 9, 1)


def _swap(customer, *, at, removal, install, name="B"):
    meter = customers.meter_register(
        actor=None, unit=customer.unit, serial=f"{name}{customer.pk:05d}", kind=MeterKind.REMOTE_READ
    )
    customers.meter_replace(
        actor=None, contract=Contract.objects.get(customer=customer), at=at, removal_reading=removal,
        reason="Hỏng", new_meter=meter, install_reading=install,
    )
    return meter


def test_first_reading_after_a_swap_counts_the_old_meters_advance(org, read):
    # A contract signed for 1 October 2025, meter A on at 0 that day; A is faulty and swapped on 10 October at
    # 400 for B at 0; the first reading ever is October's, 50 on B: the month used 400 (A) + 50 (B) = 450 kWh.
    customer = customers.customer_create(actor=None, unit=org["home"], full_name="Trần Thị Bình",
                                         street="1 Hai Bà Trưng", ward="Phường Bến Nghé", phones=["0903 123 457"])
    contract = customers.contract_create(actor=None, customer=customer, purpose="Sinh hoạt",
                                         start_date=dt.date(2025, 10, 1), status="active")
    a = customers.meter_register(actor=None, unit=customer.unit, serial=f"A{customer.pk:05d}",
                                 kind=MeterKind.REMOTE_READ)
    customers.meter_install(actor=None, meter=a, contract=contract,
                            at=timezone.make_aware(dt.datetime(2025, 10, 1, 8)), reading=0)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    october = read(customer, OCT, 50)
    assert (october.previous_value, october.kwh) == (0, 450)


def test_a_meter_put_back_after_a_stand_in_counts_the_stand_ins_advance(make_customer, read):
    # September read 300 on A. On 10 October A comes off at 400 (sent for testing, back to stock) and B goes on
    # at 0; on 20 October B comes off at 100 and A, found sound, goes back on at 400 (a meter keeps its
    # register). October is read at 450 on A: A 100 + B 100 + A 50 = 250 kWh.
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    a = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    read(customer, SEP, 300)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    customers.meter_replace(
        actor=None, contract=contract, at=timezone.make_aware(dt.datetime(2025, 10, 20)), removal_reading=100,
        reason="Trả công tơ cũ", new_meter=a, install_reading=400,
    )
    october = read(customer, OCT, 450)
    assert october.kwh == 250


def _import_october(contract, value):
    import io

    from billing import imports

    result = imports.import_readings(
        stream=io.BytesIO(f"contract_number,period,value\n{contract.number},2025-10,{value}\n".encode()),
        source="handheld",
    )
    assert (result.inserted, result.rejected) == (1, 0)
    return MeterReading.objects.current().get(contract=contract, period=OCT)


def test_the_import_counts_the_old_meter_on_a_first_reading_after_a_swap(org, tariffs):
    customer = customers.customer_create(actor=None, unit=org["home"], full_name="Lê Văn Cường",
                                         street="3 Hai Bà Trưng", ward="Phường Bến Nghé", phones=["0903 123 458"])
    contract = customers.contract_create(actor=None, customer=customer, purpose="Sinh hoạt",
                                         start_date=dt.date(2025, 10, 1), status="active")
    a = customers.meter_register(actor=None, unit=customer.unit, serial=f"A{customer.pk:05d}",
                                 kind=MeterKind.REMOTE_READ)
    customers.meter_install(actor=None, meter=a, contract=contract,
                            at=timezone.make_aware(dt.datetime(2025, 10, 1, 8)), reading=0)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    assert _import_october(contract, 50).kwh == 450


def test_the_import_counts_a_stand_in_meter_between_two_stays_of_one_meter(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    a = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    read(customer, SEP, 300)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    customers.meter_replace(
        actor=None, contract=contract, at=timezone.make_aware(dt.datetime(2025, 10, 20)), removal_reading=100,
        reason="Trả công tơ cũ", new_meter=a, install_reading=400,
    )
    assert _import_october(contract, 450).kwh == 250


def test_an_estimate_of_the_swap_month_keeps_the_old_meters_advance(make_customer, read):
    # July 100, August 200, September 300 on A (about 100 kWh a month). On 10 October A comes off at 400 and B
    # goes on at 0; B stops and October is estimated; November is read on B at 150. Over October and November
    # the meters advanced A 100 (300 → 400) + B 150 (0 → 150) = 250 kWh: the two bills must add up to it.
    from tests.billing.conftest import NOV

    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    for month, value in ((7, 100), (8, 200), (9, 300)):
        read(customer, dt.date(2025, month, 1), value)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    october = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    november = read(customer, NOV, 150)
    october = MeterReading.objects.current().get(contract=contract, period=OCT)
    assert october.kwh + november.kwh == 250


def test_a_register_taken_before_its_meter_was_installed_is_refused(make_customer, read):
    # B goes on on 10 October; a register said to have been read on B on 5 October cannot be: refused on
    # taken_at, nothing written (as a removal before the meter's last reading is refused).
    from django.core.exceptions import ValidationError

    customer = make_customer()
    read(customer, SEP, 300)
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 10, 10)), removal=400, install=0)
    with pytest.raises(ValidationError) as refused:
        read(customer, OCT, 50, taken_at=timezone.make_aware(dt.datetime(2025, 10, 5, 9)))
    assert "taken_at" in refused.value.message_dict
    assert not MeterReading.objects.filter(contract__customer=customer, period=OCT).exists()


def test_an_overshooting_estimate_does_not_block_the_meters_removal_at_its_real_register(make_customer, read):
    # July 100, August 200, September 300 on A; October estimated at about 401. A is swapped on 10 November,
    # its real register then 380 (the estimate overshot). An estimate is not a register the meter read: the
    # swap is taken at 380, not refused (nor forced through as "faulty"), and October + November bill what A
    # and B really advanced: A 80 (300 → 380) + B 50 = 130 kWh.
    from tests.billing.conftest import NOV

    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    for month, value in ((7, 100), (8, 200), (9, 300)):
        read(customer, dt.date(2025, month, 1), value)
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert estimate.value > 380
    _swap(customer, at=timezone.make_aware(dt.datetime(2025, 11, 10)), removal=380, install=0)
    november = read(customer, NOV, 50)
    october = MeterReading.objects.current().get(contract=contract, period=OCT)
    assert october.kwh + november.kwh == 130
