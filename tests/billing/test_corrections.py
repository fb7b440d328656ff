"""Disputes, re-inspections, adjustment invoices (four eyes), refunds, rebate rounds and the anomaly bands."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from billing import services as billing
from billing.models import (
    Adjustment,
    AnomalyBandCount,
    Dispute,
    Invoice,
    InvoiceLine,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Refund,
    Reinspection,
)
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tickets.services import ticket_open


@pytest.fixture
def clerks(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]]), make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                       customer=customer).ticket  # fmt: skip


def _billed(make_customer, read, kwh, *, issue):
    customer = make_customer()
    read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    if issue:
        billing.invoices_issue(actor=None, period=OCT)
    return customer, Invoice.objects.get(customer=customer)


def test_a_dispute_before_issue_holds_the_bill_and_a_correction_recomputes_it(
    make_customer, read, catalogue, clerks
):
    customer, invoice = _billed(make_customer, read, 350, issue=False)
    dispute = billing.dispute_open(actor=clerks[0], ticket=_complaint(customer, catalogue), invoice=invoice,
                                   claim="Chỉ số sai: đồng hồ 150")  # fmt: skip
    invoice.refresh_from_db()
    assert invoice.status == "held"
    item = Reinspection.objects.get(dispute=dispute)
    with pytest.raises(ValidationError):
        billing.invoice_release(actor=clerks[0], invoice=invoice)  # the dispute is open
    billing.reinspection_record(actor=clerks[0], item=item, outcome="corrected", reread_value=150,
                                evidence="Ảnh chụp đồng hồ")  # fmt: skip
    invoice.refresh_from_db()
    dispute.refresh_from_db()
    # 150 kWh: 50×1984 + 50×2050 + 50×2380 = 320,700; VAT 8% 25,656.
    assert (invoice.kwh, invoice.subtotal, invoice.vat, invoice.total) == (150, 320_700, 25_656, 346_356)
    assert (invoice.status, dispute.status, dispute.outcome) == ("draft", "resolved", "corrected")
    assert invoice.reading.source == "reinspection" and invoice.reading.corrects.status == "superseded"
    assert invoice.lines.count() == 3


def test_after_issue_an_adjustment_invoice_is_proposed_and_approved_by_another_clerk(
    make_customer, read, catalogue, clerks
):
    proposer, approver = clerks
    customer, invoice = _billed(make_customer, read, 350, issue=True)
    dispute = billing.dispute_open(actor=proposer, ticket=_complaint(customer, catalogue), invoice=invoice,
                                   claim="Sai chỉ số")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    billing.reinspection_record(
        actor=proposer, item=item, outcome="corrected", reread_value=150, evidence="Ảnh"
    )
    dispute.refresh_from_db()
    assert dispute.status == "open"  # an issued bill waits for its adjustment
    corrected = invoice.reading.corrected_by
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, reading=corrected, dispute=dispute,
                                            record="Biên bản phúc tra số 12")  # fmt: skip
    # 350 kWh billed 907,000 + 72,560; 150 kWh is 320,700 + 25,656: the difference is -586,300 and -46,904.
    assert (adjustment.delta_subtotal, adjustment.delta_vat, adjustment.delta_total) == (
        -586_300,
        -46_904,
        -633_204,
    )
    with pytest.raises(ValidationError, match="another billing clerk"):
        billing.adjustment_decide(actor=proposer, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert adjustment.status == "proposed" and adjustment.invoice is None
    assert Invoice.objects.filter(kind="adjustment").count() == 0
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    credit = adjustment.invoice
    assert (credit.kind, credit.status, credit.adjusts_id, credit.total) == (
        "adjustment",
        "issued",
        invoice.pk,
        -633_204,
    )
    original = Invoice.objects.get(pk=invoice.pk)
    assert (original.total, original.status) == (979_560, "issued")  # the original is never edited
    refund = Refund.objects.get(adjustment=adjustment)
    assert refund.amount == 633_204 and refund.method == ""
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")


def test_the_database_refuses_the_proposer_as_approver(make_customer, read, clerks):
    proposer, _approver = clerks
    _customer, invoice = _billed(make_customer, read, 350, issue=True)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    with pytest.raises(IntegrityError), transaction.atomic():
        Adjustment.objects.filter(pk=adjustment.pk).update(
            decided_by=proposer, status="rejected", decided_at=adjustment.proposed_at
        )
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decided_by) == ("proposed", None)


def test_a_refund_is_settled_by_payment_or_as_an_offset_on_the_next_bill(make_customer, read, clerks):
    proposer, approver = clerks
    customer, invoice = _billed(make_customer, read, 350, issue=True)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    refund = Refund.objects.get()
    read(customer, NOV, 350 + 200)
    billing.billing_run(actor=None, period=NOV)
    nxt = Invoice.objects.get(period=NOV)
    before = (nxt.subtotal, nxt.vat, nxt.total)
    with pytest.raises(ValidationError):
        billing.refund_settle(actor=approver, refund=refund, method="refund")  # no payment reference
    billing.refund_settle(actor=approver, refund=refund, method="offset", offset_invoice=nxt)
    nxt.refresh_from_db()
    refund.refresh_from_db()
    # Taken against the amount due: the charge stays, no line is added.
    assert (nxt.subtotal, nxt.vat, nxt.total) == before and nxt.amount_due == before[2] - refund.amount
    assert refund.offset_invoice == nxt and refund.method == "offset" and nxt.refund_offset == refund.amount
    assert sum(nxt.lines.values_list("amount", flat=True)) == nxt.subtotal
    with pytest.raises(ValidationError, match="already settled"):
        billing.refund_settle(actor=approver, refund=refund, method="refund", reference="UNC-1")


def test_rebate_round_dry_run_apply_is_idempotent_and_reversible(make_customer, read, org):
    small, large, other = make_customer(), make_customer(), make_customer(customer_type="business")
    read(small, OCT, 150)
    read(large, OCT, 350)
    read(other, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = RebateProgramme.objects.create(
        name="Giảm tiền điện đợt 4", legal_basis="Nghị quyết 55/NQ-CP", customer_types=["residential"],
        period_from=OCT, period_to=OCT,
    )  # fmt: skip
    RebateBand.objects.create(programme=programme, from_kwh=0, to_kwh=200, percent=Decimal("15"))
    RebateBand.objects.create(programme=programme, from_kwh=200, to_kwh=None, percent=Decimal("10"))
    totals_before = dict(Invoice.objects.values_list("customer_id", "total"))
    dry = billing.rebate_dry_run(programme=programme)
    # 150 kWh: subtotal 320,700 × 15% = 48,105; 350 kWh: 907,000 × 10% = 90,700.
    assert (dry["invoices"], dry["amount"]) == (2, 48_105 + 90_700)
    assert (
        dict(Invoice.objects.values_list("customer_id", "total")) == totals_before
    )  # a dry run writes nothing
    applied = billing.rebate_apply(actor=None, programme=programme)
    assert (applied["invoices"], applied["amount"]) == (2, 138_805)
    inv = Invoice.objects.get(customer=small)
    # VAT on the reduction: 48,105 × 8% = 3,848.4 → 3,848.
    assert (inv.subtotal, inv.vat, inv.total) == (
        320_700 - 48_105,
        25_656 - 3_848,
        320_700 - 48_105 + 25_656 - 3_848,
    )
    assert inv.lines.order_by("-position").first().amount == -48_105
    again = billing.rebate_apply(actor=None, programme=programme)
    assert again["invoices"] == 0 and RebateApplication.objects.count() == 2
    assert Invoice.objects.get(customer=small).total == inv.total
    assert Invoice.objects.get(customer=other).total == totals_before[other.pk]  # business: not eligible
    reversed_ = billing.rebate_reverse(actor=None, programme=programme)
    assert reversed_ == {"reversed": 2, "kept_on_issued": 0}
    assert dict(Invoice.objects.values_list("customer_id", "total")) == totals_before
    assert RebateApplication.objects.count() == 0
    assert not InvoiceLine.objects.filter(label__startswith="Rebate").exists()


def test_anomaly_scan_counts_bands_opens_reinspections_and_holds_bills(make_customer, read, org):
    rises = {"flat": (100, 120), "r40": (100, 140), "r80": (100, 180), "r200": (100, 300), "r500": (100, 600)}
    customers = {}
    for name, (oct_kwh, nov_kwh) in rises.items():
        customers[name] = c = make_customer()
        read(c, OCT, oct_kwh)
        read(c, NOV, oct_kwh + nov_kwh)
    billing.billing_run(actor=None, period=NOV)
    already = Invoice.objects.filter(status="held").count()  # readings flagged as implausible jumps
    result = billing.anomaly_scan(actor=None, period=NOV)
    # Rises: 20% (<30), 40% (30–50), 80% (50–100), 200% (100–300), 500% (≥300); at 1.3× or more: the last 4.
    assert result["bands"] == {"below_30": 1, "from_30": 1, "from_50": 1, "from_100": 1, "from_300": 1}
    assert (result["compared"], result["reinspections"], result["held"]) == (5, 4, 4 - already)
    row = AnomalyBandCount.objects.get(period=NOV, unit=org["home"])
    assert (row.compared, row.below_30, row.from_30, row.from_50, row.from_100, row.from_300, row.held) == (
        5,
        1,
        1,
        1,
        1,
        1,
        4,
    )
    held = set(Invoice.objects.filter(status="held").values_list("customer_id", flat=True))
    assert held == {customers[n].pk for n in ("r40", "r80", "r200", "r500")}
    again = billing.anomaly_scan(actor=None, period=NOV)
    assert (again["reinspections"], again["held"]) == (0, 0) and Reinspection.objects.count() == 4
    # Confirmed on site: the bill is released.
    item = Reinspection.objects.get(reading__contract__customer=customers["r40"])
    billing.reinspection_record(actor=None, item=item, outcome="confirmed", reread_value=item.reading.value,
                                evidence="Khách dùng máy lạnh mới")  # fmt: skip
    assert Invoice.objects.get(customer=customers["r40"]).status == "draft"


def test_a_threshold_is_configurable(make_customer, read):
    c = make_customer()
    read(c, OCT, 100)
    read(c, NOV, 100 + 140)
    billing.billing_run(actor=None, period=NOV)
    assert billing.anomaly_scan(actor=None, period=NOV, threshold=Decimal("1.5"))["reinspections"] == 0
    assert billing.anomaly_scan(actor=None, period=NOV, threshold=Decimal("1.4"))["reinspections"] == 1


def test_a_dispute_needs_a_billing_complaint_of_the_same_customer(make_customer, read, catalogue):
    customer, invoice = _billed(make_customer, read, 100, issue=True)
    stranger = make_customer()
    with pytest.raises(ValidationError):
        billing.dispute_open(actor=None, ticket=_complaint(stranger, catalogue), invoice=invoice, claim="x")
    outage = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=customer).ticket  # fmt: skip
    with pytest.raises(ValidationError):
        billing.dispute_open(actor=None, ticket=outage, invoice=invoice, claim="x")
    assert Dispute.objects.count() == 0 and Reinspection.objects.count() == 0


def test_an_offset_stays_on_a_bill_recomputed_after_a_correction(make_customer, read, clerks):
    proposer, approver = clerks
    customer, invoice = _billed(make_customer, read, 350, issue=True)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    refund = Refund.objects.get()
    nov = read(customer, NOV, 350 + 200)
    billing.billing_run(actor=None, period=NOV)
    nxt = Invoice.objects.get(period=NOV)
    billing.refund_settle(actor=approver, refund=refund, method="offset", offset_invoice=nxt)
    billing.reading_correct(actor=approver, reading=nov, value=350 + 150, reason="Đọc sai")
    nxt.refresh_from_db()
    # 150 kWh: 320,700 + 25,656 VAT; the offset comes off the amount due.
    assert (nxt.total, nxt.refund_offset) == (320_700 + 25_656, refund.amount)
    assert nxt.amount_due == 320_700 + 25_656 - refund.amount
    assert sum(nxt.lines.values_list("amount", flat=True)) == nxt.subtotal


def test_two_programmes_of_the_same_name_reverse_one_at_a_time(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    original = (invoice.subtotal, invoice.total)
    programmes = []
    for pct in ("10", "5"):
        p = RebateProgramme.objects.create(name="Giảm giá", legal_basis="NQ", period_from=OCT, period_to=OCT)
        RebateBand.objects.create(programme=p, from_kwh=0, percent=Decimal(pct))
        billing.rebate_apply(actor=None, programme=p)
        programmes.append(p)
    billing.rebate_reverse(actor=None, programme=programmes[0])
    invoice.refresh_from_db()
    assert invoice.subtotal == original[0] - RebateApplication.objects.get(programme=programmes[1]).amount
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal


def test_whole_city_runs_need_a_whole_city_scope(make_customer, read, staff, org):
    read(make_customer(), OCT, 100)
    clerk = staff[Role.BILLING_CLERK]
    with pytest.raises(ValidationError, match="Choose one of your units"):
        billing.billing_run(actor=clerk, period=OCT)
    with pytest.raises(ValidationError, match="not one of yours"):
        billing.billing_run(actor=clerk, period=OCT, unit=org["other_corporation"])
    assert Invoice.objects.count() == 0
    assert billing.billing_run(actor=clerk, period=OCT, unit=org["home"]).invoices == 1
    assert billing.billing_run(actor=staff[Role.ADMINISTRATOR], period=OCT).invoices == 0


# The correction record and the refund's reference are typed text -----------------------------------------


def test_the_correction_record_is_stored_composed(make_customer, read, clerks):
    import unicodedata

    _customer, original = _billed(make_customer, read, 350, issue=True)
    typed = unicodedata.normalize("NFD", "  Biên bản phúc tra số 12 ")  # a keyboard that types accents apart
    adjustment = billing.adjustment_propose(actor=clerks[0], invoice=original, kwh=300, record=typed)
    adjustment.refresh_from_db()
    assert adjustment.record == "Biên bản phúc tra số 12"
    assert adjustment.record == unicodedata.normalize("NFC", typed).strip()


def test_a_correction_record_longer_than_its_limit_is_refused_with_its_length(make_customer, read, clerks):
    import unicodedata

    _customer, original = _billed(make_customer, read, 350, issue=True)
    with pytest.raises(ValidationError) as refused:
        billing.adjustment_propose(actor=clerks[0], invoice=original, kwh=300, record="x" * 9000)
    assert refused.value.message_dict == {"record": ["At most 4000 characters (this text has 9000)."]}
    # Decomposed, the same 2,000 letters are about 3,000 code points: counted once composed, they fit.
    letters = unicodedata.normalize("NFD", "ể" * 2000)
    assert len(letters) > 4000
    adjustment = billing.adjustment_propose(actor=clerks[0], invoice=original, kwh=300, record=letters)
    assert len(adjustment.record) == 2000
    assert Adjustment.objects.count() == 1


def _credited_and_paid(make_customer, read, clerks) -> Refund:
    """October 350 kWh issued (979,560) and paid, then corrected to 300 kWh: a refund of 180,900."""
    from django.utils import timezone

    proposer, approver = clerks
    _customer, original = _billed(make_customer, read, 350, issue=True)
    billing.payment_record(actor=proposer, invoice=original, amount=979_560, paid_at=timezone.now(),
                           source="counter", reference="BL-979560")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    return Refund.objects.get(adjustment=adjustment)


def test_the_refunds_reference_is_stored_composed_and_held_to_its_column(make_customer, read, clerks):
    import unicodedata

    refund = _credited_and_paid(make_customer, read, clerks)
    with pytest.raises(ValidationError) as refused:
        billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference="UNC-" + "9" * 97)
    assert refused.value.message_dict == {"reference": ["At most 100 characters (this text has 101)."]}
    refund.refresh_from_db()
    assert (refund.method, refund.reference, refund.settled_at) == ("", "", None)
    typed = unicodedata.normalize("NFD", " Ủy nhiệm chi 42 ")
    billing.refund_settle(actor=clerks[1], refund=refund, method="refund", reference=typed)
    refund.refresh_from_db()
    assert (refund.method, refund.reference) == ("refund", "Ủy nhiệm chi 42")


def test_the_admin_refuses_a_correction_record_longer_than_its_limit_beside_it(
    client, make_customer, read, clerks
):
    from django.urls import reverse

    _customer, original = _billed(make_customer, read, 350, issue=True)
    client.force_login(clerks[0])
    response = client.post(
        reverse("admin:billing_adjustment_add"), {"original": original.pk, "kwh": 300, "record": "x" * 4001}
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["record"]
    assert not Adjustment.objects.exists()
