"""Disputes and re-inspections in unusual orderings (audit 'disputes').

Residential, October 2025 (table of 2025-05-10, VAT 8%): 350 kWh is 979,560 đ; 300 kWh is 798,660 đ.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from billing import services as billing
from billing.models import Dispute, Invoice, MeterReading, Reinspection
from crm.models import Role
from tests.billing.conftest import OCT
from tests.concurrency import in_thread
from tickets.services import ticket_open

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                       customer=customer).ticket  # fmt: skip


def test_a_dispute_before_its_bill_holds_the_run_s_bill_and_its_correction_releases_it_recomputed(
    make_customer, read, catalogue, clerk
):
    customer = make_customer()
    reading = read(customer, OCT, 350)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    assert (bill.status, bill.hold_kind) == ("held", "review")
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=reading.value - 50, evidence="Ảnh")  # fmt: skip
    bill.refresh_from_db()
    dispute.refresh_from_db()
    assert dispute.status == "resolved"
    assert (bill.status, bill.kwh, bill.total) == ("draft", 300, 798_660)


@on_postgres
def test_a_dispute_confirmed_on_site_while_the_run_makes_its_bill_does_not_leave_the_bill_held(
    transactional_db, make_customer, read, catalogue, clerk
):
    """The dispute was opened on the reading before the bill existed. A clerk runs October: the run sees the
    dispute open and makes the bill held for review. Meanwhile another clerk records the re-inspection, the
    reading confirmed on site: the dispute closes while the run's bill is not yet visible, so nothing is
    released; once the run commits, the bill stays held 'under review' with no dispute or re-inspection open.
    The confirmation should wait for the run (as a correction or a dispute opened does) and release its bill."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), reading=reading,
                                   claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)
        thread, outcome = in_thread(
            lambda: billing.reinspection_record(
                actor=clerk, item=item, outcome="confirmed", reread_value=reading.value, evidence="Ảnh"
            )
        )
        thread.join(1.5)
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert Dispute.objects.get(pk=dispute.pk).status == "resolved"
    bill = Invoice.objects.get(customer=customer, period=OCT)
    assert billing.review_reason(contract_id=bill.contract_id, period=OCT) == ""
    assert (bill.status, bill.hold_kind) == ("draft", "")


@pytest.fixture
def approver(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def test_the_approved_adjustment_of_a_disputed_bill_closes_its_dispute_even_when_the_form_left_it_out(
    make_customer, read, catalogue, clerk, approver
):
    """The bill is issued and disputed; the re-inspection corrects 350 → 300 and leaves the adjustment to the
    dispute's clerk. The clerk proposes it from the admin's form, whose "dispute" field is optional, without
    choosing the dispute; another clerk approves. The bill is corrected, yet the dispute stays open (the card
    still says "do not cut supply"), and the only action left closes it as "withdrawn by the customer", which
    is not what happened. The bill's approved adjustment should close the month's open dispute (README: "its
    adjustment is what closes the dispute")."""
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=300, evidence="Ảnh")  # fmt: skip
    assert Dispute.objects.get(pk=dispute.pk).status == "open"
    corrected = MeterReading.objects.current().get(contract__customer=customer, period=OCT)
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", reading=corrected)
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")


@on_postgres
def test_a_re_inspection_confirmed_while_another_clerk_withdraws_its_dispute_is_recorded(
    transactional_db, make_customer, read, catalogue, clerk, approver
):
    """One clerk closes the dispute as withdrawn by the customer; at the same moment another records the
    re-inspection's result (the reading confirmed on site). The withdrawal commits first: as when it comes a
    moment earlier, the re-inspection is recorded (a withdrawn dispute's re-inspection goes on) and the bill
    released. Instead the inspector's result is refused with "This dispute is already resolved." (the dispute
    read open before the withdrawal committed) and nothing of the site visit is kept."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    with transaction.atomic():
        billing.dispute_resolve(actor=approver, dispute=dispute, outcome="withdrawn")
        thread, outcome = in_thread(
            lambda: billing.reinspection_record(
                actor=clerk, item=item, outcome="confirmed", reread_value=reading.value, evidence="Ảnh"
            )
        )
        thread.join(1.5)
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    item.refresh_from_db()
    bill.refresh_from_db()
    assert (item.outcome, item.done_at is not None) == ("confirmed", True)
    assert (Dispute.objects.get(pk=dispute.pk).outcome, bill.status) == ("withdrawn", "draft")


def test_a_meter_fault_found_before_issue_leaves_a_way_to_close_the_dispute_other_than_withdrawn(
    make_customer, read, catalogue, clerk
):
    """The dispute holds the October draft; the re-inspection finds a meter fault (a meter test ticket opens,
    the dispute stays open). After the test a clerk corrects the reading (350 → 300) from the admin: the held
    bill is recomputed but stays held, the dispute stays open and the card keeps "do not cut supply". No path
    closes it: an adjustment is refused on a bill not issued, the re-inspection is already recorded, and the
    only action left is "Withdrawn by the customer", which records what did not happen. The correction of the
    disputed month before issue should close the dispute as corrected (as a correction on site does) and
    release the recomputed bill."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Công tơ chạy nhanh")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute),
                                outcome="meter_fault", evidence="Công tơ kẹt")  # fmt: skip
    billing.reading_correct(actor=clerk, reading=reading, value=reading.value - 50, reason="Kiểm định công tơ")
    dispute.refresh_from_db()
    bill.refresh_from_db()
    assert dispute.status == "resolved" and dispute.outcome != "withdrawn"
    assert (bill.status, bill.kwh, bill.total) == ("draft", 300, 798_660)


