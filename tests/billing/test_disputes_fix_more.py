"""Disputes and re-inspections: the other orderings of the fixed defects (audit 'disputes').

Residential, October 2025 (table of 2025-05-10, VAT 8%): 350 kWh is 979,560 đ; 300 kWh is 798,660 đ.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from billing import services as billing
from billing.models import Adjustment, AuditRecord, Dispute, Invoice, MeterReading, Reinspection
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tests.concurrency import in_thread
from tickets.services import ticket_open

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


@pytest.fixture
def approver(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                       customer=customer).ticket  # fmt: skip


def _issued_october(customer, read) -> Invoice:
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer, period=OCT, kind="regular")


# 1. A dispute closed while the run makes its bill --------------------------------------------------------


@on_postgres
def test_a_dispute_withdrawn_while_the_run_makes_its_bill_waits_for_the_run_and_releases_the_bill(
    transactional_db, make_customer, read, catalogue, clerk
):
    """The dispute of October's reading (no bill yet) found a meter fault (its re-inspection done, the dispute
    open). The customer withdraws while October's run makes the bill held for it: the withdrawal waits for the
    run and releases the run's bill."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Công tơ chạy nhanh")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="meter_fault",
                                evidence="Công tơ kẹt")  # fmt: skip
    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)
        thread, outcome = in_thread(lambda: billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn"))
        thread.join(1.5)
        assert thread.is_alive()  # waits for the run's period lock
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    bill = Invoice.objects.get(customer=customer, period=OCT)
    assert (Dispute.objects.get(pk=dispute.pk).outcome, bill.status, bill.hold_kind) == ("withdrawn", "draft", "")


# 2. A flagged reading's bill, disputed, corrected on site or from the admin -----------------------------------


def _flagged_november(customer, read):
    read(customer, dt.date(2025, 9, 1), 100)
    read(customer, OCT, 200)
    jump = read(customer, NOV, 3200)
    billing.billing_run(actor=None, period=NOV)
    bill = Invoice.objects.get(customer=customer, period=NOV)
    assert (jump.status, bill.status, bill.hold_kind) == ("flagged", "held", "flagged")
    return jump, bill


def test_a_disputed_flagged_bill_corrected_on_site_is_recomputed_and_released(make_customer, read, catalogue, clerk):
    customer = make_customer()
    _jump, bill = _flagged_november(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số tăng bất thường")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=300, evidence="Ảnh công tơ")  # fmt: skip
    dispute.refresh_from_db()
    bill.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    assert (bill.status, bill.hold_kind, bill.kwh) == ("draft", "", 100)


def test_a_disputed_flagged_bill_corrected_from_the_admin_is_released(make_customer, read, catalogue, clerk):
    """The dispute's re-inspection found a meter fault; after the test the clerk corrects the register: the
    dispute closes as corrected and the bill, recomputed onto a reading that is not flagged, goes back to draft."""
    customer = make_customer()
    jump, bill = _flagged_november(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Công tơ chạy nhanh")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="meter_fault",
                                evidence="Công tơ kẹt")  # fmt: skip
    billing.reading_correct(actor=clerk, reading=jump, value=300, reason="Kiểm định công tơ")
    dispute.refresh_from_db()
    bill.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    assert (bill.status, bill.hold_kind, bill.kwh) == ("draft", "", 100)


# 3. The bill's approved adjustment closes its open dispute -------------------------------------------------------


def test_an_adjustment_proposed_without_the_dispute_names_the_bill_s_open_dispute(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", kwh=300)
    assert adjustment.dispute_id == dispute.pk


def test_an_adjustment_proposed_before_the_dispute_opened_closes_it_when_approved(
    make_customer, read, catalogue, clerk, approver
):
    """The reading is corrected from the admin (the adjustment proposed, no dispute then); the customer then
    disputes the bill. The approved adjustment corrects the bill: it closes the dispute as corrected."""
    customer = make_customer()
    bill = _issued_october(customer, read)
    reading = MeterReading.objects.get(contract__customer=customer, period=OCT)
    billing.reading_correct(actor=clerk, reading=reading, value=300, reason="Nhập sai")
    adjustment = Adjustment.objects.get(original=bill, status="proposed")
    assert adjustment.dispute_id is None
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    assert Invoice.objects.get(adjusts=bill).total == 798_660 - 979_560


def test_an_adjustment_rejected_leaves_the_dispute_open(make_customer, read, catalogue, clerk, approver):
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", kwh=300)
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=False, note="Chưa có biên bản")
    assert Dispute.objects.get(pk=dispute.pk).status == "open"


# 4 and 5. A dispute closed by a clerk before the site's result or the approval -------------------------------


def test_a_re_inspection_recorded_after_the_withdrawal_is_recorded_and_releases_the_bill(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="confirmed",
                                reread_value=reading.value, evidence="Ảnh")  # fmt: skip
    bill.refresh_from_db()
    assert (Dispute.objects.get(pk=dispute.pk).outcome, bill.status) == ("withdrawn", "draft")


@on_postgres
def test_a_withdrawal_while_the_site_confirms_the_reading_is_refused_after_it_and_changes_nothing(
    transactional_db, make_customer, read, catalogue, clerk, approver
):
    """The other order of defect 4: the site's result commits first (the dispute closed as confirmed); the
    clerk's withdrawal, waiting for it, is refused and changes nothing."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    with transaction.atomic():
        billing.reinspection_record(actor=clerk, item=item, outcome="confirmed", reread_value=reading.value,
                                    evidence="Ảnh")  # fmt: skip
        thread, outcome = in_thread(
            lambda: billing.dispute_resolve(actor=approver, dispute=dispute, outcome="withdrawn")
        )
        thread.join(1.5)
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), ValidationError)
    bill.refresh_from_db()
    assert (Dispute.objects.get(pk=dispute.pk).outcome, bill.status) == ("confirmed", "draft")
    assert AuditRecord.objects.filter(action="dispute.resolve").count() == 1


def test_an_adjustment_approved_after_the_withdrawal_is_approved_and_the_dispute_stays_withdrawn(
    make_customer, read, catalogue, clerk, approver
):
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", kwh=300, dispute=dispute)
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert adjustment.status == "approved"
    assert Dispute.objects.get(pk=dispute.pk).outcome == "withdrawn"


def test_a_clerk_closing_a_dispute_twice_is_refused_and_changes_nothing(make_customer, read, catalogue, clerk):
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    with pytest.raises(ValidationError, match="already resolved"):
        billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="confirmed")
    assert Dispute.objects.get(pk=dispute.pk).outcome == "withdrawn"
    assert AuditRecord.objects.filter(action="dispute.resolve").count() == 1


# 6. A correction to the same register -----------------------------------------------------------------------------


def test_a_correction_to_the_same_register_from_the_admin_is_refused_and_changes_nothing(make_customer, read, clerk):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    with pytest.raises(ValidationError) as refused:
        billing.reading_correct(actor=clerk, reading=reading, value=350, reason="Nhập sai")
    assert "value" in refused.value.message_dict
    assert MeterReading.objects.filter(contract__customer=customer, period=OCT).count() == 1
    assert not AuditRecord.objects.filter(action="reading.correct").exists()


def test_a_re_inspection_corrected_to_another_register_after_the_same_one_was_refused_is_recorded(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    with pytest.raises(ValidationError, match="confirmed"):
        billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=350, evidence="Ảnh")
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=300, evidence="Ảnh")
    bill.refresh_from_db()
    assert (Dispute.objects.get(pk=dispute.pk).outcome, bill.status, bill.total) == ("corrected", "draft", 798_660)
    assert reading.pk != MeterReading.objects.current().get(contract__customer=customer, period=OCT).pk


# 7. A correction before issue closes the dispute, whenever the bill is made -------------------------------------


def test_a_correction_of_a_disputed_reading_before_its_bill_closes_the_dispute_and_the_run_bills_it_as_draft(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Công tơ chạy nhanh")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="meter_fault",
                                evidence="Công tơ kẹt")  # fmt: skip
    billing.reading_correct(actor=clerk, reading=reading, value=300, reason="Kiểm định công tơ")
    assert Dispute.objects.get(pk=dispute.pk).outcome == "corrected"
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    assert (bill.status, bill.total) == ("draft", 798_660)


def test_a_correction_of_an_issued_disputed_bill_leaves_the_dispute_to_its_adjustment(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Công tơ chạy nhanh")  # fmt: skip
    billing.reading_correct(actor=clerk, reading=bill.reading, value=300, reason="Kiểm định công tơ")
    assert Dispute.objects.get(pk=dispute.pk).status == "open"
    assert not Adjustment.objects.exists()


# 8. One re-inspection a month --------------------------------------------------------------------------------------


def test_a_withdrawn_dispute_s_re_inspection_recorded_before_the_new_dispute_opens_one_for_it(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    first = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                 claim="Chỉ số sai")  # fmt: skip
    billing.dispute_resolve(actor=clerk, dispute=first, outcome="withdrawn")
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=first), outcome="confirmed",
                                reread_value=reading.value, evidence="Ảnh")  # fmt: skip
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                  claim="Chỉ số vẫn sai")  # fmt: skip
    assert Reinspection.objects.count() == 2
    assert Reinspection.objects.open().get().dispute_id == second.pk


def test_the_taken_over_re_inspection_is_named_in_the_new_dispute_s_audit(make_customer, read, catalogue, clerk):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    first = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                 claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=first)
    billing.dispute_resolve(actor=clerk, dispute=first, outcome="withdrawn")
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                  claim="Chỉ số vẫn sai")  # fmt: skip
    item.refresh_from_db()
    assert item.dispute_id == second.pk
    record = AuditRecord.objects.get(action="dispute.open", object_id=second.pk)
    assert record.after["reinspection"] == item.pk
    bill.refresh_from_db()
    assert bill.status == "held"


@on_postgres
def test_a_withdrawal_while_the_adjustment_is_approved_waits_and_is_refused(
    transactional_db, make_customer, read, catalogue, clerk, approver, make_staff, org
):
    """The other order of defect 5: the approval commits first (the dispute closed as corrected); the clerk's
    withdrawal waits for it (the dispute's row, locked before the bill's on both sides: no deadlock) and is
    refused, nothing changed."""
    third = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    bill = _issued_october(customer, read)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=300, evidence="Ảnh")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", kwh=300)
    with transaction.atomic():
        billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
        thread, outcome = in_thread(
            lambda: billing.dispute_resolve(actor=third, dispute=dispute, outcome="withdrawn")
        )
        thread.join(1.5)
        assert thread.is_alive()
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), ValidationError)
    assert Dispute.objects.get(pk=dispute.pk).outcome == "corrected"
    assert AuditRecord.objects.filter(action="dispute.resolve").count() == 1
    assert Adjustment.objects.get(pk=adjustment.pk).status == "approved"
