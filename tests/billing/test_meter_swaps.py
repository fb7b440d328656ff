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
