"""A contract's readings change one at a time (money audit #1, two connections, PostgreSQL): a reading of the
next month recorded, estimated or imported while the month before is corrected. The correction re-bases a later
month only when it sees it, so whichever starts second waits for the other (``billing.services.lock_contract``)
and the later month advances from the register in force."""

import csv
import io

import pytest
from django.conf import settings
from django.db import transaction

from billing import imports
from billing import services as billing
from billing.models import Invoice, MeterReading
from crm.models import Role
from customers.models import Contract, Meter
from tests.billing.conftest import NOV, OCT
from tests.concurrency import in_thread

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


def _current(customer, period) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=period)


def _meanwhile(work):
    """``work`` started in another connection, given 1.5 s: the thread and its outcome."""
    thread, outcome = in_thread(work)
    thread.join(1.5)
    return thread, outcome


def _correct_october(clerk, october):
    return lambda: billing.reading_correct(actor=clerk, reading=october, value=300, reason="Đọc sai: 300")


def _november_file(customer) -> io.BytesIO:
    serial = Meter.objects.get(assignments__contract__customer=customer, assignments__removed_at__isnull=True).serial
    out = io.StringIO()
    csv.writer(out).writerows([("meter_serial", "period", "value"), (serial, "2025-11", 500)])
    return io.BytesIO(out.getvalue().encode())


def _finished(thread, outcome):
    thread.join(30)
    assert not thread.is_alive() and "error" not in outcome, outcome
    return outcome.get("result")


def _billed_from_the_corrected_register(customer):
    oct_now, nov_now = _current(customer, OCT), _current(customer, NOV)
    assert oct_now.value == 300
    # October now reads 300: November's advance is 500 − 300 = 200 kWh, from the register in force.
    assert (nov_now.value, nov_now.previous_value, nov_now.kwh) == (500, 300, 200)
    assert MeterReading.objects.filter(contract__customer=customer, period=NOV).count() == 2  # re-based once


@on_postgres
def test_a_november_reading_taken_while_october_is_corrected_bills_from_the_corrected_register(
    transactional_db, org, make_staff, make_customer, read
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    contract = Contract.objects.get(customer=customer)
    with transaction.atomic():
        # A meter reader's November register 500, being recorded (150 kWh from October's 350) ...
        billing.reading_record(actor=None, contract=contract, period=NOV, value=500, source="handheld")
        # ... while a billing clerk corrects October's mistyped register to 300: the correction waits.
        thread, outcome = _meanwhile(_correct_october(clerk, october))
        assert thread.is_alive()
    _finished(thread, outcome)
    _billed_from_the_corrected_register(customer)


@on_postgres
def test_a_november_reading_taken_while_a_correction_of_october_is_open_waits_and_advances_from_it(
    transactional_db, org, make_staff, make_customer, read
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    contract = Contract.objects.get(customer=customer)
    with transaction.atomic():
        # The correction first (not committed yet) ...
        _correct_october(clerk, october)()
        # ... and the meter reader's November register meanwhile: it waits for the correction.
        thread, outcome = _meanwhile(lambda: billing.reading_record(
            actor=None, contract=contract, period=NOV, value=500, source="handheld"))  # fmt: skip
        assert thread.is_alive()
    november = _finished(thread, outcome)
    assert (november.previous_value, november.kwh) == (300, 200)  # recorded once, from the corrected register
    assert MeterReading.objects.filter(contract=contract, period=NOV).count() == 1


@on_postgres
def test_a_readings_file_imported_while_october_is_corrected_bills_from_the_corrected_register(
    transactional_db, org, make_staff, make_customer, read
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    with transaction.atomic():
        # The November file is being imported (its transaction still open) ...
        result = imports.import_readings(stream=_november_file(customer))
        assert result.inserted == 1
        # ... while a billing clerk corrects October's register to 300: the correction waits.
        thread, outcome = _meanwhile(_correct_october(clerk, october))
        assert thread.is_alive()
    _finished(thread, outcome)
    _billed_from_the_corrected_register(customer)


@on_postgres
def test_a_readings_file_imported_while_a_correction_of_october_is_open_waits_and_advances_from_it(
    transactional_db, org, make_staff, make_customer, read
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    with transaction.atomic():
        _correct_october(clerk, october)()
        # The November file meanwhile: its contracts are locked before the advance is computed, so it waits.
        thread, outcome = _meanwhile(lambda: imports.import_readings(stream=_november_file(customer)))
        assert thread.is_alive()
    assert _finished(thread, outcome).inserted == 1
    november = _current(customer, NOV)
    assert (november.previous_value, november.kwh) == (300, 200)
    assert MeterReading.objects.filter(contract__customer=customer, period=NOV).count() == 1


@on_postgres
def test_a_november_estimate_made_while_october_is_corrected_is_rebased_on_the_corrected_register(
    transactional_db, org, make_staff, make_customer, read
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    contract = Contract.objects.get(customer=customer)
    with transaction.atomic():
        estimate = billing.reading_estimate(actor=None, contract=contract, period=NOV)
        assert estimate.previous_value == 350
        thread, outcome = _meanwhile(_correct_october(clerk, october))
        assert thread.is_alive()
    _finished(thread, outcome)
    november = _current(customer, NOV)
    # The estimated register stays; its advance now runs from October's corrected 300.
    assert (november.value, november.previous_value, november.kwh) == (estimate.value, 300, estimate.value - 300)
    assert november.corrects_id == estimate.pk


@on_postgres
def test_a_billing_run_of_october_does_not_wait_for_a_november_reading_being_recorded(
    transactional_db, make_customer, read
):
    # The contract's lock (FOR NO KEY UPDATE) is taken before any period lock; the run, which holds October's
    # period lock exclusively, never waits for it: no cycle between the two.
    customer = make_customer()
    read(customer, OCT, 350)
    contract = Contract.objects.get(customer=customer)
    with transaction.atomic():
        billing.reading_record(actor=None, contract=contract, period=NOV, value=500, source="handheld")
        thread, outcome = _meanwhile(lambda: billing.billing_run(actor=None, period=OCT))
        _finished(thread, outcome)  # done while the November reading is still open
    bill = Invoice.objects.get(customer=customer, period=OCT)
    assert (bill.kwh, bill.status) == (350, "draft")
    assert _current(customer, NOV).kwh == 150
