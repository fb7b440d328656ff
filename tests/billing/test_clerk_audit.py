"""The billing clerk's day in the admin: a dispute withdrawn after its re-inspection corrected the reading, what
is still owed on a credit adjustment invoice, the reason a bill is held for a flagged reading, the scan after a
rise corrected on site, and what a reading's correction tells the clerk it did."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from billing import services as billing
from billing.api.serializers import InvoiceSerializer
from billing.models import Adjustment, AuditRecord, Invoice, MeterReading, Reinspection
from billing.money import hold_reason_label, money
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tickets.services import ticket_open

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def second_clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def _shown(html: str, field: str) -> str:
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, field
    return match.group(1).strip()


# 1. A dispute closed other than by its adjustment after its month's reading was corrected.


def _disputed_and_corrected(customer, read, clerk, catalogue):
    """October 350 issued, November 450 in draft; October disputed and re-read 300 on site."""
    read(customer, OCT, 350)
    read(customer, NOV, 450)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    october = Invoice.objects.get(customer=customer, period=OCT)
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket
    dispute = billing.dispute_open(actor=clerk, ticket=ticket, invoice=october, claim="Chỉ số đọc sai")
    item = Reinspection.objects.get(dispute=dispute)
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=300, evidence="Ảnh")
    return october, dispute


def test_a_dispute_withdrawn_after_its_correction_still_gets_the_bill_adjusted(
    client, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    october, dispute = _disputed_and_corrected(customer, read, clerk, catalogue)
    november = Invoice.objects.get(customer=customer, period=NOV)
    assert november.kwh == 150  # re-based on the corrected register: 300 → 450
    assert not Adjustment.objects.exists()  # the dispute's clerk proposes it while the dispute is open
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_dispute_changelist"), {"action": "withdraw", "_selected_action": [dispute.pk]}
    )
    assert response.status_code == 302
    dispute.refresh_from_db()
    assert dispute.status == "resolved"
    october.refresh_from_db()
    assert (october.status, october.kwh) == ("issued", 350)  # issued: changed only by an adjustment
    adjustment = Adjustment.objects.get(original=october)
    corrected = MeterReading.objects.current().get(contract=october.contract_id, period=OCT)
    assert (adjustment.kwh, adjustment.status, adjustment.proposed_by) == (300, "proposed", clerk)
    assert adjustment.corrected_reading == corrected
    assert adjustment.delta_total == -180900  # 50 kWh over-read in October, credited back


def test_a_dispute_withdrawn_without_a_correction_changes_nothing(client, clerk, make_customer, read, catalogue):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    october = Invoice.objects.get(customer=customer, period=OCT)
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket
    dispute = billing.dispute_open(actor=clerk, ticket=ticket, invoice=october, claim="Chỉ số đọc sai")
    client.force_login(clerk)
    client.post(reverse("admin:billing_dispute_changelist"), {"action": "withdraw", "_selected_action": [dispute.pk]})
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "withdrawn")
    october.refresh_from_db()
    assert (october.status, october.kwh) == ("issued", 350)
    assert not Adjustment.objects.exists()
    assert not AuditRecord.objects.filter(action="adjustment.needed").exists()


def test_the_adjustment_proposed_on_withdrawal_is_approved_by_a_second_clerk(
    clerk, second_clerk, make_customer, read, catalogue
):
    customer = make_customer()
    october, dispute = _disputed_and_corrected(customer, read, clerk, catalogue)
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    adjustment = Adjustment.objects.get(original=october)
    with pytest.raises(ValidationError):  # the clerk who withdrew proposed it: another one approves
        billing.adjustment_decide(actor=clerk, adjustment=adjustment, approve=True)
    billing.adjustment_decide(actor=second_clerk, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.invoice.kwh, adjustment.invoice.total) == ("approved", -50, -180900)
    assert billing.corrected_due(october) == october.total - 180900  # October bills 300 kWh, November 150
    assert Invoice.objects.get(customer=customer, period=NOV, kind="regular").kwh == 150


def test_a_dispute_closed_by_its_adjustment_asks_for_no_other(clerk, second_clerk, make_customer, read, catalogue):
    customer = make_customer()
    october, dispute = _disputed_and_corrected(customer, read, clerk, catalogue)
    corrected = MeterReading.objects.current().get(contract=october.contract_id, period=OCT)
    proposed = billing.adjustment_propose(
        actor=clerk, invoice=october, reading=corrected, dispute=dispute, record="Biên bản phúc tra"
    )
    billing.adjustment_decide(actor=second_clerk, adjustment=proposed, approve=True)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    assert list(Adjustment.objects.values_list("pk", "status")) == [(proposed.pk, "approved")]
    assert not AuditRecord.objects.filter(action="adjustment.needed").exists()


def test_a_dispute_withdrawn_while_its_adjustment_awaits_approval_asks_for_no_other(
    clerk, second_clerk, make_customer, read, catalogue
):
    customer = make_customer()
    october, dispute = _disputed_and_corrected(customer, read, clerk, catalogue)
    corrected = MeterReading.objects.current().get(contract=october.contract_id, period=OCT)
    proposed = billing.adjustment_propose(
        actor=clerk, invoice=october, reading=corrected, dispute=dispute, record="Biên bản phúc tra"
    )
    billing.dispute_resolve(actor=second_clerk, dispute=dispute, outcome="withdrawn")
    assert list(Adjustment.objects.values_list("pk", "status", "kwh")) == [(proposed.pk, "proposed", 300)]
    assert not AuditRecord.objects.filter(action="adjustment.needed").exists()


def test_a_dispute_withdrawn_by_someone_who_may_not_propose_asks_for_the_adjustment(
    staff, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    october, dispute = _disputed_and_corrected(customer, read, clerk, catalogue)
    billing.dispute_resolve(actor=None, dispute=dispute, outcome="withdrawn")  # the system itself
    assert not Adjustment.objects.exists()
    needed = AuditRecord.objects.get(action="adjustment.needed", object_id=october.pk)
    assert needed.after["kwh"] == 300
    assert dispute.ticket.number in needed.reason


# 2. What is still owed on a credit adjustment invoice: 0, as the API says.


def _credit(customer, read, clerk, second_clerk) -> Invoice:
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    adjustment = billing.adjustment_propose(actor=clerk, invoice=bill, kwh=300, record="Biên bản phúc tra")
    billing.adjustment_decide(actor=second_clerk, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    return adjustment.invoice


def test_a_credit_adjustment_invoice_shows_nothing_still_owed_as_the_api_does(
    client, clerk, second_clerk, make_customer, read
):
    credit = _credit(make_customer(), read, clerk, second_clerk)
    assert credit.total == -180900  # 350 → 300 kWh, a credit of 180,900 đồng
    assert billing.payment_owed(credit) == 0  # one rule (``with_owed``) for the admin and the API
    assert InvoiceSerializer(credit).data["owed"] == 0
    assert InvoiceSerializer(billing.with_owed(Invoice.objects.filter(pk=credit.pk)).get()).data["owed"] == 0
    client.force_login(clerk)
    page = client.get(reverse("admin:billing_invoice_change", args=[credit.pk]), **VI)
    assert page.status_code == 200
    assert _shown(page.content.decode(), "owed_vnd") == money(0)
    pay = client.get(reverse("admin:billing_invoice_pay", args=[credit.pk]), **VI)
    owed = re.search(r'id="payment-owed">(.*?)<', pay.content.decode()).group(1)
    assert owed == money(0)


# 3. A bill held for a flagged reading says why in the interface's language.


def test_a_bill_held_for_a_flagged_reading_gives_its_reason_in_vietnamese(client, clerk, make_customer, read):
    customer = make_customer()
    with translation.override("vi"):  # the readings and the run of a Vietnamese installation
        read(customer, OCT, 100)
        jump = read(customer, NOV, 100 + 1500)  # fifteen times October: flagged as an implausible jump
        billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    assert jump.status == "flagged"
    bill = Invoice.objects.get(customer=customer, period=NOV)
    assert (bill.status, bill.hold_kind) == ("held", "flagged")
    assert bill.hold_reason == f"Reading flagged: {jump.flag_reason}"  # stored as the run words it
    client.force_login(clerk)
    html = client.get(reverse("admin:billing_invoice_change", args=[bill.pk]), **VI).content.decode()
    with translation.override("vi"):  # the prefix read back through the catalogue, the flag's text as stored
        expected = gettext("Reading flagged: %(r)s") % {"r": jump.flag_reason}
    assert _shown(html, "hold_reason_shown") == escape(expected)
    listed = client.get(reverse("admin:billing_invoice_changelist"), {"status": "held"}, **VI).content.decode()
    assert "Reading flagged" not in listed
    english = client.get(reverse("admin:billing_invoice_change", args=[bill.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert _shown(english.content.decode(), "hold_reason_shown") == escape(bill.hold_reason)


def test_other_hold_reasons_are_shown_as_stored():
    assert hold_reason_label("Held by a billing clerk") == "Held by a billing clerk"
    assert hold_reason_label("") == ""


# 4. A rise corrected on site is not re-inspected again by the next scan.


def test_a_rise_corrected_on_site_is_not_re_inspected_again_by_the_next_scan(clerk, make_customer, read):
    customer = make_customer()
    read(customer, OCT, 100)
    read(customer, NOV, 350)  # 250 kWh after 100: a rise of 150 %
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    first = billing.anomaly_scan(actor=clerk, period=NOV, unit=customer.unit)
    assert (first["reinspections"], first["held"]) == (1, 1)
    item = Reinspection.objects.get()
    billing.reinspection_record(actor=clerk, item=item, outcome="corrected", reread_value=300, evidence="Ảnh công tơ")
    bill = Invoice.objects.get(customer=customer, period=NOV)
    assert (bill.status, bill.kwh) == ("draft", 200)  # read again on site: 200 kWh, the bill goes on
    result = billing.anomaly_scan(actor=clerk, period=NOV, unit=customer.unit)
    assert (result["reinspections"], result["held"], result["compared"]) == (0, 0, 1)
    assert Reinspection.objects.count() == 1
    bill.refresh_from_db()
    assert bill.status == "draft"


def test_a_rise_corrected_from_the_admin_while_its_re_inspection_is_open_is_not_opened_twice(
    clerk, make_customer, read
):
    customer = make_customer()
    other = make_customer()
    read(customer, OCT, 100)
    reading = read(customer, NOV, 350)
    read(other, OCT, 100)
    read(other, NOV, 150)  # +50 %: below the threshold on the first scan
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    billing.anomaly_scan(actor=clerk, period=NOV, unit=customer.unit)
    item = Reinspection.objects.get()
    billing.reading_correct(actor=clerk, reading=reading, value=360, reason="Gõ nhầm")  # still a rise, item open
    other_reading = MeterReading.objects.get(contract__customer=other, period=NOV)
    billing.reading_correct(actor=clerk, reading=other_reading, value=400, reason="Gõ nhầm")  # now a rise: 300 kWh
    result = billing.anomaly_scan(actor=clerk, period=NOV, unit=customer.unit)
    assert result["reinspections"] == 1  # the other customer's rise only
    assert Reinspection.objects.exclude(pk=item.pk).get().reading.contract.customer == other


# 5. What a reading's correction tells the clerk it did to an issued bill.


def _issued(customer, read, value=350):
    reading = read(customer, OCT, value)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    return reading, Invoice.objects.get(customer=customer, period=OCT)


def _correct(client, user, reading, value):
    client.force_login(user)
    response = client.post(
        reverse("admin:billing_meterreading_correct", args=[reading.pk]), {"value": str(value), "reason": "Gõ nhầm"},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert response.status_code == 302
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    return MeterReading.objects.get(corrects=reading), message


@override_settings(LANGUAGE_CODE="en")
def test_a_correction_whose_adjustment_could_not_be_proposed_does_not_say_it_was(
    client, clerk, second_clerk, make_customer, read
):
    reading, bill = _issued(make_customer(), read)
    pending = billing.adjustment_propose(actor=second_clerk, invoice=bill, kwh=330, record="Biên bản")
    _new, message = _correct(client, clerk, reading, 300)
    assert list(Adjustment.objects.values_list("pk", "kwh")) == [(pending.pk, 330)]  # nothing proposed for 300
    assert "adjustment proposed" not in message and "goes through an adjustment" not in message
    assert f"the adjustment to 330 kWh ({money(pending.delta_total)}) already awaits approval" in message
    assert "Reject it and propose one for this reading" in message
    assert AuditRecord.objects.filter(action="adjustment.needed", object_id=bill.pk).exists()


@override_settings(LANGUAGE_CODE="en")
def test_a_correction_names_the_adjustment_it_proposed_with_its_amount(client, clerk, make_customer, read):
    reading, bill = _issued(make_customer(), read)
    new, message = _correct(client, clerk, reading, 300)
    proposed = Adjustment.objects.get(corrected_reading=new)
    assert (proposed.kwh, proposed.delta_total) == (300, -180900)
    assert f"Its bill {bill.number} was issued: adjustment proposed, {money(-180900)}, awaiting" in message


@override_settings(LANGUAGE_CODE="en")
def test_a_correction_of_a_disputed_month_says_the_disputes_clerk_proposes(
    client, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    reading, bill = _issued(customer, read)
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket
    billing.dispute_open(actor=clerk, ticket=ticket, invoice=bill, claim="Chỉ số đọc sai")
    _new, message = _correct(client, clerk, reading, 300)
    assert not Adjustment.objects.exists()
    assert f"is disputed (ticket {ticket.number}): no adjustment was proposed" in message


@override_settings(LANGUAGE_CODE="en")
def test_a_re_inspection_names_the_corrected_reading_and_what_became_of_the_bill(
    client, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    reading, bill = _issued(customer, read)
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket
    dispute = billing.dispute_open(actor=clerk, ticket=ticket, invoice=bill, claim="Chỉ số đọc sai")
    item = Reinspection.objects.get(dispute=dispute)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_reinspection_changelist"),
        {"action": "record_outcome", "_selected_action": [item.pk], "_confirmed": "1", "outcome": "corrected",
         "reread_value": "300", "evidence": "Ảnh"},
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    new = MeterReading.objects.get(corrects=reading)
    assert message.startswith(f"Re-inspection of {new} recorded.")
    assert str(reading) not in message
    assert f"is disputed (ticket {ticket.number})" in message


# The adjustment add form refuses a superseded reading as the corrected reading.


def test_the_adjustment_form_refuses_a_superseded_reading_beside_its_field(client, clerk, make_customer, read):
    reading, bill = _issued(make_customer(), read)
    new = billing.reading_correct(actor=None, reading=reading, value=300, reason="Gõ nhầm")  # asked for, not proposed
    assert not Adjustment.objects.exists()
    client.force_login(clerk)
    form = {"original": bill.pk, "dispute": "", "kwh": "", "record": "Biên bản"}
    refused = client.post(reverse("admin:billing_adjustment_add"), {**form, "corrected_reading": reading.pk}, **VI)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"corrected_reading"}
    with translation.override("vi"):
        assert errors["corrected_reading"] == [gettext("This reading was corrected since: choose the month's reading in force.")]
    assert not Adjustment.objects.exists()
    accepted = client.post(reverse("admin:billing_adjustment_add"), {**form, "corrected_reading": new.pk})
    assert accepted.status_code == 302
    adjustment = Adjustment.objects.get()
    assert (adjustment.corrected_reading, adjustment.kwh, adjustment.delta_total) == (new, 300, -180900)


# The dashboard's money charts write the sign the rest of the product writes.


def test_the_dashboards_money_charts_write_the_dong_sign():
    from billing import dashboard

    refunds = str(dashboard._refund_chart({"count": 2, "amount": 1234, "settled_amount": 1000}, title="Refunds"))
    rebates = str(dashboard._rebate_chart({"by_programme": [{"programme": "Giảm giá", "amount": 500}]}, title="R"))
    for chart in (refunds, rebates):
        assert " ₫</text>" in chart and " đ<" not in chart
