"""What follows a correction after issue: a second dispute of a bill already adjusted, a dispute opened on an
adjustment invoice, an anomaly re-inspection (or a withdrawn dispute's) correcting an issued bill's reading.

Residential, October 2025 (table of 2025-05-10, VAT 8%): 250 kWh is 589,600 + 47,168 = 636,768 đ; 200 kWh
is 439,700 + 35,176 = 474,876 đ; 100 kWh is 201,700 + 16,136 = 217,836 đ.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing import services as billing
from billing.models import Adjustment, AuditRecord, Dispute, Invoice, MeterReading, Refund, Reinspection
from crm.models import Role
from tests.billing.conftest import OCT
from tickets.services import ticket_open

SEP = dt.date(2025, 9, 1)


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


@pytest.fixture
def approver(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def _complaint(customer, catalogue):
    return ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                       customer=customer).ticket  # fmt: skip


def _issued(customer, read, kwh=350, period=OCT) -> Invoice:
    read(customer, period, kwh)
    billing.billing_run(actor=None, period=period)
    billing.invoices_issue(actor=None, period=period)
    return Invoice.objects.get(customer=customer, period=period, kind="regular")


def _current(customer) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=OCT)


def _adjusted_to_300(customer, invoice, catalogue, clerk, approver) -> Adjustment:
    """A first dispute of the 350 kWh bill, re-read 300 on site, adjusted and approved."""
    first = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                 claim="Sai chỉ số")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=first), outcome="corrected",
                                reread_value=300, evidence="Ảnh")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Biên bản 1",
                                            reading=_current(customer), dispute=first)  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    return adjustment


def _billed_kwh(invoice) -> int:
    """The bill's kWh with its adjustment invoices: what the customer is charged for in the end."""
    return invoice.kwh + sum(Invoice.objects.filter(adjusts=invoice).values_list("kwh", flat=True))


# A second dispute of a bill already corrected and adjusted -----------------------------------------------


def test_a_second_dispute_of_an_adjusted_bill_re_inspects_the_reading_in_force(
    make_customer, read, catalogue, clerk, approver
):
    # given: a 350 kWh bill issued, corrected to 300 and adjusted
    customer = make_customer()
    invoice = _issued(customer, read)
    _adjusted_to_300(customer, invoice, catalogue, clerk, approver)
    corrected = _current(customer)
    # when: the customer contests the bill again; on site the register reads 250
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                  claim="Vẫn sai")  # fmt: skip
    item = Reinspection.objects.get(dispute=second)
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=250, evidence="Ảnh 2")
    # then: the re-inspection was of the reading in force (300), now corrected to 250; the dispute waits for
    # the bill's adjustment, which closes it
    assert (second.reading_id, item.reading_id) == (corrected.pk, corrected.pk)
    assert (_current(customer).value, _current(customer).kwh) == (250, 250)
    second.refresh_from_db()
    assert second.status == "open"
    assert not Adjustment.objects.filter(original=invoice, status="proposed").exists()  # the dispute's clerk's
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Biên bản 2",
                                            reading=_current(customer), dispute=second)  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    second.refresh_from_db()
    assert (second.status, second.outcome) == ("resolved", "corrected")
    assert _billed_kwh(invoice) == 250


def test_a_second_dispute_confirmed_on_site_compares_with_the_reading_in_force(
    make_customer, read, catalogue, clerk, approver
):
    customer = make_customer()
    invoice = _issued(customer, read)
    _adjusted_to_300(customer, invoice, catalogue, clerk, approver)
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                  claim="Vẫn sai")  # fmt: skip
    # when: the register on site reads 300, the reading in force
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=second), outcome="confirmed",
                                reread_value=300, evidence="Ảnh 2")  # fmt: skip
    # then: confirmed, the dispute closed, nothing more to adjust
    second.refresh_from_db()
    assert (second.status, second.outcome) == ("resolved", "confirmed")
    assert _billed_kwh(invoice) == 300


# A dispute opened on an adjustment invoice ---------------------------------------------------------------


