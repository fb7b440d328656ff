"""Meters swapped within a month: the month's kWh is what every meter that served the contract advanced since
the previous reading — the previous meter's tail, the whole advance of each meter that came and went, and the
current meter's advance — whether the reading is recorded, re-based by a correction, or imported from a file."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import imports
from billing import services as billing
from billing.models import Invoice, MeterReading
from customers import services as customers
from customers.models import Contract, MeterKind
from tests.billing.conftest import OCT

SEP = dt.date(2025, 9, 1)


def current(customer, period) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=period)


def swap(customer, *, day: int, removal: int, install: int, name: str):
    """The contract's meter replaced on ``day`` October 2025 by a new meter (serial ``name`` + the customer)."""
    meter = customers.meter_register(
        actor=None, unit=customer.unit, serial=f"{name}{customer.pk:05d}", kind=MeterKind.REMOTE_READ
    )
    customers.meter_replace(
        actor=None, contract=Contract.objects.get(customer=customer),
        at=timezone.make_aware(dt.datetime(2025, 10, day)), removal_reading=removal, reason="Hỏng",
        new_meter=meter, install_reading=install,
    )  # fmt: skip
    return meter


@pytest.fixture
def swapped_twice(make_customer, read):
    """Meter A read 300 for September; A taken off at 400 on 10 October, B on at 0; B off at 100 on 20 October,
    C on at 0: A 100 kWh + B 100 kWh + C's advance."""

    def make(name="Nguyễn Văn An"):
        customer = make_customer(name=name)
        read(customer, SEP, 300)
        swap(customer, day=10, removal=400, install=0, name="B")
        swap(customer, day=20, removal=100, install=0, name="C")
        return customer

    return make


def test_two_meter_swaps_in_one_month_bill_every_meters_advance(swapped_twice, read):
    customer = swapped_twice()
    october = read(customer, OCT, 50)  # meter C
    # A: 300 → 400 = 100 kWh; B: 0 → 100 = 100 kWh; C: 0 → 50 = 50 kWh: 250 kWh, from C's reading at install.
    assert (october.previous_value, october.kwh, october.meter.serial) == (0, 250, f"C{customer.pk:05d}")
    billing.billing_run(actor=None, period=OCT)
    # 250 kWh: 99,200 + 102,500 + 238,000 + 50 × 2,998 = 589,600; VAT 8% 47,168; total 636,768.
    assert Invoice.objects.get(customer=customer, period=OCT).total == 636_768


def test_a_correction_before_the_swaps_rebases_the_month_across_every_meter(swapped_twice, read):
    customer = swapped_twice()
    read(customer, OCT, 50)
    billing.billing_run(actor=None, period=OCT)
    september = current(customer, SEP)
    billing.reading_correct(actor=None, reading=september, value=350, reason="Đọc sai")
    # A: 350 → 400 = 50 kWh; B 100; C 50: 200 kWh. 99,200 + 102,500 + 238,000 = 439,700 + 35,176 = 474,876.
    october = current(customer, OCT)
    assert (october.previous_value, october.kwh) == (0, 200)
    invoice = Invoice.objects.get(customer=customer, period=OCT)
    assert (invoice.kwh, invoice.reading_id, invoice.total) == (200, october.pk, 474_876)


