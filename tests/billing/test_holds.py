"""An open dispute or re-inspection holds the bill it concerns, whatever the order of events, until it closes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import services as billing
from billing.models import Invoice, Reinspection
from crm.models import Role
from tests.billing.conftest import OCT
from tickets.services import ticket_open

SEP = dt.date(2025, 9, 1)


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Chỉ số sai",
                       customer=customer).ticket  # fmt: skip


def bill(customer) -> Invoice:
    return Invoice.objects.get(customer=customer, period=OCT, kind="regular")


def test_a_dispute_opened_on_a_reading_before_the_run_holds_its_bill_until_it_is_resolved(
    make_customer, read, catalogue, clerk
):
    customer, other = make_customer(), make_customer()
    reading = read(customer, OCT, 350)
    read(other, OCT, 120)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Chỉ số sai")  # fmt: skip
    assert billing.billing_run(actor=None, period=OCT).held == 1
    invoice = bill(customer)
    assert invoice.status == "held" and invoice.hold_reason
    assert billing.invoices_issue(actor=None, period=OCT) == 1  # the other customer's bill only
    invoice.refresh_from_db()
    assert invoice.status == "held"
    with pytest.raises(ValidationError, match="dispute"):
        billing.invoice_release(actor=clerk, invoice=invoice)
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="confirmed",
                                reread_value=350, evidence="Ảnh đồng hồ")  # fmt: skip
    invoice.refresh_from_db()
    assert invoice.status == "draft"
    assert billing.invoices_issue(actor=None, period=OCT) == 1


def test_an_anomaly_reinspection_opened_before_the_run_holds_its_bill(make_customer, read, clerk):
    customer = make_customer()
    read(customer, SEP, 100)
    read(customer, OCT, 400)  # 300 kWh after 100: a rise of 200%
    assert billing.anomaly_scan(actor=None, period=OCT)["reinspections"] == 1
    billing.billing_run(actor=None, period=OCT)
    assert bill(customer).status == "held"
    assert billing.invoices_issue(actor=None, period=OCT) == 0
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(), outcome="confirmed",
                                reread_value=400, evidence="Đúng chỉ số")  # fmt: skip
    assert bill(customer).status == "draft"


def test_a_dispute_on_a_reading_opened_after_its_draft_holds_the_draft(make_customer, read, catalogue, clerk):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Chỉ số sai")  # fmt: skip
    invoice = bill(customer)
    assert invoice.status == "held"
    assert billing.invoices_issue(actor=None, period=OCT) == 0
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    assert bill(customer).status == "held"  # its re-inspection is still open
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="confirmed",
                                reread_value=350, evidence="Ảnh")  # fmt: skip
    assert bill(customer).status == "draft"


def test_issuing_holds_a_draft_whose_reading_is_under_reinspection_and_says_why(make_customer, read, clerk):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    # A re-inspection recorded by another way in (a field unit's system) while the draft waits.
    Reinspection.objects.create(reading=reading, unit_id=reading.unit_id, reason="anomaly", created_at=timezone.now())
    invoice = bill(customer)
    with pytest.raises(ValidationError, match="re-inspection"):
        billing.invoice_issue(actor=clerk, invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == "draft" and invoice.issued_at is None  # refused: nothing changed
    assert billing.invoices_issue(actor=None, period=OCT) == 0
    invoice.refresh_from_db()
    assert invoice.status == "held" and "re-inspection" in invoice.hold_reason