def test_a_dispute_of_an_adjustment_invoice_is_about_its_bill_and_closed_by_its_next_adjustment(
    make_customer, read, catalogue, clerk, approver
):
    # given: the 350 kWh bill adjusted to 300 by adjustment invoice A
    customer = make_customer()
    invoice = _issued(customer, read)
    adjustment = _adjusted_to_300(customer, invoice, catalogue, clerk, approver)
    corrected = _current(customer)
    # when: the customer contests the adjustment invoice itself
    second = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=adjustment.invoice,
                                  claim="Điều chỉnh vẫn sai")  # fmt: skip
    # then: the dispute is about the bill as adjusted, with the reading in force; the audit keeps what was named
    assert (second.invoice_id, second.reading_id) == (invoice.pk, corrected.pk)
    opened = AuditRecord.objects.get(action="dispute.open", object_id=second.pk)
    assert opened.after["contested"] == adjustment.invoice.number
    assert opened.after["invoice"] == invoice.pk
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=second), outcome="corrected",
                                reread_value=250, evidence="Ảnh 2")  # fmt: skip
    second.refresh_from_db()
    assert second.status == "open"  # waits for the adjustment, as a dispute of an issued bill does
    adjustment2 = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Biên bản 2",
                                             reading=_current(customer), dispute=second)  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment2, approve=True)
    second.refresh_from_db()
    assert (second.status, second.outcome) == ("resolved", "corrected")
    assert _billed_kwh(invoice) == 250


def test_a_dispute_of_an_adjustment_invoice_joins_the_open_dispute_of_its_bill(
    make_customer, read, catalogue, clerk, approver
):
    customer = make_customer()
    invoice = _issued(customer, read)
    adjustment = _adjusted_to_300(customer, invoice, catalogue, clerk, approver)
    first_open = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                      claim="Vẫn sai")  # fmt: skip
    before = (Dispute.objects.count(), Reinspection.objects.count(), AuditRecord.objects.count())
    # when: a second complaint names the adjustment invoice of the bill already disputed
    with pytest.raises(ValidationError) as refused:
        billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=adjustment.invoice,
                             claim="Điều chỉnh sai")  # fmt: skip
    # then: refused, naming the open dispute; nothing written
    assert refused.value.messages[0].startswith(
        f"A dispute about this bill is already open (ticket {first_open.ticket.number})"
    )
    assert (Dispute.objects.count(), Reinspection.objects.count(), AuditRecord.objects.count()) == before


def test_the_admin_and_the_api_show_the_bill_a_dispute_of_an_adjustment_invoice_is_about(
    client, make_customer, read, catalogue, clerk, approver
):
    customer = make_customer()
    invoice = _issued(customer, read)
    adjustment = _adjusted_to_300(customer, invoice, catalogue, clerk, approver)
    client.force_login(clerk)
    # the admin: the form names the adjustment invoice; the dispute is the bill's, and the clerk is told
    response = client.post(
        reverse("admin:billing_dispute_add"),
        {"ticket": _complaint(customer, catalogue).pk, "invoice": adjustment.invoice.pk, "reading": "",
         "claim": "Điều chỉnh sai"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    dispute = Dispute.objects.get(status="open")
    assert dispute.invoice_id == invoice.pk
    assert (
        f"Adjustment invoice {adjustment.invoice.number} adjusts bill {invoice.number}: the dispute is about "
        f"bill {invoice.number} as adjusted."
    ) in [str(m) for m in get_messages(response.wsgi_request)]
    listed = client.get(f"/api/v1/disputes/{dispute.pk}/").json()
    assert listed["invoice_number"] == invoice.number
    # the API: a dispute opened on the adjustment invoice answers with the bill it is about
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    opened = client.post("/api/v1/disputes/", {"ticket_number": _complaint(customer, catalogue).number,
                         "invoice_number": adjustment.invoice.number, "claim": "Điều chỉnh sai"},
                         content_type="application/json")  # fmt: skip
    assert opened.status_code == 201, opened.content
    assert (opened.json()["invoice_number"], opened.json()["reading"]) == (invoice.number, _current(customer).pk)


# An issued bill's reading corrected with no open dispute carrying it -------------------------------------


def _anomaly_issued(customer, read, clerk, org) -> tuple[Invoice, Reinspection]:
    """September 100 kWh, October 250 kWh (2.5×) billed and issued, then the scan of October run."""
    read(customer, SEP, 100)
    invoice = _issued(customer, read, kwh=350)
    billing.anomaly_scan(actor=clerk, period=OCT, unit=org["home"])
    return invoice, Reinspection.objects.get(reading__contract__customer=customer, reason="anomaly")


def test_an_anomaly_re_inspection_correcting_an_issued_bill_proposes_its_adjustment(
    make_customer, read, clerk, approver, org
):
    customer = make_customer()
    invoice, item = _anomaly_issued(customer, read, clerk, org)
    assert (invoice.status, invoice.kwh, invoice.total) == ("issued", 250, 636_768)
    # when: on site the register reads 200: October used 100 kWh, 150 kWh billed too many
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=200, evidence="Ảnh")
    # then: the bill stays as issued, and the clerk who recorded the re-inspection proposes its adjustment
    invoice.refresh_from_db()
    assert (invoice.status, invoice.kwh) == ("issued", 250)
    adjustment = Adjustment.objects.get(original=invoice)
    assert (adjustment.status, adjustment.proposed_by, adjustment.kwh, adjustment.dispute) == (
        "proposed", clerk, 100, None)
    assert adjustment.corrected_reading == _current(customer)
    assert (adjustment.delta_subtotal, adjustment.delta_vat, adjustment.delta_total) == (
        201_700 - 589_600, 16_136 - 47_168, 217_836 - 636_768)
    assert adjustment.record == f"Re-inspection #{item.pk}"
    # another clerk approves: the customer is owed 418,932 đ
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    assert Refund.objects.get(adjustment=adjustment).amount == 418_932
    assert _billed_kwh(invoice) == 100


def test_a_correction_that_cannot_be_proposed_now_asks_for_the_adjustment(
    make_customer, read, clerk, approver, org
):
    # given: an adjustment of the bill already awaits approval (a clerk's own correction record)
    customer = make_customer()
    invoice, item = _anomaly_issued(customer, read, clerk, org)
    pending = billing.adjustment_propose(actor=approver, invoice=invoice, record="Biên bản", kwh=240)
    # when: the anomaly's re-inspection corrects the reading
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=200, evidence="Ảnh")
    # then: no second proposal; the bill asks for its adjustment, with the reason
    assert list(Adjustment.objects.filter(original=invoice).values_list("pk", flat=True)) == [pending.pk]
    asked = AuditRecord.objects.get(action="adjustment.needed", object_id=invoice.pk)
    assert (asked.actor, asked.object_type, asked.after) == (
        clerk, "invoice", {"reading": _current(customer).pk, "kwh": 100})
    assert asked.reason == (
        f"Re-inspection #{item.pk}: An adjustment of this invoice is already awaiting approval."
    )