def test_a_file_reads_two_swaps_as_reading_record_does(swapped_twice, read):
    imported, by_contract, recorded = (swapped_twice(name=n) for n in ("Nhập", "Nhập hợp đồng", "Ghi"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["meter_serial", "contract_number", "period", "value"])
    writer.writerow([f"C{imported.pk:05d}", "", "2025-10", 50])
    writer.writerow(["", Contract.objects.get(customer=by_contract).number, "2025-10", 50])
    result = imports.import_readings(stream=io.BytesIO(out.getvalue().encode()), source="handheld")
    assert (result.inserted, result.rejected) == (2, 0)
    expected = read(recorded, OCT, 50)
    fields = ("value", "previous_value", "kwh", "status", "source")
    for customer in (imported, by_contract):
        got = current(customer, OCT)
        assert {f: getattr(got, f) for f in fields} == {f: getattr(expected, f) for f in fields}
        assert got.kwh == 250


def test_the_meters_between_are_read_in_one_query_however_many(make_customer, read, tariffs):
    # One swap and two swaps take as many queries to record the month's reading.
    once, twice = make_customer(name="Một lần"), make_customer(name="Hai lần")
    for customer in (once, twice):
        read(customer, SEP, 300)
        swap(customer, day=10, removal=400, install=0, name="B")
    swap(twice, day=20, removal=100, install=0, name="C")
    counts = []
    for customer in (once, twice):
        with CaptureQueriesContext(connection) as queries:
            reading = read(customer, OCT, 50)
        counts.append(len(queries))
    assert current(once, OCT).kwh == 100 + 50 and reading.kwh == 100 + 100 + 50
    assert counts[0] == counts[1]


# The final month of a customer who moved out, read after the meter came off -------------------------------


def _moved_out(make_customer, read, *, terminate: bool = True):
    """September read at 100; the customer leaves on 20/10: the meter comes off with its final register 250,
    then (``terminate``) the contract ends that day, as the README prescribes."""
    from customers.models import ContractStatus, MeterAssignment

    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    read(customer, SEP, 100, taken_at=timezone.make_aware(dt.datetime(2025, 9, 30, 9)))
    meter = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    customers.meter_remove(actor=None, meter=meter, at=timezone.make_aware(dt.datetime(2025, 10, 20, 9)),
                           reading=250, reason="Khách chuyển đi")  # fmt: skip
    if terminate:
        customers.contract_set_status(actor=None, contract=contract, status=ContractStatus.TERMINATED,
                                      on=dt.date(2025, 10, 20))  # fmt: skip
    return customer, contract, meter


def test_the_final_month_after_the_meter_came_off_is_read_and_billed(make_customer, read):
    customer, contract, meter = _moved_out(make_customer, read)
    # October, the final month, is read (at the register the meter came off with) and billed: 150 kWh.
    reading = read(customer, OCT, 250, taken_at=timezone.make_aware(dt.datetime(2025, 10, 20, 9)))
    assert (reading.meter_id, reading.previous_value, reading.kwh) == (meter.pk, 100, 150)
    result = billing.billing_run(actor=None, period=OCT)
    assert (result.invoices, result.without_reading) == (1, 0)
    assert Invoice.objects.get(customer=customer, period=OCT, kind="regular").kwh == 150
    assert MeterReading.objects.filter(contract=contract, period=OCT).count() == 1


def test_a_register_above_the_one_the_meter_came_off_with_is_refused(make_customer, read):
    from django.core.exceptions import ValidationError

    customer, contract, meter = _moved_out(make_customer, read)
    with pytest.raises(ValidationError) as refused:
        read(customer, OCT, 251)
    assert refused.value.message_dict == {
        "value": [f"Meter {meter.serial} came off on 20/10/2025 at 250: a register above that is not read on it."]
    }
    assert not MeterReading.objects.filter(contract=contract, period=OCT).exists()
    # Read lower (the meter was read before it came off), it is taken; a correction above 250 is refused too.
    reading = read(customer, OCT, 240)
    assert reading.kwh == 140
    with pytest.raises(ValidationError) as refused:
        billing.reading_correct(actor=None, reading=reading, value=260, reason="Đọc lại")
    assert list(refused.value.message_dict) == ["value"]
    assert MeterReading.objects.current().get(contract=contract, period=OCT).pk == reading.pk
    # A month after the meter came off is not read on it (and after the contract ended, not at all).
    with pytest.raises(ValidationError, match="The contract ended on 20/10/2025"):
        read(customer, dt.date(2025, 11, 1), 250)


def test_the_final_month_is_estimated_up_to_the_removal_register(make_customer, read):
    _customer, contract, meter = _moved_out(make_customer, read, terminate=False)
    # September's 100 kWh gives about 103 kWh for October, within the 150 the meter read before it came off.
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert (estimate.meter_id, estimate.previous_value, estimate.source) == (meter.pk, 100, "estimated")
    assert 0 < estimate.kwh <= 150 and estimate.value == 100 + estimate.kwh


def test_a_heavy_final_month_estimate_is_capped_at_the_removal_register(make_customer, read):
    from customers.models import MeterAssignment

    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    read(customer, SEP, 900)  # 900 kWh in September: October alone would be estimated at 930
    meter = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    customers.meter_remove(actor=None, meter=meter, at=timezone.make_aware(dt.datetime(2025, 10, 20, 9)),
                           reading=1000, reason="Khách chuyển đi")  # fmt: skip
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert (estimate.value, estimate.kwh) == (1000, 100)


@pytest.mark.parametrize("by", ["contract_number", "meter_serial"])
def test_the_readings_import_reads_the_final_month_after_the_meter_came_off(make_customer, read, by):
    customer, contract, meter = _moved_out(make_customer, read)
    key = contract.number if by == "contract_number" else meter.serial
    result = imports.import_readings(stream=io.BytesIO(f"{by},period,value\n{key},2025-10,250\n".encode()))
    assert (result.inserted, result.rejected) == (1, 0)
    assert (current(customer, OCT).meter_id, current(customer, OCT).kwh) == (meter.pk, 150)
    # Above the removal register: refused with the service's reason, nothing written.
    other, _contract, other_meter = _moved_out(make_customer, read)
    key = _contract.number if by == "contract_number" else other_meter.serial
    refused = imports.import_readings(stream=io.BytesIO(f"{by},period,value\n{key},2025-10,400\n".encode()))
    assert (refused.inserted, refused.rejected) == (0, 1)
    assert refused.rejects[0].reason == (
        f"Meter {other_meter.serial} came off on 20/10/2025 at 250: a register above that is not read on it."
    )
    assert not MeterReading.objects.filter(contract__customer=other, period=OCT).exists()


def test_the_api_reads_the_final_month_after_the_meter_came_off(client, staff, make_customer, read):
    from crm.models import Role

    _customer, contract, _meter = _moved_out(make_customer, read)
    client.force_login(staff[Role.BILLING_CLERK])
    refused = client.post("/api/v1/readings/", {"contract_number": contract.number, "period": "2025-10-01",
                          "value": 300, "source": "handheld"}, content_type="application/json")  # fmt: skip
    assert refused.status_code == 400
    assert "came off on 20/10/2025 at 250" in refused.content.decode()
    taken = client.post("/api/v1/readings/", {"contract_number": contract.number, "period": "2025-10-01",
                        "value": 250, "source": "handheld"}, content_type="application/json")  # fmt: skip
    assert taken.status_code == 201, taken.content
    assert taken.json()["kwh"] == 150


def test_a_meter_replaced_as_the_month_ended_reads_that_month_on_the_old_meter(make_customer, read):
    from customers.models import MeterAssignment

    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    read(customer, SEP, 100)
    old = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    new = swap_at(customer, at=timezone.make_aware(dt.datetime(2025, 11, 1)), removal=260, install=0)
    # October was served by the old meter (off at 260 as November began): read on it, from either path.
    by_serial = imports.import_readings(
        stream=io.BytesIO(f"meter_serial,period,value\n{new.serial},2025-10,5\n".encode())
    )
    assert by_serial.rejects[0].reason == "The meter was installed after 10/2025: that month is not read on it."
    by_contract = imports.import_readings(
        stream=io.BytesIO(f"contract_number,period,value\n{contract.number},2025-10,260\n".encode())
    )
    assert (by_contract.inserted, by_contract.rejected) == (1, 0)
    assert (current(customer, OCT).meter_id, current(customer, OCT).kwh) == (old.pk, 160)
    # November is read on the new meter, from its register at install.
    november = read(customer, dt.date(2025, 11, 1), 40)
    assert (november.meter_id, november.kwh) == (new.pk, 40)


def swap_at(customer, *, at, removal: int, install: int):
    meter = customers.meter_register(
        actor=None, unit=customer.unit, serial=f"M{customer.pk:05d}", kind=MeterKind.REMOTE_READ
    )
    customers.meter_replace(
        actor=None, contract=Contract.objects.get(customer=customer), at=at, removal_reading=removal,
        reason="Thay", new_meter=meter, install_reading=install,
    )  # fmt: skip
    return meter


def test_a_clerk_estimates_the_final_month_after_the_meter_came_off_in_the_admin(client, staff, make_customer,
                                                                                 read):  # fmt: skip
    from django.urls import reverse

    from crm.models import Role

    customer, contract, meter = _moved_out(make_customer, read)
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(reverse("admin:billing_meterreading_estimate"),
                           {"contract": contract.number, "period": "2025-10"}, follow=True)  # fmt: skip
    estimate = current(customer, OCT)
    assert (estimate.meter_id, estimate.source, estimate.previous_value) == (meter.pk, "estimated", 100)
    assert estimate.value <= 250
    assert response.redirect_chain[-1][0] == reverse("admin:billing_meterreading_change", args=[estimate.pk])
