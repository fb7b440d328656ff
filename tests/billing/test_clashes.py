"""Two clerks at once get an answer, never a 500; numbering by the local year; invoice lines in order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import (
    Adjustment,
    BillingJob,
    Dispute,
    Invoice,
    InvoiceLine,
    MeterReading,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Refund,
    Reinspection,
)
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tests.concurrency import in_thread
from tickets.services import ticket_open

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


@on_postgres
def test_two_clerks_starting_the_same_billing_run_make_each_bill_once_without_an_error(
    transactional_db, make_customer, read
):
    for _ in range(3):
        read(make_customer(), OCT, 150)
    with transaction.atomic():
        assert billing.billing_run(actor=None, period=OCT).invoices == 3
        second, outcome = in_thread(lambda: billing.billing_run(actor=None, period=OCT))
        second.join(1.5)
        assert second.is_alive()  # waits for the first run
    second.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].invoices == 0
    assert Invoice.objects.count() == 3


def test_a_clash_on_a_bill_made_meanwhile_is_a_clear_refusal(make_customer, read, monkeypatch):
    read(make_customer(), OCT, 150)

    def clash(**kw):
        raise IntegrityError('duplicate key value violates unique constraint "billing_invoice_one_per_period"')

    monkeypatch.setattr(billing, "_billing_run", clash)
    with pytest.raises(ValidationError, match="Another billing run of 10/2025"):
        billing.billing_run(actor=None, period=OCT)


@pytest.fixture
def issued(make_customer, read, org, make_staff):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    clerks = [make_staff(Role.BILLING_CLERK, [org["home"]]) for _ in range(2)]
    return Invoice.objects.get(customer=customer), clerks


@on_postgres
def test_two_clerks_proposing_on_the_same_bill_at_once_the_second_is_told_one_is_pending(
    transactional_db, issued
):
    invoice, (first, second) = issued
    with transaction.atomic():
        billing.adjustment_propose(actor=first, invoice=invoice, kwh=150, record="Biên bản 1")
        other, outcome = in_thread(
            lambda: billing.adjustment_propose(actor=second, invoice=invoice, kwh=140, record="Biên bản 2")
        )
        other.join(1.5)
    other.join(30)
    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert outcome["error"].messages == ["An adjustment of this invoice is already awaiting approval."]
    assert Adjustment.objects.get().proposed_by == first


def test_the_adjustment_invoice_takes_the_local_year_at_half_past_midnight_on_new_years_day(
    issued, monkeypatch
):
    invoice, (proposer, approver) = issued
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=150, record="Biên bản")
    # 00:30 on 1 January 2026 in Hồ Chí Minh City is still 31 December 2025 in UTC.
    new_year = timezone.make_aware(dt.datetime(2026, 1, 1, 0, 30))
    assert new_year.astimezone(dt.UTC).year == 2025
    monkeypatch.setattr(timezone, "now", lambda: new_year.astimezone(dt.UTC))  # as Django gives it
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert adjustment.invoice.number == "HD2026-00000001"


def test_the_api_gives_an_invoices_lines_in_position_order(client, staff, make_customer, read):
    read(make_customer(), OCT, 350)  # one line a tier
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    lines = list(invoice.lines.order_by("position"))
    InvoiceLine.objects.filter(invoice=invoice).delete()
    for line in reversed(lines):  # stored last first
        line.pk = None
        line.save()
    client.force_login(staff[Role.BILLING_CLERK])
    with CaptureQueriesContext(connection) as queries:
        detail = client.get(f"/api/v1/invoices/{invoice.pk}/").json()
    # Asked in that order, not left to the plan the database happens to choose.
    (lines_query,) = [q["sql"] for q in queries if 'FROM "billing_invoiceline"' in q["sql"]]
    assert lines_query.endswith('ORDER BY "billing_invoiceline"."position" ASC')
    assert len(lines) > 2
    assert [line["position"] for line in detail["lines"]] == list(range(1, len(lines) + 1))
    assert [line["label"] for line in detail["lines"]] == [line.label for line in lines]


def test_the_admin_shows_a_clash_of_two_runs_on_the_jobs_page(
    client, staff, make_customer, read, monkeypatch, django_capture_on_commit_callbacks
):
    read(make_customer(), OCT, 150)

    def clash(**kw):
        raise IntegrityError('duplicate key value violates unique constraint "billing_invoice_one_per_period"')

    monkeypatch.setattr(billing, "_billing_run", clash)
    client.force_login(staff[Role.BILLING_CLERK])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""})
    job = BillingJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_billingjob_status", args=[job.pk])
    assert job.status == "failed"
    assert job.error.startswith("Another billing run of 10/2025 made some of these bills meanwhile")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "Another billing run of 10/2025 made some of these bills meanwhile" in page.content.decode()
    assert not Invoice.objects.exists()


def test_the_admin_tells_the_second_clerk_an_adjustment_is_pending(client, issued):
    invoice, (first, second) = issued
    billing.adjustment_propose(actor=first, invoice=invoice, kwh=150, record="Biên bản 1")
    client.force_login(second)
    response = client.post(
        reverse("admin:billing_adjustment_add"), {"original": invoice.pk, "kwh": 140, "record": "Biên bản 2"}
    )
    # The form comes back with what the clerk typed and the refusal on it; nothing was written.
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "An adjustment of this invoice is already awaiting approval." in form.non_field_errors()
    assert form["record"].value() == "Biên bản 2"
    assert Adjustment.objects.count() == 1


# A rebate round and a correction of one of its months: one waits for the other --------------------------


def _round_of_ten_percent(period):
    programme = RebateProgramme.objects.create(name="Giảm giá điện", legal_basis="NQ (test)", period_from=period,
                                               period_to=period)  # fmt: skip
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    return programme


def _is_the_charge_of(invoice, kwh, rebates=()):
    expected = billing.charge_for(category="residential", period=OCT, kwh=kwh, rebates=rebates)
    assert invoice.kwh == kwh
    assert (invoice.subtotal, invoice.vat, invoice.total) == (expected.subtotal, expected.vat, expected.total)
    assert sum(invoice.lines.values_list("amount", flat=True)) == invoice.subtotal


@on_postgres
def test_a_round_applied_during_a_correction_waits_and_reduces_the_corrected_bill(
    transactional_db, make_customer, read, org, make_staff
):
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _round_of_ten_percent(OCT)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    reading = MeterReading.objects.get(contract__customer=customer, period=OCT)
    with transaction.atomic():
        # A clerk corrects October to 150 kWh (the draft is recomputed) while the round is applied.
        billing.reading_correct(actor=clerk, reading=reading, value=150, reason="Đọc sai")
        thread, outcome = in_thread(lambda: billing.rebate_apply(actor=None, programme=programme))
        thread.join(1.5)
        assert thread.is_alive()  # the round waits for the correction
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    invoice = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    # 10 % of the corrected bill's own charge, and its application records the corrected base.
    _is_the_charge_of(invoice, 150, rebates=[Decimal("10")])
    application = invoice.rebates.get()
    assert application.base == billing.charge_for(category="residential", period=OCT, kwh=150).subtotal


@on_postgres
def test_a_correction_made_while_a_round_is_applied_waits_and_the_bill_keeps_the_round(
    transactional_db, make_customer, read, org, make_staff
):
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _round_of_ten_percent(OCT)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    reading = MeterReading.objects.get(contract__customer=customer, period=OCT)
    with transaction.atomic():
        billing.rebate_apply(actor=None, programme=programme)
        thread, outcome = in_thread(
            lambda: billing.reading_correct(actor=clerk, reading=reading, value=150, reason="Đọc sai")
        )
        thread.join(1.5)
        assert thread.is_alive()  # the correction waits for the round
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    invoice = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    # Recomputed after the round: the round is still on it, at 10 % of the corrected charge.
    _is_the_charge_of(invoice, 150, rebates=[Decimal("10")])


@on_postgres
def test_a_round_taken_back_during_a_correction_leaves_the_corrected_bill_unreduced(
    transactional_db, make_customer, read, org, make_staff
):
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _round_of_ten_percent(OCT)
    billing.rebate_apply(actor=None, programme=programme)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    reading = MeterReading.objects.get(contract__customer=customer, period=OCT)
    with transaction.atomic():
        billing.reading_correct(actor=clerk, reading=reading, value=150, reason="Đọc sai")
        thread, outcome = in_thread(lambda: billing.rebate_reverse(actor=None, programme=programme))
        thread.join(1.5)
        assert thread.is_alive()  # the reversal waits for the correction
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["reversed"] == 1
    invoice = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    _is_the_charge_of(invoice, 150)
    assert not invoice.rebates.exists()


# A credit approved while the bill it corrects is being paid: one waits for the other ------------------------


def _pay(clerk, invoice, amount, reference):
    return billing.payment_record(actor=clerk, invoice=invoice, amount=amount, paid_at=timezone.now(),
                                  source="counter", reference=reference)  # fmt: skip


@on_postgres
def test_a_credit_approved_while_the_whole_bill_is_paid_waits_and_is_paid_back(transactional_db, issued):
    from billing.models import Refund

    invoice, (proposer, approver) = issued  # 350 kWh: 979,560
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    with transaction.atomic():
        _pay(proposer, invoice, 979_560, "BL-1")
        thread, outcome = in_thread(
            lambda: billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
        )
        thread.join(1.5)
        assert thread.is_alive()  # the approval waits for the payment of the bill it corrects
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    invoice.refresh_from_db()
    refund = Refund.objects.get(adjustment=adjustment)
    # Paid in full before the credit: the whole credit was overpaid, and is paid back.
    assert (invoice.status, refund.amount, refund.method, billing.overpaid(invoice)) == (
        "paid", 180_900, "", 180_900,
    )  # fmt: skip


@on_postgres
def test_a_payment_of_the_uncorrected_amount_during_a_credits_approval_is_refused(transactional_db, issued):
    from billing.models import Payment

    invoice, (proposer, approver) = issued
    adjustment = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    with transaction.atomic():
        billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
        thread, outcome = in_thread(lambda: _pay(proposer, invoice, 979_560, "BL-2"))
        thread.join(1.5)
        assert thread.is_alive()  # the payment waits for the approval
    thread.join(30)
    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert outcome["error"].message_dict["amount"][0].endswith("(798.660 ₫).")
    assert not Payment.objects.exists()
    _pay(proposer, invoice, 798_660, "BL-3")
    invoice.refresh_from_db()
    assert invoice.status == "paid"


@on_postgres
def test_a_refund_paid_back_while_a_charge_of_the_same_bill_is_approved_waits_and_is_refused(
    transactional_db, issued
):
    from billing.models import Refund

    invoice, (proposer, approver) = issued  # 350 kWh: 979,560, paid in full
    _pay(proposer, invoice, 979_560, "BL-7")
    down = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=approver, adjustment=down, approve=True)  # −180,900: may be paid back
    refund = Refund.objects.get(adjustment=down)
    up = billing.adjustment_propose(actor=proposer, invoice=invoice, kwh=350, record="Biên bản 2")
    with transaction.atomic():
        billing.adjustment_decide(actor=approver, adjustment=up, approve=True)  # +180,900: the refund covers it
        thread, outcome = in_thread(
            lambda: billing.refund_settle(actor=proposer, refund=refund, method="refund", reference="UNC-7")
        )
        thread.join(1.5)
        assert thread.is_alive()  # the paying back waits for the approval on the same bill
    thread.join(30)
    assert isinstance(outcome.get("error"), ValidationError), outcome
    refund.refresh_from_db()
    up.refresh_from_db()
    assert (refund.method, refund.reference, up.invoice.status, billing.overpaid(invoice)) == (
        "offset", "", "paid", 0,
    )  # fmt: skip


# A dispute, a rebate round, an offset while another clerk issues or recomputes the bill -------------------


@on_postgres
@pytest.mark.parametrize("about", ["invoice", "reading"])
def test_a_dispute_opened_while_its_bill_is_issued_is_recorded_on_the_issued_bill(
    transactional_db, make_customer, read, catalogue, org, make_staff, about
):
    """The bill is a draft when the dispute form reads it; another clerk's issue commits while the dispute is
    opened. As if the issue came first: the dispute (and its re-inspection) is of the issued bill, never refused
    with "Only a draft invoice can be held."."""
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    draft = Invoice.objects.get(customer=customer, period=OCT)  # as the dispute form reads it: a draft
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                         customer=customer).ticket  # fmt: skip
    what = {"invoice": draft} if about == "invoice" else {"reading": draft.reading}
    with transaction.atomic():
        billing.invoice_issue(actor=None, invoice=draft)  # another clerk issues it from the list
        thread, outcome = in_thread(
            lambda: billing.dispute_open(actor=clerk, ticket=ticket, claim="Chỉ số sai", **what)
        )
        thread.join(1.5)
        assert thread.is_alive()  # the dispute waits for the bill's row to decide whether to hold it
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    dispute = Dispute.objects.get()
    assert (dispute.ticket, dispute.invoice_id if about == "invoice" else dispute.reading_id) == (
        ticket, draft.pk if about == "invoice" else draft.reading_id,
    )  # fmt: skip
    assert Reinspection.objects.filter(dispute=dispute).exists()
    assert Invoice.objects.values_list("status", "hold_reason").get(pk=draft.pk) == ("issued", "")


def _as_issued(invoice: Invoice) -> tuple:
    return (invoice.status, invoice.subtotal, invoice.vat, invoice.total,
            list(invoice.lines.order_by("position").values_list("label", "amount")))  # fmt: skip


@on_postgres
def test_a_round_applied_while_a_bill_is_issued_waits_and_leaves_the_issued_bill_as_issued(
    transactional_db, make_customer, read
):
    """A clerk issues a draft from the list (``invoice_issue``) while a round of its month is applied: the round
    waits for the issue (the period's lock), then leaves the issued bill out and reduces the others."""
    customer, other = make_customer(), make_customer()
    read(customer, OCT, 300)
    read(other, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _round_of_ten_percent(OCT)
    draft = Invoice.objects.get(customer=customer, period=OCT)
    with transaction.atomic():
        as_issued = _as_issued(billing.invoice_issue(actor=None, invoice=draft))
        thread, outcome = in_thread(lambda: billing.rebate_apply(actor=None, programme=programme))
        thread.join(1.5)
        assert thread.is_alive()  # the round waits for the issue
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    invoice = Invoice.objects.get(pk=draft.pk)
    assert as_issued[0] == "issued"
    assert _as_issued(invoice) == as_issued
    assert not RebateApplication.objects.filter(invoice=invoice).exists()
    _is_the_charge_of(Invoice.objects.get(customer=other, period=OCT), 300, rebates=[Decimal("10")])


@on_postgres
def test_a_round_taken_back_while_a_bill_is_issued_waits_and_the_issued_bill_keeps_it(
    transactional_db, make_customer, read
):
    customer = make_customer()
    read(customer, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    programme = _round_of_ten_percent(OCT)
    billing.rebate_apply(actor=None, programme=programme)
    draft = Invoice.objects.get(customer=customer, period=OCT)
    with transaction.atomic():
        as_issued = _as_issued(billing.invoice_issue(actor=None, invoice=draft))
        thread, outcome = in_thread(lambda: billing.rebate_reverse(actor=None, programme=programme))
        thread.join(1.5)
        assert thread.is_alive()  # the round waits for the issue
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    invoice = Invoice.objects.get(pk=draft.pk)
    # Issued with the round on it: it keeps it ("bills already issued keep it"), and is counted so.
    assert _as_issued(invoice) == as_issued
    assert RebateApplication.objects.filter(invoice=invoice, programme=programme).exists()
    assert outcome["result"] == {"reversed": 0, "kept_on_issued": 1}


@on_postgres
def test_offsetting_a_credit_while_the_next_bill_is_recomputed_waits_and_is_not_a_deadlock(
    transactional_db, make_customer, read, org, make_staff, monkeypatch
):
    """October is corrected twice (two credits R1, R2); R1 is offset on November. Clerk A corrects November's
    reading down (R1 is released: the new total no longer covers it) while clerk B offsets R2 on November. Both
    take November first (``refund_settle``'s lock order): B waits for A, then offsets R2 on the new total."""
    first, second = (make_staff(Role.BILLING_CLERK, [org["home"]]) for _ in range(2))
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    october = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    read(customer, NOV, 350 + 300)
    billing.billing_run(actor=None, period=NOV)
    november = Invoice.objects.get(customer=customer, period=NOV, kind="regular")  # the next bill, a draft
    for kwh in (300, 250):  # 350 -> 300 -> 250 kWh: two credits, each with its refund; October not paid yet
        adjustment = billing.adjustment_propose(actor=first, invoice=october, kwh=kwh, record=f"Biên bản {kwh}")
        billing.adjustment_decide(actor=second, adjustment=adjustment, approve=True)
    r1, r2 = Refund.objects.filter(adjustment__original=october).order_by("pk")
    billing.refund_settle(actor=first, refund=r1, method="offset", offset_invoice=november)
    november.refresh_from_db()
    assert november.amount_due >= r2.amount  # the second credit fits on November too

    original_release = billing._release_offsets
    started: dict = {}

    def release_while_the_other_clerk_offsets(invoice):
        if not started:  # the correction holds November; the other clerk offsets the second credit on it now
            started["thread"], started["outcome"] = in_thread(lambda: billing.refund_settle(
                actor=second, refund=r2, method="offset", offset_invoice=november
            ))  # fmt: skip
            started["thread"].join(1.5)
            started["waited"] = started["thread"].is_alive()
        return original_release(invoice)

    monkeypatch.setattr(billing, "_release_offsets", release_while_the_other_clerk_offsets)
    reading = MeterReading.objects.current().get(contract__customer=customer, period=NOV)
    # November corrected to 40 kWh: its total no longer covers the first credit, which is released
    corrected = billing.reading_correct(actor=first, reading=reading, value=350 + 40, reason="Đọc sai")
    started["thread"].join(30)
    assert not started["thread"].is_alive()
    assert started["waited"]  # the offset waited for the correction, which holds November
    outcome = started["outcome"]
    # Each gets an answer: the correction is made; the offset, made after it, is a clear refusal at most.
    november = Invoice.objects.get(pk=november.pk)
    assert november.kwh == 40 == corrected.kwh
    r1.refresh_from_db()
    r2.refresh_from_db()
    assert (r1.method, r1.offset_invoice_id) == ("", None)  # released by the correction
    if "error" in outcome:
        assert isinstance(outcome["error"], ValidationError), outcome["error"]
        assert (r2.method, november.refund_offset) == ("", 0)
    else:
        assert (r2.method, r2.offset_invoice_id, november.refund_offset) == ("offset", november.pk, r2.amount)
