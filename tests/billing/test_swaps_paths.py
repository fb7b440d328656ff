"""The kWh of a month across installations is one rule (``billing.services._advance_base``): a register recorded
by the service and the same register in a readings file taken by the set-based SQL (``billing.imports._calc_sql``)
give the same previous register and kWh, whatever the order of swaps, stand-in meters and readings before it.

Each ordering is built three times: read by ``reading_record``, imported by contract number, imported by meter
serial. The imports must take the set-based path (``reading_record`` is not called for their lines)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import imports, rules
from billing import services as billing
from billing.models import MeterReading
from customers import services as customers
from customers.models import Contract, MeterAssignment, MeterKind, MeterStatus
from tests.billing.conftest import NOV, OCT

JUL, AUG, SEP = dt.date(2025, 7, 1), dt.date(2025, 8, 1), dt.date(2025, 9, 1)


def at(month: int, day: int, hour: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime(2025, month, day, hour))


def new_meter(customer, name: str):
    return customers.meter_register(
        actor=None, unit=customer.unit, serial=f"{name}{customer.pk:05d}", kind=MeterKind.REMOTE_READ
    )


def replace(customer, *, when, removal: int, install: int, meter=None, name: str = "B"):
    """The contract's meter comes off at ``removal`` and ``meter`` (a new one named ``name``) goes on."""
    meter = meter or new_meter(customer, name)
    customers.meter_replace(
        actor=None, contract=Contract.objects.get(customer=customer), at=when, removal_reading=removal,
        reason="Thay công tơ", new_meter=meter, install_reading=install,
    )  # fmt: skip
    return meter


def first_meter(customer):
    return MeterAssignment.objects.filter(contract__customer=customer).order_by("pk").first().meter


# The orderings: each builds a customer's history and returns the month then read and its register. -------


def first_reading_after_a_swap(customer, read):
    # No reading yet: A on since 2020 at 0, off on 10 October at 400, B on at 0; November 50 on B.
    replace(customer, when=at(10, 10), removal=400, install=0)
    return NOV, 50, 450  # A 0 → 400 + B 0 → 50


def first_reading_after_two_swaps(customer, read):
    replace(customer, when=at(9, 10), removal=400, install=0, name="B")
    replace(customer, when=at(10, 10), removal=100, install=0, name="C")
    return NOV, 50, 550  # A 400 + B 100 + C 50


def a_swap_in_a_month_not_read(customer, read):
    read(customer, SEP, 300)
    replace(customer, when=at(10, 10), removal=400, install=0)
    return NOV, 50, 150  # A 300 → 400 + B 0 → 50


def a_meter_put_back_after_a_stand_in(customer, read):
    read(customer, SEP, 300)
    a = first_meter(customer)
    replace(customer, when=at(10, 10), removal=400, install=0)
    replace(customer, when=at(10, 20), removal=100, install=400, meter=a)
    return NOV, 450, 250  # A 100 + B 100 + A 50


def a_meter_put_back_then_replaced(customer, read):
    read(customer, SEP, 300)
    a = first_meter(customer)
    replace(customer, when=at(10, 5), removal=400, install=0, name="B")
    replace(customer, when=at(10, 10), removal=100, install=400, meter=a)
    replace(customer, when=at(10, 20), removal=420, install=0, name="C")
    return NOV, 30, 250  # A 100 + B 100 + A again 20 + C 30


def a_reading_in_the_meters_second_stay(customer, read):
    # A off in August and back on the same month: September is read in its second stay, November follows it.
    read(customer, JUL, 300)
    a = first_meter(customer)
    replace(customer, when=at(8, 10), removal=350, install=0, name="B")
    replace(customer, when=at(8, 20), removal=40, install=350, meter=a)
    read(customer, SEP, 450)
    return NOV, 500, 50


def a_meter_put_back_as_the_month_ended(customer, read):
    # August read 300 on A; A off on 20 August at 350, B on at 0; B off and A back at local midnight on
    # 1 September, the very end of August: August was read on A's first stay, so November crosses both swaps.
    read(customer, AUG, 300)
    a = first_meter(customer)
    replace(customer, when=at(8, 20), removal=350, install=0, name="B")
    replace(customer, when=at(9, 1), removal=60, install=350, meter=a)
    return NOV, 400, 160  # A 50 + B 60 + A 50


