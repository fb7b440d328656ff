"""Readings, the billing run, issue and the immutability of issued invoices."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from billing import services as billing
from billing.models import AuditRecord, Invoice, InvoiceLine, MeterReading, Reinspection
from crm.models import Role
from tests.billing.conftest import DEC, NOV, OCT
from tests.organisation import merge


def test_readings_are_validated_and_jumps_flagged(make_customer, read):
    customer = make_customer()
    first = read(customer, OCT, 200)
    assert (first.previous_value, first.kwh, first.status) == (0, 200, "valid")
    second = read(customer, NOV, 410)
    assert (second.previous_value, second.kwh) == (200, 210)
    with pytest.raises(ValidationError, match="below the previous"):
        read(customer, DEC, 400)
    with pytest.raises(ValidationError, match="already read"):
        read(customer, NOV, 500)
    jump = read(customer, DEC, 410 + 2000)  # about 205 kWh a month before: 2000 is implausible
    assert jump.status == "flagged" and "expected" in jump.flag_reason
    assert MeterReading.objects.count() == 3
    assert AuditRecord.objects.filter(action="reading.record").count() == 3


def test_a_rolled_over_register_is_accepted_when_said(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 99_950)
    rolled = read(customer, NOV, 40, rolled_over=True)
    assert rolled.kwh == 100_000 + 40 - 99_950


def test_a_stopped_meter_is_estimated_from_the_last_three_cycles(make_customer, read):
    customer = make_customer()
    read(customer, dt(2025, 8), 310)  # August 31 days: 310
    read(customer, dt(2025, 9), 610)  # September 30 days: 300
    read(customer, OCT, 920)  # October 31 days: 310
    contract = customer.contracts.get()
    estimate = billing.reading_estimate(actor=None, contract=contract, period=NOV)
    # (310 + 300 + 310) kWh / (31 + 30 + 31) days = 10 kWh a day; November has 30 days.
    assert (estimate.kwh, estimate.value, estimate.source) == (300, 1220, "estimated")


def dt(year, month):
    import datetime

    return datetime.date(year, month, 1)


def test_the_billing_run_bills_each_contract_once_with_lines(make_customer, read, org):
    a, b, c = make_customer(), make_customer(), make_customer()
    read(a, OCT, 350)
    read(b, OCT, 40)
    result = billing.billing_run(actor=None, period=OCT)
    assert (result.invoices, result.without_reading, result.held) == (2, 1, 0)
    invoice = Invoice.objects.get(customer=a)
    # 350 kWh in October 2025 (prices from 2025-05-10, VAT 8%): 907,000 + 72,560.
    assert (invoice.kwh, invoice.subtotal, invoice.vat, invoice.total) == (350, 907_000, 72_560, 979_560)
    assert [(line.kwh, line.price) for line in invoice.lines.order_by("position")] == [
        (50, 1984),
        (50, 2050),
        (100, 2380),
        (100, 2998),
        (50, 3350),
    ]
    assert invoice.number.startswith("HD2025-") and invoice.status == "draft"
    again = billing.billing_run(actor=None, period=OCT)
    assert again.invoices == 0 and Invoice.objects.count() == 2
    read(c, OCT, 10)
    assert billing.billing_run(actor=None, period=OCT).invoices == 1


def test_a_run_written_in_chunks_numbers_and_prices_every_contract_as_one_statement_would(
    make_customer, read, settings
):
    customers = [make_customer() for _ in range(5)]
    for i, customer in enumerate(customers):
        read(customer, OCT, 40 + 90 * i)  # 40 … 400 kWh: one to five tiers
    settings.TONGDAI_BILLING_RUN_CHUNK = 2  # chunks of 2, 2 and 1 on PostgreSQL
    result = billing.billing_run(actor=None, period=OCT)
    assert result.invoices == 5
    invoices = list(Invoice.objects.filter(run=result.run).order_by("contract_id"))
    numbers = [int(i.number.split("-")[1]) for i in invoices]
    assert numbers == list(range(numbers[0], numbers[0] + 5))  # consecutive, in contract order
    for invoice in invoices:
        charge = billing.charge_for(category="residential", period=OCT, kwh=invoice.kwh)
        assert (invoice.subtotal, invoice.total) == (charge.subtotal, charge.total)
        assert [(line.kwh, line.amount) for line in invoice.lines.order_by("position")] == [
            (line.kwh, line.amount) for line in charge.lines
        ]
    assert [i.kwh for i in invoices] == [40 + 90 * i for i in range(5)]


def test_a_flagged_reading_holds_its_invoice(make_customer, read):
    customer = make_customer()
    read(customer, dt(2025, 9), 100)
    read(customer, OCT, 200)
    read(customer, NOV, 200 + 3000)
    billing.billing_run(actor=None, period=NOV)
    invoice = Invoice.objects.get(period=NOV)
    assert invoice.status == "held" and invoice.hold_reason.startswith("Reading flagged")
    assert billing.invoices_issue(actor=None, period=NOV) == 0


def _issued_invoice(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    assert billing.invoices_issue(actor=None, period=OCT) == 1
    return Invoice.objects.get(customer=customer)


def test_an_issued_invoice_is_immutable_in_the_model_layer(make_customer, read):
    invoice = _issued_invoice(make_customer, read)
    before = (invoice.total, invoice.lines.count())
    invoice.total = 1
    with pytest.raises(ValidationError):
        invoice.save()
    with pytest.raises(ValidationError):
        Invoice.objects.filter(pk=invoice.pk).update(total=1, subtotal=1)
    with pytest.raises(ValidationError):
        invoice.delete()
    invoice.refresh_from_db()
    assert (invoice.total, invoice.lines.count()) == before
    billing.payment_record(  # the one move left: paid, by a payment of what it owes
        actor=None, invoice=invoice, amount=invoice.amount_due, paid_at=timezone.now(), source="counter",
        reference="FLOW-1",
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_invoice SET total = total + 1, subtotal = subtotal + 1 WHERE id = %s",
        "UPDATE billing_invoice SET status = 'draft' WHERE id = %s",
        "DELETE FROM billing_invoice WHERE id = %s",
        "UPDATE billing_invoiceline SET amount = 0 WHERE invoice_id = %s",
        "DELETE FROM billing_invoiceline WHERE invoice_id = %s",
        "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, amount, "
        "vat_percent) VALUES (%s, 99, 'x', '2025-10-01', NULL, 0, 0, -5, 8)",
    ],
)
def test_the_database_itself_refuses_to_change_an_issued_invoice(make_customer, read, statement):
    invoice = _issued_invoice(make_customer, read)
    snapshot = (
        Invoice.objects.filter(pk=invoice.pk).values().get(),
        list(InvoiceLine.objects.filter(invoice=invoice).values()),
    )
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [invoice.pk])
    assert (
        Invoice.objects.filter(pk=invoice.pk).values().get(),
        list(InvoiceLine.objects.filter(invoice=invoice).values()),
    ) == snapshot


def test_audit_records_cannot_be_changed_even_in_sql(make_customer, read):
    read(make_customer(), OCT, 10)
    record = AuditRecord.objects.get()
    with pytest.raises(ValidationError):
        AuditRecord.objects.filter(pk=record.pk).update(reason="x")
    for statement in ("UPDATE billing_auditrecord SET reason = 'x' WHERE id = %s",
                      "DELETE FROM billing_auditrecord WHERE id = %s"):  # fmt: skip
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [record.pk])
    record.refresh_from_db()
    assert record.reason == ""


# A unit merged into another ---------------------------------------------------------------------------------


def test_a_run_of_the_successor_bills_issues_and_scans_the_customers_of_the_unit_merged_into_it(
    org, make_customer, make_staff, read
):
    # given customers of the sibling unit, read for October, and the sibling merged into home mid-month
    home, sibling = org["home"], org["sibling"]
    kept, risen, unread = (make_customer(sibling, phones=[f"0903 222 33{n}"]) for n in range(3))
    read(kept, OCT, 150)
    read(risen, datetime.date(2025, 9, 1), 100)
    read(risen, OCT, 400)  # 300 kWh after 100: a rise the scan holds
    clerk = make_staff(Role.BILLING_CLERK, [home])
    merge(sibling, home, datetime.date(2025, 10, 15))
    # when home's clerk scans, runs and issues the month for home
    scan = billing.anomaly_scan(actor=clerk, period=OCT, unit=home)
    result = billing.billing_run(actor=clerk, period=OCT, unit=home)
    issued = billing.invoices_issue(actor=clerk, period=OCT, unit=home)
    # then the merged unit's customers are scanned, billed (one held for the rise), left out counted, issued
    assert (scan["reinspections"], Reinspection.objects.get().reading.contract.customer) == (1, risen)
    assert (result.invoices, result.without_reading, result.held) == (2, 1, 1)
    assert Invoice.objects.get(customer=kept).status == "issued" and issued == 1
    assert Invoice.objects.get(customer=risen).status == "held"
    assert not Invoice.objects.filter(customer=unread).exists()
    # and a run of the merged unit itself bills nothing twice
    assert billing.billing_run(actor=None, period=OCT, unit=sibling).invoices == 0
    assert Invoice.objects.count() == 2


def test_a_merge_dated_ahead_leaves_the_units_customers_to_its_own_run_until_its_day(org, make_customer, read):
    # given a customer of the sibling unit read for October, and a merge into home entered for tomorrow
    home, sibling = org["home"], org["sibling"]
    kept = make_customer(sibling, phones=["0903 222 333"])
    read(kept, OCT, 150)
    merge(sibling, home, timezone.localdate() + datetime.timedelta(days=1))
    # when home's month is run, then nothing of the sibling is in it
    result = billing.billing_run(actor=None, period=OCT, unit=home)
    assert (result.invoices, result.without_reading, result.held) == (0, 0, 0)
    # and the sibling's own run bills its customer
    assert billing.billing_run(actor=None, period=OCT, unit=sibling).invoices == 1
    assert Invoice.objects.get().customer == kept