def test_a_correction_by_the_system_asks_for_the_adjustment(make_customer, read, clerk, org):
    customer = make_customer()
    invoice, item = _anomaly_issued(customer, read, clerk, org)
    billing.reinspection_record(actor=None, item=item, outcome="corrected", reread_value=200, evidence="Ảnh")
    assert not Adjustment.objects.exists()
    asked = AuditRecord.objects.get(action="adjustment.needed", object_id=invoice.pk)
    assert (asked.actor, asked.after, asked.reason) == (
        None, {"reading": _current(customer).pk, "kwh": 100}, f"Re-inspection #{item.pk}")


def test_a_withdrawn_disputes_re_inspection_correcting_the_issued_bill_proposes_its_adjustment(
    make_customer, read, catalogue, clerk
):
    # given: a dispute of an issued 250 kWh bill, withdrawn by the customer while its re-inspection is open
    customer = make_customer()
    invoice = _issued(customer, read, kwh=250)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                   claim="Sai chỉ số")  # fmt: skip
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    # when: the re-inspection still goes and reads 200
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="corrected",
                                reread_value=200, evidence="Ảnh")  # fmt: skip
    # then: the dispute stays withdrawn; the bill's adjustment (250 → 200 kWh) is proposed by the clerk
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "withdrawn")
    adjustment = Adjustment.objects.get(original=invoice)
    assert (adjustment.status, adjustment.proposed_by, adjustment.kwh, adjustment.dispute) == (
        "proposed", clerk, 200, None)
    assert adjustment.delta_total == 474_876 - 636_768


def test_an_anomaly_correction_of_a_disputed_bill_leaves_the_adjustment_to_the_dispute(
    make_customer, read, catalogue, clerk, approver, org
):
    # given: the customer disputes the issued October bill; the anomaly's re-inspection reads 200 first
    customer = make_customer()
    invoice, item = _anomaly_issued(customer, read, clerk, org)
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                   claim="Sai chỉ số")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=200, evidence="Ảnh")
    # then: nothing proposed nor asked for: the open dispute carries the bill
    assert not Adjustment.objects.exists()
    assert not AuditRecord.objects.filter(action="adjustment.needed").exists()
    # the dispute's own re-inspection confirms the corrected register (the reading in force), and its
    # adjustment closes it
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=dispute), outcome="confirmed",
                                reread_value=200, evidence="Ảnh 2")  # fmt: skip
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "confirmed")