def a_faulty_meter_below_its_start(customer, read):
    # A faulty meter off below the previous register adds nothing (never a negative tail).
    read(customer, SEP, 300)
    contract = Contract.objects.get(customer=customer)
    meter = new_meter(customer, "B")
    customers.meter_replace(actor=None, contract=contract, at=at(10, 10), removal_reading=250, reason="Cháy",
                            faulty=True, new_meter=meter, install_reading=0)  # fmt: skip
    return NOV, 70, 70


ORDERINGS = [
    first_reading_after_a_swap,
    first_reading_after_two_swaps,
    a_swap_in_a_month_not_read,
    a_meter_put_back_after_a_stand_in,
    a_meter_put_back_then_replaced,
    a_reading_in_the_meters_second_stay,
    a_meter_put_back_as_the_month_ended,
    a_faulty_meter_below_its_start,
]


def _set_based_import(monkeypatch, lines, header=("meter_serial", "contract_number", "period", "value")):
    """Import ``lines`` where none may go through ``reading_record`` (the set-based SQL computes them all)."""

    def refuse(**kw):
        raise AssertionError("the line went through reading_record, not the set-based SQL")

    monkeypatch.setattr(imports, "reading_record", refuse)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(lines)
    rejects = io.StringIO()
    result = imports.import_readings(stream=io.BytesIO(out.getvalue().encode()), source="handheld",
                                     rejects_to=rejects)  # fmt: skip
    return result, [row[5] for row in list(csv.reader(io.StringIO(rejects.getvalue())))[1:]]


def _current(customer, period) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=period)


def _serial(customer) -> str:
    return MeterAssignment.objects.get(contract__customer=customer, removed_at__isnull=True).meter.serial


@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda f: f.__name__)
def test_the_service_and_the_import_give_the_same_kwh(ordering, make_customer, read, monkeypatch):
    recorded, by_contract, by_serial = (make_customer(name=n) for n in ("Ghi", "Nhập hợp đồng", "Nhập công tơ"))
    period, value, kwh = ordering(recorded, read)
    for customer in (by_contract, by_serial):
        assert ordering(customer, read) == (period, value, kwh)
    expected = read(recorded, period, value)
    result, refused = _set_based_import(monkeypatch, [
        ["", Contract.objects.get(customer=by_contract).number, f"{period:%Y-%m}", value],
        [_serial(by_serial), "", f"{period:%Y-%m}", value],
    ])  # fmt: skip
    assert (result.inserted, refused) == (2, [])
    fields = ("meter_id", "value", "previous_value", "kwh", "status")
    assert expected.kwh == kwh
    for customer in (by_contract, by_serial):
        got = _current(customer, period)
        assert (got.value, got.previous_value, got.kwh, got.status) == tuple(
            getattr(expected, f) for f in fields[1:]
        )
        assert got.meter.serial.startswith(expected.meter.serial[:1])


@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda f: f.__name__)
def test_a_register_below_the_start_is_refused_alike(ordering, make_customer, read, monkeypatch):
    # One kWh below where the month's meter starts (its register at install across a swap, else the previous
    # reading, as the service's own reading of the month says): both paths refuse it, nothing written.
    probe, recorded, imported = (make_customer(name=n) for n in ("Thử", "Ghi", "Nhập"))
    period, value, _kwh = ordering(probe, read)
    low = read(probe, period, value).previous_value - 1
    if low < 0:
        return  # the month's meter starts at 0: no register below it
    for customer in (recorded, imported):
        ordering(customer, read)
    with pytest.raises(ValidationError) as refused:
        read(recorded, period, low)
    result, reasons = _set_based_import(monkeypatch, [["", Contract.objects.get(customer=imported).number,
                                                       f"{period:%Y-%m}", low]])  # fmt: skip
    assert (result.inserted, len(reasons)) == (0, 1)
    assert "value" in refused.value.message_dict
    assert not MeterReading.objects.filter(contract__customer__in=(recorded, imported), period=period).exists()


# A register taken before its meter was installed -----------------------------------------------------------


