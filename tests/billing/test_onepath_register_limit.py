"""Auditor "onepath": the largest register a meter reads is a rule of the meter moves
(``customers.services._check_register``: ``MeterAssignment.largest_register``, 2,147,483,647 kWh), but the
readings take any register their bigint column holds (``reading_record``, the API up to 10**12, the import up to
15 digits). A register the meter moves call impossible is read and billed, and then the meter cannot come off at
the register it was read at."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import services as billing
from billing.admin import ReadingCorrectForm
from billing.api.serializers import ReadingInSerializer
from billing.models import MeterReading
from crm.models import Role
from customers import services as customer_services
from customers.models import Contract, Meter, MeterAssignment, MeterKind
from tests.billing.test_import_readings import csv_bytes, run

OCT = dt.date(2025, 10, 1)
TOP = MeterAssignment.largest_register("reading_at_removal")  # 2,147,483,647


def _meter_near_the_top(customer) -> Meter:
    """The contract's meter replaced on 1 September 2025 by one whose register stands 647 kWh below the top."""
    at = timezone.make_aware(dt.datetime(2025, 9, 1))
    contract = Contract.objects.get(customer=customer)
    old = Meter.objects.get(assignments__contract=contract, assignments__removed_at__isnull=True)
    customer_services.meter_remove(actor=None, meter=old, at=at, reading=0, reason="Thay định kỳ")
    new = customer_services.meter_register(actor=None, unit=customer.unit, serial="TOP0000001",
                                           kind=MeterKind.ELECTRONIC)  # fmt: skip
    customer_services.meter_install(actor=None, meter=new, contract=contract, at=at, reading=TOP - 647)
    return new


def test_a_register_above_what_a_meter_reads_is_refused_as_a_reading_too(make_customer, read):
    # given: a meter whose register stands at 2,147,483,000
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    # when: October is read 1,000 kWh further, at 2,147,484,000: above what the meter moves accept
    with pytest.raises(ValidationError):
        read(customer, OCT, TOP + 353)
    # then: nothing was read, and the meter still comes off at its last register
    assert not MeterReading.objects.filter(meter=meter).exists()


def test_a_meter_read_at_a_register_can_come_off_at_that_register(make_customer, read):
    # given: a meter read (by reading_record) at 2,147,484,000 in October, if that reading is taken
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    try:
        read(customer, OCT, TOP + 353)
    except ValidationError:
        return  # refused as the meter moves refuse it: one rule
    # when: the meter comes off at the register it was read at
    at = timezone.make_aware(dt.datetime(2025, 11, 10))
    customer_services.meter_remove(actor=None, meter=meter, at=at, reading=TOP + 353, reason="Thay định kỳ")
    # then: it is off
    assert MeterAssignment.objects.get(meter=meter).reading_at_removal == TOP + 353


# The same refusal, the same words, whichever way the register comes in ----------------------------------------

ABOVE = f"A meter's register reads at most {TOP} kWh; {TOP + 353} cannot be its reading: check the digits."


def test_reading_record_refuses_it_on_the_value_in_the_meter_moves_words(make_customer, read):
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    with pytest.raises(ValidationError) as refused:
        read(customer, OCT, TOP + 353)
    assert refused.value.message_dict == {"value": [ABOVE]}
    # the meter moves say the same of the same register
    with pytest.raises(ValidationError) as moved:
        customer_services.meter_remove(actor=None, meter=meter, at=timezone.make_aware(dt.datetime(2025, 11, 10)),
                                       reading=TOP + 353, reason="Thay định kỳ")  # fmt: skip
    assert moved.value.message_dict == {"reading": [ABOVE]}
    assert MeterAssignment.objects.get(meter=meter).removed_at is None


def test_the_top_register_itself_is_read_and_the_meter_comes_off_at_it(make_customer, read):
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    reading = read(customer, OCT, TOP)
    assert (reading.value, reading.kwh) == (TOP, 647)
    at = timezone.make_aware(dt.datetime(2025, 11, 10))
    customer_services.meter_remove(actor=None, meter=meter, at=at, reading=TOP, reason="Thay định kỳ")
    assert MeterAssignment.objects.get(meter=meter).reading_at_removal == TOP


def test_a_correction_above_the_top_is_refused_in_the_same_words_and_changes_nothing(make_customer, read):
    customer = make_customer()
    _meter_near_the_top(customer)
    october = read(customer, OCT, TOP - 47)  # 600 kWh
    with pytest.raises(ValidationError) as refused:
        billing.reading_correct(actor=None, reading=october, value=TOP + 353, reason="Gõ nhầm")
    assert refused.value.message_dict == {"value": [ABOVE]}
    assert list(MeterReading.objects.filter(contract__customer=customer).values_list("value", "kwh", "status")) == [
        (TOP - 47, 600, "valid")
    ]


def test_the_import_refuses_the_line_in_the_same_words_and_writes_nothing(make_customer):
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    result, rejects = run(csv_bytes([(meter.serial, "2025-10", TOP + 353)]), source="handheld")
    assert (result.inserted, rejects) == (0, [(2, ABOVE)])
    assert not MeterReading.objects.filter(meter=meter).exists()
    # the top itself goes in, as reading_record takes it
    result, rejects = run(csv_bytes([(meter.serial, "2025-10", TOP)]), source="handheld")
    assert (result.inserted, rejects) == (1, [])
    assert MeterReading.objects.get(meter=meter).kwh == 647


def test_the_api_and_the_admin_stop_at_the_same_register(client, org, make_customer, make_staff):
    billing.tariffs_load_reference()
    customer = make_customer()
    meter = _meter_near_the_top(customer)
    client.force_login(make_staff(Role.BILLING_CLERK, [org["home"]]))
    response = client.post(
        "/api/v1/readings/",
        {"contract_number": Contract.objects.get(customer=customer).number, "period": "2025-10-01",
         "value": TOP + 1, "source": "handheld"},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert f"at most {TOP} kWh" in str(response.json())
    assert not MeterReading.objects.filter(meter=meter).exists()
    assert ReadingInSerializer().fields["value"].max_value == TOP
    assert ReadingCorrectForm().fields["value"].widget.attrs["max"] == TOP
