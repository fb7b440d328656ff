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


# A corrected kWh that moves into an applied rebate programme gets its rebate ------------------------------


def _up_to_200_kwh(**kw):
    """Round 4: 10% off bills of October up to 200 kWh."""
    return _programme("Đợt 4", "10", max_kwh=200, **kw)


def test_an_adjustment_to_a_kwh_inside_an_applied_rebate_programme_gets_its_rebate(make_customer, read, clerks):
    # given: October misread at 300 kWh (the meter showed 150), round 4 applied (the bill is outside it), issued
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    assert billing.rebate_apply(actor=None, programme=_up_to_200_kwh())["invoices"] == 0
    billing.invoices_issue(actor=None, period=OCT)
    original = Invoice.objects.get(customer=customer, period=OCT)
    assert original.total == 798_660  # 739,500 + 59,160
    # when: an adjustment to 150 kWh is proposed and approved
    proposer, approver = clerks
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=150, record="Biên bản")
    # then: 150 kWh is in the programme: 99,200 + 102,500 + 119,000 = 320,700; rebate 10% = 32,070;
    # 288,630 + VAT 23,090.4 → 23,090 = 311,720: the difference is 311,720 − 798,660 = −486,940.
    assert (adjustment.delta_subtotal, adjustment.delta_vat, adjustment.delta_total) == (
        -450_870, -36_070, -486_940,
    )  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert [(line.amount, line.vat_percent) for line in adjustment.invoice.lines.all()] == [(-450_870, 8)]
    assert adjustment.invoice.total == -486_940
    # The issued bill itself never changes; the adjustment invoice records the round it brought onto the bill.
    assert list(RebateApplication.objects.values_list("invoice_id", "percent", "base", "amount")) == [
        (adjustment.invoice_id, Decimal("10.00"), 320_700, 32_070)
    ]