def test_a_register_taken_before_the_meter_went_on_is_refused_by_the_service_and_the_import(
    make_customer, read, monkeypatch
):
    recorded, imported = make_customer(name="Ghi"), make_customer(name="Nhập")
    for customer in (recorded, imported):
        read(customer, SEP, 300)
        replace(customer, when=at(10, 10), removal=400, install=0)
    early = at(10, 5, 9)
    with pytest.raises(ValidationError) as refused:
        read(recorded, NOV, 50, taken_at=early)
    assert refused.value.message_dict == {"taken_at": [str(rules.TAKEN_BEFORE_INSTALL)]}
    result, reasons = _set_based_import(
        monkeypatch, [[_serial(imported), f"{NOV:%Y-%m}", 50, "2025-10-05T09:00:00"]],
        header=("meter_serial", "period", "value", "taken_at"),
    )  # fmt: skip
    assert (result.inserted, reasons) == (0, [str(rules.TAKEN_BEFORE_INSTALL)])
    assert not MeterReading.objects.filter(contract__customer__in=(recorded, imported), period=NOV).exists()
    # Taken after the install (the same day, later): taken by both.
    assert read(recorded, NOV, 50, taken_at=at(10, 10, 9)).kwh == 150


def test_a_late_line_taken_before_the_install_is_refused_through_the_service(make_customer, read):
    # A swap during the line's month sends it through ``reading_record``: the same rule refuses it.
    customer = make_customer()
    read(customer, SEP, 300)
    replace(customer, when=at(10, 10), removal=400, install=0)
    out = io.StringIO()
    csv.writer(out).writerows([["meter_serial", "period", "value", "taken_at"],
                               [_serial(customer), "2025-10", 50, "2025-10-05T09:00:00"]])  # fmt: skip
    rejects = io.StringIO()
    result = imports.import_readings(stream=io.BytesIO(out.getvalue().encode()), source="handheld",
                                     rejects_to=rejects)  # fmt: skip
    assert result.inserted == 0
    assert str(rules.TAKEN_BEFORE_INSTALL) in rejects.getvalue()
    assert not MeterReading.objects.filter(contract__customer=customer, period=OCT).exists()


# Estimates around a swap -----------------------------------------------------------------------------------


def _three_months(customer, read, step: int = 100):
    for month, value in ((7, step), (8, 2 * step), (9, 3 * step)):
        read(customer, dt.date(2025, month, 1), value)


def test_an_estimate_smaller_than_the_old_meters_tail_bills_the_tail(make_customer, read):
    # About 101 kWh a month; A came off at 600 on 10 October (300 measured): October is 300 kWh, B's
    # register stays at its install (0), and November follows B: 300 + 50.
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    replace(customer, when=at(10, 10), removal=600, install=0)
    october = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert (october.value, october.previous_value, october.kwh) == (0, 0, 300)
    november = read(customer, NOV, 50)
    assert (november.previous_value, november.kwh) == (0, 50)