# A dispute naming a bill and a reading: the reading is the bill's own month's -----------------------------


def _september_and_october_issued(customer, read) -> tuple[MeterReading, Invoice]:
    read(customer, SEP, 100)
    read(customer, OCT, 300)
    for period in (SEP, OCT):
        billing.billing_run(actor=None, period=period)
        billing.invoices_issue(actor=None, period=period)
    september = MeterReading.objects.get(contract__customer=customer, period=SEP)
    return september, Invoice.objects.get(customer=customer, period=OCT, kind="regular")


def _nothing_opened() -> tuple[int, int, int]:
    return Dispute.objects.count(), Reinspection.objects.count(), AuditRecord.objects.filter(
        action="dispute.open"
    ).count()


def test_a_dispute_of_a_bill_with_another_months_reading_is_refused_on_the_reading(
    make_customer, read, clerk, catalogue
):
    customer = make_customer()
    september_reading, october = _september_and_october_issued(customer, read)
    ticket = _complaint(customer, catalogue)
    # The October bill with September's reading: no adjustment of either bill could ever close such a dispute
    # (each refuses it as "not about this bill"), so it is refused on the reading's field and nothing is opened.
    with pytest.raises(ValidationError) as refused:
        billing.dispute_open(actor=clerk, ticket=ticket, claim="Chỉ số sai", invoice=october,
                             reading=september_reading)  # fmt: skip
    assert refused.value.message_dict == {
        "reading": ["The reading is not the one of this bill's contract and period."]
    }
    assert _nothing_opened() == (0, 0, 0)
    # The same bill with its own month's reading is opened, and its adjustment closes it.
    dispute = billing.dispute_open(actor=clerk, ticket=ticket, claim="Chỉ số sai", invoice=october,
                                   reading=MeterReading.objects.get(contract__customer=customer, period=OCT))  # fmt: skip
    assert (dispute.invoice_id, dispute.reading.period) == (october.pk, OCT)


def test_a_dispute_of_an_adjustment_invoice_with_another_months_reading_is_refused(
    make_customer, read, clerk, approver, catalogue
):
    # given: September 100 then October 400 (300 kWh) issued; October re-read 350 on site and adjusted
    customer = make_customer()
    read(customer, SEP, 100)
    billing.billing_run(actor=None, period=SEP)
    invoice = _issued(customer, read, kwh=400)
    first = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), invoice=invoice,
                                 claim="Sai chỉ số")  # fmt: skip
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(dispute=first), outcome="corrected",
                                reread_value=350, evidence="Ảnh")  # fmt: skip
    adjustment = billing.adjustment_propose(actor=clerk, invoice=invoice, record="Biên bản 1",
                                            reading=_current(customer), dispute=first)  # fmt: skip
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    before = _nothing_opened()
    # when: the adjustment invoice (about October as adjusted) is disputed with September's reading
    with pytest.raises(ValidationError) as refused:
        billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), claim="Sai",
                             invoice=adjustment.invoice,
                             reading=MeterReading.objects.get(contract__customer=customer, period=SEP))  # fmt: skip
    # then: refused on the reading, nothing opened; October's superseded reading is the bill's own month's
    assert list(refused.value.message_dict) == ["reading"]
    assert _nothing_opened() == before
    superseded = MeterReading.objects.filter(contract__customer=customer, period=OCT, status="superseded").first()
    dispute = billing.dispute_open(actor=clerk, ticket=_complaint(customer, catalogue), claim="Sai",
                                   invoice=adjustment.invoice, reading=superseded)  # fmt: skip
    assert (dispute.invoice_id, dispute.reading_id) == (invoice.pk, _current(customer).pk)


def test_the_admin_refuses_a_dispute_of_a_bill_with_another_months_reading_beside_the_reading(
    client, make_customer, read, clerk, catalogue
):
    customer = make_customer()
    september_reading, october = _september_and_october_issued(customer, read)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_dispute_add"),
        {"ticket": _complaint(customer, catalogue).pk, "invoice": october.pk, "reading": september_reading.pk,
         "claim": "Chỉ số sai"},
    )  # fmt: skip
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["reading"] == ["The reading is not the one of this bill's contract and period."]
    assert form["claim"].value() == "Chỉ số sai"
    assert _nothing_opened() == (0, 0, 0)