def test_an_adjustment_out_of_an_applied_programme_loses_its_rebate_and_other_customers_get_none(
    make_customer, read, clerks
):
    # given: two bills of 150 kWh issued with round 4 (residential customers of October only), and a
    # business customer's 300 kWh bill, outside the round's types
    home, shop = make_customer(), make_customer(customer_type="business")
    read(home, OCT, 150)
    read(shop, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    billing.rebate_apply(actor=None, programme=_up_to_200_kwh(customer_types=["residential"]))
    billing.invoices_issue(actor=None, period=OCT)
    home_bill, shop_bill = (Invoice.objects.get(customer=c, period=OCT) for c in (home, shop))
    assert home_bill.total == 311_720
    proposer, _approver = clerks
    # when: the home is corrected to 250 kWh (out of the round) and the shop to 150 kWh (its kWh is in it)
    out = billing.adjustment_propose(actor=proposer, invoice=home_bill, kwh=250, record="Biên bản")
    shop_adjustment = billing.adjustment_propose(actor=proposer, invoice=shop_bill, kwh=150, record="Biên bản")
    # then: 250 kWh without the rebate: 589,600 + 47,168 = 636,768; 636,768 − 311,720 = 325,048.  The shop,
    # not residential, gets none: 346,356 − 798,660 = −452,304 (its business prices, computed by the rule).
    assert out.delta_total == 636_768 - 311_720
    plain = billing.charge_for(category=shop_bill.contract.tariff_category, period=OCT, kwh=150).total
    assert shop_adjustment.delta_total == plain - shop_bill.total


def test_a_reading_corrected_before_issue_into_an_applied_rebate_programme_gets_its_rebate(
    make_customer, read, clerks
):
    # given: October read 300 kWh, round 4 applied (the bill is outside it)
    customer = make_customer()
    reading = read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _up_to_200_kwh()
    billing.rebate_apply(actor=None, programme=programme)
    # when: the reading is corrected to 150 kWh before issue
    billing.reading_correct(actor=clerks[0], reading=reading, value=150, reason="Đọc sai")
    # then: recomputed with the round, as the round would have applied it: 311,720 (see above)
    invoice = Invoice.objects.get(customer=customer, period=OCT)
    assert (invoice.kwh, invoice.subtotal, invoice.vat, invoice.total) == (150, 288_630, 23_090, 311_720)
    application = RebateApplication.objects.get(invoice=invoice)
    assert (application.programme, application.percent, application.base, application.amount, application.vat) == (
        programme, Decimal("10"), 320_700, 32_070, 2_566,
    )  # fmt: skip
    assert [(line.label, line.amount) for line in invoice.lines.filter(tier=None)] == [
        (billing.rebate_label(programme), -32_070)
    ]
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal
    recomputed = AuditRecord.objects.filter(action="invoice.recompute").latest("id")
    assert recomputed.after["rebates"] == {str(programme.pk): [None, "10.00"]}
    # and the round applied again finds nothing left to do
    assert billing.rebate_apply(actor=None, programme=programme)["invoices"] == 0


def test_a_round_taken_back_while_issued_bills_keep_it_is_not_applied_again(make_customer, read, clerks):
    # given: round 4 applied to two bills of 150 kWh (311,720 each, 346,356 without it); one of them issued
    kept, taken = make_customer(), make_customer()
    read(kept, OCT, 150)
    reading = read(taken, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _up_to_200_kwh()
    assert billing.rebate_apply(actor=None, programme=programme)["invoices"] == 2
    billing.invoice_issue(actor=None, invoice=Invoice.objects.get(customer=kept))
    # when: the round is taken back
    assert billing.rebate_reverse(actor=None, programme=programme) == {"reversed": 1, "kept_on_issued": 1}
    # then: it is reversed (the issued bill keeps it, counted), and neither applying it again nor a correction
    # of the bill it was taken off puts it back
    programme.refresh_from_db()
    assert programme.status == "reversed"
    assert Invoice.objects.get(customer=kept).total == 311_720
    assert Invoice.objects.get(customer=taken).total == 346_356
    with pytest.raises(ValidationError, match="reversed programme is not applied again"):
        billing.rebate_apply(actor=None, programme=programme)
    billing.reading_correct(actor=clerks[0], reading=reading, value=140, reason="Đọc sai")
    draft = Invoice.objects.get(customer=taken)
    # 140 kWh: 99,200 + 102,500 + 40 × 2,380 = 296,900 + 23,752 = 320,652, without the round
    assert (draft.kwh, draft.total, draft.rebates.count()) == (140, 320_652, 0)
    assert list(RebateApplication.objects.values_list("invoice__customer", flat=True)) == [kept.pk]


def test_a_rebate_an_adjustment_gave_is_kept_by_the_next_adjustment_after_the_round_is_reversed(
    make_customer, read, clerks
):
    # given: a round of 10 % up to 300 kWh runs while the 350 kWh bill is a draft (outside it), then it is issued
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    programme = _programme("Giảm 10%", 10, max_kwh=300)
    billing.rebate_apply(actor=None, programme=programme)
    billing.invoices_issue(actor=None, period=OCT)
    invoice = Invoice.objects.get(customer=customer, kind="regular")
    assert invoice.total == 979_560  # 907,000 + VAT 72,560: outside the round
    # when: corrected to 250 kWh, the adjustment gets the round: 589,600 − 58,960 = 530,640, VAT 42,451 (42,451.2),
    # total 573,091: −406,469 (subtotal −376,360, VAT −30,109); the adjustment invoice records it
    first = _adjust(clerks, invoice, 250)
    assert (first.subtotal, first.vat, first.total) == (-376_360, -30_109, -406_469)
    assert list(first.rebates.values_list("programme_id", "percent", "base", "amount")) == [
        (programme.pk, Decimal("10.00"), 589_600, 58_960)
    ]
    # and the round is reversed (issued bills keep it), then the reading is corrected again to 240 kWh
    assert billing.rebate_reverse(actor=None, programme=programme)["kept_on_issued"] == 1
    second = _adjust(clerks, invoice, 240)
    # then: the bill keeps its reduction: 559,620 − 55,962 = 503,658, VAT 40,293 (40,292.64), total 543,951:
    # a credit of 29,140 (subtotal −26,982, VAT −2,158), not the rebate charged back (+31,299)
    assert (second.subtotal, second.vat, second.total) == (-26_982, -2_158, -29_140)
    assert not second.rebates.exists()  # already on the bill: nothing recorded again
    # and a correction out of the round's band drops it as for any rebate on the bill: 350 kWh is 979,560 again
    third = _adjust(clerks, invoice, 350)
    assert third.total == 979_560 - 543_951 == 435_609


def _adjust(clerks, invoice, kwh):
    proposer, approver = clerks
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, record="Biên bản", kwh=kwh)
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    return adjustment.invoice
