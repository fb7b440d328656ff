"""Corrections in unusual orders: a dispute naming only the reading of an issued bill, a dispute of another
month offered to an adjustment, two adjustments of one bill, two rebate rounds with the first taken back, a
reading corrected across a rebate's bands, and a register that rolled over corrected."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing import services as billing
from billing.models import (
    Adjustment,
    AuditRecord,
    Dispute,
    Invoice,
    MeterReading,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Reinspection,
)
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tickets.services import ticket_open


@pytest.fixture
def clerks(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]]), make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket


def _programme(name, percent, **kw):
    programme = RebateProgramme.objects.create(name=name, legal_basis="NQ", period_from=OCT, period_to=OCT, **kw)
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
    return programme


def _issued(customer, read, kwh=350):
    read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer, period=OCT)


def test_a_dispute_naming_the_reading_of_an_issued_bill_waits_for_its_adjustment(
    make_customer, read, catalogue, clerks
):
    proposer, approver = clerks
    customer = make_customer()
    invoice = _issued(customer, read)
    dispute = billing.dispute_open(
        actor=proposer, ticket=_complaint(customer, catalogue), reading=invoice.reading, claim="Sai chỉ số"
    )
    item = Reinspection.objects.get(dispute=dispute)
    billing.reinspection_record(actor=proposer, item=item, outcome="corrected", reread_value=150, evidence="Ảnh")
    dispute.refresh_from_db()
    # The issued bill still charges 350 kWh: the customer's dispute stays open until the adjustment is approved.
    assert (dispute.status, dispute.outcome) == ("open", "")
    corrected = MeterReading.objects.get(corrects=invoice.reading)
    adjustment = billing.adjustment_propose(
        actor=proposer, invoice=invoice, record="Biên bản", reading=corrected, dispute=dispute
    )
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    dispute.refresh_from_db()
    adjustment.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    assert adjustment.invoice.kwh == 150 - 350


def test_an_adjustment_refuses_a_dispute_about_another_month_and_the_admin_says_so(
    client, make_customer, read, catalogue, clerks
):
    proposer, _approver = clerks
    customer = make_customer()
    october = _issued(customer, read)
    november_reading = read(customer, NOV, 900)
    billing.billing_run(actor=None, period=NOV)
    november_dispute = billing.dispute_open(
        actor=proposer, ticket=_complaint(customer, catalogue), reading=november_reading, claim="Tháng 11 sai"
    )
    with pytest.raises(ValidationError) as refused:
        billing.adjustment_propose(
            actor=proposer, invoice=october, record="Biên bản", kwh=300, dispute=november_dispute
        )
    assert set(refused.value.error_dict) == {"dispute"}
    client.force_login(proposer)
    response = client.post(
        reverse("admin:billing_adjustment_add"),
        {"original": october.pk, "dispute": november_dispute.pk, "corrected_reading": "", "kwh": "300",
         "record": "Biên bản"},
    )  # fmt: skip
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"dispute"}
    assert not Adjustment.objects.exists()
    assert Dispute.objects.get(pk=november_dispute.pk).status == "open"


def test_each_adjustment_invoice_carries_the_kwh_it_changes(make_customer, read, clerks):
    proposer, approver = clerks
    original = _issued(make_customer(), read)
    first = billing.adjustment_propose(actor=proposer, invoice=original, record="BB1", kwh=300)
    billing.adjustment_decide(actor=approver, adjustment=first, approve=True)
    second = billing.adjustment_propose(actor=proposer, invoice=original, record="BB2", kwh=250)
    billing.adjustment_decide(actor=approver, adjustment=second, approve=True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.invoice.kwh, second.invoice.kwh, second.invoice.lines.get().kwh) == (-50, -50, -50)
    assert original.kwh + first.invoice.kwh + second.invoice.kwh == 250
    expected = billing.charge_for(category="residential", period=OCT, kwh=250)
    assert original.total + first.invoice.total + second.invoice.total == expected.total


def test_taking_back_the_first_of_two_rebate_rounds_computes_the_second_again(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    first, second = _programme("Đợt 1", "10"), _programme("Đợt 2", "10")
    billing.rebate_apply(actor=None, programme=first)
    billing.rebate_apply(actor=None, programme=second)
    billing.rebate_reverse(actor=None, programme=first)
    invoice = Invoice.objects.get(customer=customer)
    expected = billing.charge_for(category="residential", period=OCT, kwh=350, rebates=[Decimal("10")])
    assert (invoice.subtotal, invoice.vat, invoice.total) == (expected.subtotal, expected.vat, expected.total)
    left = RebateApplication.objects.get(invoice=invoice)
    assert (left.programme, left.amount) == (second, sum(p.amount for p in expected.rebates[0]))
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal


@pytest.mark.parametrize(
    ("bands", "max_kwh", "kept_percent"),
    [([(0, 100, "20"), (100, None, "5")], None, Decimal("5")), ([(0, None, "20")], 100, None)],
    ids=["another band", "outside the programme"],
)
def test_a_reading_corrected_before_issue_takes_the_rebate_of_its_new_kwh(
    make_customer, read, clerks, bands, max_kwh, kept_percent
):
    customer = make_customer()
    reading = read(customer, OCT, 50)
    billing.billing_run(actor=None, period=OCT)
    programme = RebateProgramme.objects.create(
        name="Đợt 4", legal_basis="NQ", period_from=OCT, period_to=OCT, max_kwh=max_kwh
    )
    for low, high, percent in bands:
        RebateBand.objects.create(programme=programme, from_kwh=low, to_kwh=high, percent=Decimal(percent))
    billing.rebate_apply(actor=None, programme=programme)
    assert Invoice.objects.get(customer=customer).rebates.get().percent == Decimal("20")
    billing.reading_correct(actor=clerks[0], reading=reading, value=300, reason="Đọc sai")
    invoice = Invoice.objects.get(customer=customer)
    rebates = [kept_percent] if kept_percent is not None else []
    expected = billing.charge_for(category="residential", period=OCT, kwh=300, rebates=rebates)
    assert list(invoice.rebates.values_list("percent", flat=True)) == rebates
    assert (invoice.kwh, invoice.total) == (300, expected.total)
    recomputed = AuditRecord.objects.filter(action="invoice.recompute").latest("id")
    assert recomputed.after["rebates"] == {
        str(programme.pk): ["20.00", None if kept_percent is None else f"{kept_percent:.2f}"]
    }


def test_a_register_that_rolled_over_can_be_corrected(make_customer, read, clerks):
    customer = make_customer()
    read(customer, OCT, 99_990)
    november = read(customer, NOV, 5, rolled_over=True)
    assert november.kwh == 15
    corrected = billing.reading_correct(actor=clerks[0], reading=november, value=8, reason="Đọc sai chữ số")
    assert corrected.kwh == 18
    # Read again: it had not rolled over after all.
    again = billing.reading_correct(actor=clerks[0], reading=corrected, value=99_995, reason="Chưa quay vòng")
    assert again.kwh == 5
    with pytest.raises(ValidationError):
        billing.reading_correct(actor=clerks[0], reading=again, value=99_980, reason="Dưới chỉ số cũ")
    assert MeterReading.objects.filter(contract__customer=customer, period=NOV).exclude(status="superseded").get() == again