def test_an_estimate_of_the_swap_month_puts_the_rest_on_the_new_meter(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    replace(customer, when=at(10, 10), removal=400, install=1000)
    october = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    # The month's estimate (from the last three cycles), of which A really measured 100: B's register 1000 + the rest.
    assert october.kwh > 100
    assert (october.previous_value, october.value) == (1000, 1000 + october.kwh - 100)


@pytest.mark.parametrize(("b_off_at", "register", "kwh"), [(30, 1, 101), (0, 0, 100)])
def test_an_estimate_of_a_final_month_after_a_swap_stops_at_the_removal_register(
    b_off_at, register, kwh, make_customer, read
):
    # About 101 kWh a month. A off on 10 October at 400 (100 measured), B on at 0 and off on 20 October at
    # ``b_off_at`` (the customer left): October keeps A's 100 kWh, and B's register takes the rest of the
    # estimate, never above what B came off with.
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    b = replace(customer, when=at(10, 10), removal=400, install=0)
    customers.meter_remove(actor=None, meter=b, at=at(10, 20), reading=b_off_at, reason="Chuyển đi")
    october = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert (october.meter_id, october.previous_value, october.value, october.kwh) == (b.pk, 0, register, kwh)


# An estimate that overshot, and the removal at the real register ------------------------------------------


def test_an_overshooting_estimate_is_trued_up_to_the_removal_register(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    b = replace(customer, when=at(11, 10), removal=380, install=0)
    assert MeterAssignment.objects.get(contract=contract, removed_at__isnull=False).reading_at_removal == 380
    assert first_meter(customer).status == MeterStatus.IN_STOCK  # not forced through as faulty
    november = read(customer, NOV, 50)
    october = _current(customer, OCT)
    assert (october.source, october.value, october.kwh, october.corrects_id) == ("estimated", 380, 80, estimate.pk)
    assert (november.meter_id, november.previous_value, november.kwh) == (b.pk, 0, 50)


def test_an_estimate_below_the_removal_register_is_left_as_it_is(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    replace(customer, when=at(11, 10), removal=estimate.value + 20, install=0)
    november = read(customer, NOV, 50)
    assert _current(customer, OCT).pk == estimate.pk
    assert november.kwh == 20 + 50


def test_a_removal_below_the_last_real_reading_is_still_refused(make_customer, read):
    # The estimate is left out of the check, the real September register is not: nothing changes.
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    billing.reading_estimate(actor=None, contract=contract, period=OCT)
    a = first_meter(customer)
    with pytest.raises(ValidationError) as refused:
        replace(customer, when=at(11, 10), removal=250, install=0)
    assert "removal_reading" in refused.value.message_dict
    assert "300" in refused.value.message_dict["removal_reading"][0]
    assert MeterAssignment.objects.get(contract=contract).meter_id == a.pk
    assert MeterAssignment.objects.get(contract=contract).removed_at is None


def test_a_faulty_meter_off_below_the_estimates_base_trues_nothing_up(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    _three_months(customer, read)
    estimate = billing.reading_estimate(actor=None, contract=contract, period=OCT)
    meter = new_meter(customer, "B")
    customers.meter_replace(actor=None, contract=contract, at=at(11, 10), removal_reading=250, reason="Cháy",
                            faulty=True, new_meter=meter, install_reading=0)  # fmt: skip
    november = read(customer, NOV, 50)
    assert _current(customer, OCT).pk == estimate.pk
    assert november.kwh == 50


def test_a_late_month_rebases_the_later_reading_on_the_right_stay(make_customer, read):
    # A off on 10 October at 400, B on at 0, A back on 20 October at 400. November is read on A, then
    # October (A) is entered late: November re-bases on it in the same stay.
    customer = make_customer()
    read(customer, SEP, 300)
    a = first_meter(customer)
    replace(customer, when=at(10, 10), removal=400, install=0)
    replace(customer, when=at(10, 20), removal=100, install=400, meter=a)
    assert read(customer, NOV, 500).kwh == 300  # A 100 + B 100 + A 100
    october = read(customer, OCT, 450)
    assert october.kwh == 250
    november = _current(customer, NOV)
    assert (november.previous_value, november.kwh) == (450, 50)
    billing.reading_correct(actor=None, reading=_current(customer, SEP), value=350, reason="Đọc sai")
    assert _current(customer, OCT).kwh == 200
    assert _current(customer, NOV).kwh == 50


# A line naming a meter for a month before it went on ------------------------------------------------------


def _import(lines, header=("meter_serial", "period", "value")):
    out = io.StringIO()
    csv.writer(out).writerows([header, *lines])
    rejects = io.StringIO()
    result = imports.import_readings(stream=io.BytesIO(out.getvalue().encode()), source="handheld",
                                     rejects_to=rejects)  # fmt: skip
    return result, [row[5] for row in list(csv.reader(io.StringIO(rejects.getvalue())))[1:]]


def test_a_line_for_a_month_before_its_meter_went_on_says_so(make_customer, read):
    # September read 300 on A; B on since 10 October. A line giving B for September is refused because B was
    # not on then (as reading_record refuses it), not as a second register of the month read on A.
    customer = make_customer()
    september = read(customer, SEP, 300)
    b = replace(customer, when=at(10, 10), removal=400, install=0)
    result, reasons = _import([[b.serial, "2025-09", 50]])
    message = str(rules.BEFORE_INSTALL) % {"m": "09/2025"}
    assert (result.inserted, reasons) == (0, [message])
    with pytest.raises(ValidationError) as refused:
        read(customer, SEP, 50, meter_id=b.pk)
    assert refused.value.message_dict == {"period": [message]}
    assert _current(customer, SEP).pk == september.pk


def test_a_line_for_a_month_the_meter_served_in_an_earlier_stay_is_taken(make_customer, read):
    # A served September, went off for a stand-in in October and is back: a line giving A for September is
    # compared with September's reading (the same register: unchanged), not refused as before A's install.
    customer = make_customer()
    september = read(customer, SEP, 300)
    a = first_meter(customer)
    replace(customer, when=at(10, 10), removal=400, install=0)
    replace(customer, when=at(10, 20), removal=100, install=400, meter=a)
    result, reasons = _import([[a.serial, "2025-09", 300]])
    assert (result.inserted, result.unchanged, reasons) == (0, 1, [])
    assert _current(customer, SEP).pk == september.pk
