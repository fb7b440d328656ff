"""A month estimated on a meter that came off before the next month read (a swap in a month never read): the
next register read trues the estimate up to the old meter's removal register (``services._true_up_estimate``).
The readings import sends such a line through ``reading_record`` (``imports._check_against_recorded``), so a
file and the service give the same kWh and the same true-up, whichever way the removal register lies."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing import imports
from billing import services as billing
from billing.models import MeterReading
from customers import services as customers
from customers.models import Contract, MeterAssignment, MeterKind
from tests.billing.test_import_readings import csv_bytes, run

JUL, AUG, SEP, NOV = (dt.date(2025, m, 1) for m in (7, 8, 9, 11))


def _estimated_then_swapped(customer, read, *, removal: int) -> None:
    """July and August read (150 + 150 kWh), September estimated on meter A (300 + 145 = 445); A off on
    10 October at ``removal``, B on at 0; October is never read."""
    read(customer, JUL, 150)
    read(customer, AUG, 300)
    contract = Contract.objects.get(customer=customer)
    estimate = billing.reading_estimate(actor=None, contract=contract, period=SEP)
    assert (estimate.value, estimate.kwh) == (445, 145)  # 300 kWh over 62 days, × 30 days: 145.16
    new = customers.meter_register(actor=None, unit=customer.unit, serial=f"B{customer.pk:05d}",
                                   kind=MeterKind.REMOTE_READ)  # fmt: skip
    customers.meter_replace(actor=None, contract=contract, at=timezone.make_aware(dt.datetime(2025, 10, 10)),
                            removal_reading=removal, reason="Thay công tơ", new_meter=new,
                            install_reading=0)  # fmt: skip


def _months(customer) -> dict:
    return {
        r.period: (r.value, r.previous_value, r.kwh, r.source, r.meter.serial[:1])
        for r in MeterReading.objects.current().filter(contract__customer=customer).select_related("meter")
    }


@pytest.mark.parametrize(
    ("removal", "september", "november_kwh"),
    [
        (420, 420, 500),  # A came off below the estimate: September trued up to 420, A adds nothing more
        (470, 445, 525),  # A came off above it: no true-up, A's last 25 kWh carried into November
    ],
)
def test_a_file_and_the_service_true_up_an_estimate_made_on_the_meter_swapped_out(
    make_customer, read, monkeypatch, removal, september, november_kwh
):
    recorded, by_contract, by_serial = (make_customer(name=n) for n in ("Ghi", "Nhập hợp đồng", "Nhập công tơ"))
    for customer in (recorded, by_contract, by_serial):
        _estimated_then_swapped(customer, read, removal=removal)
    called = []
    monkeypatch.setattr(imports, "reading_record", lambda **kw: called.append(kw) or billing.reading_record(**kw))
    november = read(recorded, NOV, 500)
    new_serial = MeterAssignment.objects.get(contract__customer=by_serial, removed_at__isnull=True).meter.serial
    result, rejects = run(csv_bytes(
        [("", Contract.objects.get(customer=by_contract).number, "2025-11", 500), (new_serial, "", "2025-11", 500)],
        header=("meter_serial", "contract_number", "period", "value"),
    ), source="handheld")  # fmt: skip
    assert (result.inserted, rejects) == (2, [])
    assert len(called) == 2  # both lines went through reading_record, as the service's own reading did
    assert november.kwh == november_kwh
    expected = _months(recorded)
    assert expected[dt.date(2025, 9, 1)][:4] == (september, 300, september - 300, "estimated")
    for customer in (by_contract, by_serial):
        assert _months(customer) == expected