@on_postgres
def test_an_adjustment_approved_while_another_clerk_withdraws_its_dispute_is_approved(
    transactional_db, make_customer, read, catalogue, clerk, approver, make_staff, org
):
    """The disputed bill's adjustment (350 → 300 kWh, re-read on site) awaits approval; the customer withdraws
    and a third clerk closes the dispute as withdrawn while the approver approves. The withdrawal commits first:
    the approval should go through (as a moment later, the dispute closed already), not be refused with
    "This dispute is already resolved."."""
    third = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=300, evidence="Ảnh")  # fmt: skip
    corrected = MeterReading.objects.current().get(contract__customer=customer, period=OCT)
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, record="Biên bản", reading=corrected,
                                            dispute=dispute)  # fmt: skip
    with transaction.atomic():
        billing.dispute_resolve(actor=third, dispute=dispute, outcome="withdrawn")
        thread, outcome = in_thread(
            lambda: billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
        )
        thread.join(1.5)
    thread.join(30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    adjustment.refresh_from_db()
    assert adjustment.status == "approved"


def test_a_dispute_withdrawn_then_a_new_one_re_inspects_the_month_once(make_customer, read, catalogue, clerk):
    """The customer withdraws the dispute of the held October bill (its re-inspection goes on, README), then
    complains again: a second re-inspection item of the same reading opens beside the first. The new one
    recorded (reading confirmed on site) closes the new dispute, yet the bill stays held for the first item,
    and the unit is sent twice to read the same meter. The new dispute should take over the open
    re-inspection of its month (one re-inspection per contract and month, as the anomaly scan keeps it)."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    first = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                 claim="Chỉ số sai")  # fmt: skip
    billing.dispute_resolve(actor=clerk, dispute=first, outcome="withdrawn")
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                  claim="Chỉ số vẫn sai")  # fmt: skip
    assert Reinspection.objects.open().filter(reading__contract__customer=customer, reading__period=OCT).count() == 1
    item = Reinspection.objects.open().get(reading__contract__customer=customer, reading__period=OCT)
    billing.reinspection_record(actor=clerk, item=item, outcome="confirmed", reread_value=reading.value,
                                evidence="Ảnh")  # fmt: skip
    second.refresh_from_db()
    bill.refresh_from_db()
    assert (second.status, bill.status) == ("resolved", "draft")


def test_a_re_inspection_corrected_to_the_same_register_is_refused_and_changes_nothing(
    make_customer, read, catalogue, clerk
):
    """The inspector picks "Reading corrected" but types the register already billed (350, issued). It is
    accepted: the reading is superseded by an identical one (audit reading.correct), the dispute of the issued
    bill stays open waiting for an adjustment that every proposal refuses ("gives the same amount: nothing to
    adjust"), so it can only be closed as withdrawn. As a confirmed outcome with another register is refused on
    its field, a corrected one with the same register should be refused there, changing nothing."""
    customer = make_customer()
    reading = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT, kind="regular")
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=dispute)
    with pytest.raises(ValidationError) as refused:
        billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=reading.value,
                                    evidence="Ảnh")  # fmt: skip
    assert "reread_value" in refused.value.message_dict
    item.refresh_from_db()
    assert item.done_at is None
    assert MeterReading.objects.filter(contract__customer=customer, period=OCT).count() == 1


def test_a_dispute_of_a_bill_held_for_its_flagged_reading_confirmed_on_site_releases_it(
    make_customer, read, catalogue, clerk
):
    """November's register jumps (flagged): the run holds the bill for the flag. The customer disputes it; the
    re-inspection reads the same register on site (confirmed). README: a re-inspection recorded on site
    releases a bill held for its flagged reading, which it accepts. Here the dispute is closed, but the bill
    stays held for the flag and the reading stays flagged (the anomaly re-inspection's path releases it; the
    dispute's checks its own stale copy of the dispute, still "open", and releases nothing)."""
    from tests.billing.conftest import NOV

    customer = make_customer()
    read(customer, dt.date(2025, 9, 1), 100)
    read(customer, OCT, 200)
    jump = read(customer, NOV, 200 + 3000)
    assert jump.status == "flagged"
    billing.billing_run(actor=None, period=NOV)
    bill = Invoice.objects.get(customer=customer, period=NOV)
    assert (bill.status, bill.hold_kind) == ("held", "flagged")
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=bill,
                                   claim="Chỉ số tăng bất thường")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="confirmed",
                                reread_value=jump.value, evidence="Ảnh công tơ")  # fmt: skip
    dispute.refresh_from_db()
    bill.refresh_from_db()
    jump.refresh_from_db()
    assert dispute.status == "resolved"
    assert (jump.status, bill.status) == ("valid", "draft")
