"""Readings in register order, whatever the order they come in: corrections during a run, corrections that
re-base the next month, late readings, and the reading rules shared by the service and the import."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from billing import imports
from billing import services as billing
from billing.models import Adjustment, AuditRecord, Invoice, MeterReading
from crm.models import Role
from customers import services as customer_services
from customers.models import Contract, Meter, MeterKind
from tests.billing.conftest import NOV, OCT

SEP = dt.date(2025, 9, 1)
on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


def current(customer, period) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=period)


def bill(customer, period) -> Invoice:
    return Invoice.objects.get(customer=customer, period=period, kind="regular")


def charge(kwh: int, period=OCT) -> int:
    return billing.charge_for(category="residential", period=period, kwh=kwh).total


# 1. A correction made during a billing run ----------------------------------------------------------------


@on_postgres
def test_a_correction_made_while_a_billing_run_is_open_waits_for_it_and_the_draft_follows_it(
    transactional_db, make_customer, read
):
    customer = make_customer()
    reading = read(customer, OCT, 400)
    outcome = {}

    def correct():
        try:
            outcome["new"] = billing.reading_correct(actor=None, reading=reading, value=300, reason="Đọc nhầm")
        except Exception as exc:  # reported to the test below
            outcome["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)
        worker = threading.Thread(target=correct)
        worker.start()
        worker.join(1.5)
        assert worker.is_alive()  # the correction waits for the run's transaction
    worker.join(30)
    assert not worker.is_alive() and "error" not in outcome
    invoice = bill(customer, OCT)
    assert (invoice.kwh, invoice.reading_id, invoice.total) == (300, outcome["new"].pk, charge(300))
    assert billing.billing_run(actor=None, period=OCT).invoices == 0


def test_a_correction_before_or_after_the_run_is_what_the_draft_bills(make_customer, read):
    before, after = make_customer(), make_customer()
    billing.reading_correct(actor=None, reading=read(before, OCT, 400), value=300, reason="Đọc nhầm")
    late = read(after, OCT, 400)
    assert billing.billing_run(actor=None, period=OCT).invoices == 2
    billing.reading_correct(actor=None, reading=late, value=300, reason="Đọc nhầm")
    assert billing.billing_run(actor=None, period=OCT).invoices == 0
    for customer in (before, after):
        invoice = bill(customer, OCT)
        assert (invoice.kwh, invoice.reading_id, invoice.total) == (300, current(customer, OCT).pk, charge(300))


# 3. A correction re-bases the next month -----------------------------------------------------------------


def test_a_correction_rebases_the_next_months_advance_and_its_draft(make_customer, read):
    customer = make_customer()
    october = read(customer, OCT, 300)
    read(customer, NOV, 600)
    billing.billing_run(actor=None, period=OCT)
    billing.billing_run(actor=None, period=NOV)
    billing.reading_correct(actor=None, reading=october, value=250, reason="Đọc nhầm")
    november = current(customer, NOV)
    assert (november.value, november.previous_value, november.kwh) == (600, 250, 350)
    assert november.corrects.kwh == 300 and november.corrects.status == "superseded"
    invoice = bill(customer, NOV)
    assert (invoice.kwh, invoice.reading_id, invoice.total) == (350, november.pk, charge(350, NOV))
    assert bill(customer, OCT).kwh == 250
    assert AuditRecord.objects.filter(action="reading.rebase", object_id=november.pk).exists()


def test_a_correction_proposes_an_adjustment_of_the_next_months_issued_bill(make_customer, read, org, make_staff):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 300)
    read(customer, NOV, 600)
    billing.billing_run(actor=None, period=OCT)
    billing.billing_run(actor=None, period=NOV)
    billing.invoices_issue(actor=None, period=NOV)
    issued = bill(customer, NOV)
    billing.reading_correct(actor=clerk, reading=october, value=250, reason="Đọc nhầm")
    adjustment = Adjustment.objects.get(original=issued)
    assert (adjustment.kwh, adjustment.status, adjustment.proposed_by) == (350, "proposed", clerk)
    assert adjustment.corrected_reading == current(customer, NOV)
    assert adjustment.delta_total == charge(350, NOV) - issued.total
    issued.refresh_from_db()
    assert (issued.kwh, issued.total) == (300, charge(300, NOV))  # the issued bill itself never changes


def test_a_correction_that_rebases_a_month_already_corrected_after_issue_proposes_its_adjustment(
    make_customer, read, org, make_staff
):
    # given: October issued at 350 kWh, its register corrected 650 → 600 (300 kWh) and that adjusted
    proposer, approver = (make_staff(Role.BILLING_CLERK, [org["home"]]) for _ in range(2))
    customer = make_customer()
    september = read(customer, SEP, 300)
    october = read(customer, OCT, 650)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    original = bill(customer, OCT)
    # 350 kWh: 99,200 + 102,500 + 238,000 + 299,800 + 50 × 3,350 = 907,000 + 72,560 = 979,560.
    assert original.total == 979_560
    corrected = billing.reading_correct(actor=proposer, reading=october, value=600, reason="Đọc sai")
    # the clerk who corrected the issued bill's reading proposes its adjustment
    first = Adjustment.objects.get(original=original, status="proposed")
    assert (first.kwh, first.corrected_reading, first.proposed_by) == (300, corrected, proposer)
    billing.adjustment_decide(actor=approver, adjustment=first, approve=True)
    # 300 kWh: 739,500 + 59,160 = 798,660: adjusted by −180,900.
    assert Adjustment.objects.get(pk=first.pk).delta_total == -180_900
    # when: September's register is corrected 300 → 350, which re-bases October to 600 − 350 = 250 kWh
    billing.reading_correct(actor=proposer, reading=september, value=350, reason="Tháng 9 đọc sai")
    # then: the issued bill (still pointing at the first October reading) gets its adjustment proposed
    rebased = current(customer, OCT)
    assert (rebased.kwh, rebased.corrects_id) == (250, corrected.pk)
    pending = Adjustment.objects.get(original=original, status="proposed")
    # 250 kWh: 99,200 + 102,500 + 238,000 + 50 × 2,998 = 589,600 + 47,168 = 636,768; 636,768 − 798,660.
    assert (pending.kwh, pending.corrected_reading, pending.delta_total) == (250, rebased, -161_892)
    assert pending.proposed_by == proposer
    original.refresh_from_db()
    assert (original.kwh, original.total, original.reading_id) == (350, 979_560, october.pk)


# 4. A late reading is placed in register order, or refused -------------------------------------------------


def test_a_late_reading_rebases_the_month_after_it(make_customer, read):
    customer = make_customer()
    read(customer, NOV, 300)
    billing.billing_run(actor=None, period=NOV)
    read(customer, OCT, 150)
    assert current(customer, OCT).kwh == 150
    november = current(customer, NOV)
    assert (november.previous_value, november.kwh) == (150, 150)  # 300 kWh in all, not 450
    assert bill(customer, NOV).kwh == 150


def test_a_late_estimate_is_placed_the_same_way(make_customer, read):
    customer = make_customer()
    read(customer, SEP, 90)  # 3 kWh a day over September's 30 days
    read(customer, NOV, 400)
    estimate = billing.reading_estimate(actor=None, contract=Contract.objects.get(customer=customer), period=OCT)
    assert (estimate.previous_value, estimate.kwh, estimate.value) == (90, 93, 183)  # 31 days
    november = current(customer, NOV)
    assert (november.previous_value, november.kwh) == (183, 217)


def _import(customer, period, value) -> str:
    serial = Meter.objects.get(
        assignments__contract__customer=customer, assignments__removed_at__isnull=True
    ).serial
    data = f"meter_serial,period,value\n{serial},{period:%Y-%m},{value}\n".encode()
    result = imports.import_readings(stream=io.BytesIO(data))
    return result.rejects[0].reason if result.rejects else ""


def _import_by_contract(customer, period, value) -> str:
    number = Contract.objects.get(customer=customer).number
    data = f"contract_number,period,value\n{number},{period:%Y-%m},{value}\n".encode()
    result = imports.import_readings(stream=io.BytesIO(data))
    return result.rejects[0].reason if result.rejects else ""


def _service(customer, period, value) -> str:
    try:
        billing.reading_record(actor=None, contract=Contract.objects.get(customer=customer), period=period,
                               value=value, source="handheld")  # fmt: skip
    except ValidationError as exc:
        return "; ".join(exc.messages)
    return ""


# (case, register entered for October, the refusal (its start) or "" when taken, November's kWh after)
CASES = [
    ("between", 150, "", 150),
    ("equal to the later", 300, "", 0),
    ("above the later", 350, "The register (350) is above the reading of a later month (11/2025: 300).", 200),
    ("below the earlier", 50, "The register (50) is below the previous reading (100).", 200),
]


@pytest.mark.parametrize("path", [_service, _import], ids=["service", "import"])
@pytest.mark.parametrize(("case", "value", "refusal", "november_kwh"), CASES, ids=[c[0] for c in CASES])
def test_a_late_reading_is_placed_among_its_neighbours_or_refused_the_same_way_by_both_paths(
    make_customer, read, path, case, value, refusal, november_kwh
):
    customer = make_customer()
    read(customer, SEP, 100)
    read(customer, NOV, 300)
    before = MeterReading.objects.count()
    reason = path(customer, OCT, value)
    assert reason.startswith(refusal) and bool(reason) == bool(refusal)
    assert current(customer, NOV).kwh == november_kwh
    if refusal:
        assert MeterReading.objects.count() == before  # a refused reading changes nothing
    else:
        assert (current(customer, OCT).previous_value, current(customer, OCT).kwh) == (100, value - 100)


# 9. Readings refused for suspended contracts and months before the meter --------------------------------


@pytest.mark.parametrize("path", [_service, _import, _import_by_contract], ids=["service", "import", "by-contract"])
def test_a_suspended_contract_is_not_read(make_customer, read, path):
    customer = make_customer()
    read(customer, SEP, 100)
    customer_services.contract_set_status(actor=None, contract=Contract.objects.get(customer=customer),
                                          status="suspended")  # fmt: skip
    assert path(customer, OCT, 200) == "The contract is suspended: its meter is not read until it is active again."
    assert not MeterReading.objects.filter(contract__customer=customer, period=OCT).exists()


@pytest.mark.parametrize("path", [_service, _import, _import_by_contract], ids=["service", "import", "by-contract"])
def test_a_month_before_the_meter_was_installed_is_not_read_on_it(make_customer, path, org, tariffs):
    customer = make_customer()
    old = Meter.objects.get(assignments__contract__customer=customer)
    # The old meter came off as October began (it served none of it); the new one went on as it ended.
    customer_services.meter_remove(actor=None, meter=old, at=timezone.make_aware(dt.datetime(2025, 10, 1)),
                                   reading=0, reason="Thay")  # fmt: skip
    at = timezone.make_aware(dt.datetime(2025, 11, 1))  # local midnight: October is over
    new = customer_services.meter_register(actor=None, unit=org["home"], serial=f"N{customer.pk:05d}",
                                           kind=MeterKind.ELECTRONIC)  # fmt: skip
    customer_services.meter_install(actor=None, meter=new, contract=Contract.objects.get(customer=customer), at=at,
                                    reading=0)  # fmt: skip
    assert path(customer, OCT, 100) == "The meter was installed after 10/2025: that month is not read on it."
    assert path(customer, NOV, 100) == ""
    assert not MeterReading.objects.filter(contract__customer=customer, period=OCT).exists()
