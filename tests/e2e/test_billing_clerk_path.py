"""The billing clerks' path in a real browser (Playwright driving the system's Chromium, headless): clerk A
opens a dispute on an issued bill, records the re-inspection that corrects the reading and proposes the
adjustment, and cannot approve it; clerk B of the same unit finds it in their queue and approves it."""

from __future__ import annotations

import datetime as dt

import pytest

from billing import services as billing
from billing.models import Adjustment, Dispute, Invoice, MeterReading, Refund, Reinspection
from crm.models import Role
from customers.models import Contract
from tests.e2e.conftest import log_in, log_out, needs_chromium, with_password
from tickets.services import ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

OCT = dt.date(2025, 10, 1)
READ, REREAD = 250, 180  # the register as billed, and as read again on site


def pick(page, field: str, term: str, pk: int) -> None:
    """Fill a field the way a clerk does: type the record's number or code in its autocomplete, choose the
    record offered (no database id is ever typed)."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", term)
    page.locator(".select2-results__option", has_text=term).first.click()
    assert page.input_value(f"#id_{field}") == str(pk)


def run_action(page, url: str, pk: int, action: str) -> None:
    """Tick one row of a changelist and run one of its actions."""
    page.goto(url)
    page.check(f"#result_list input.action-select[value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_a_clerk_proposes_an_adjustment_after_a_dispute_and_another_clerk_approves_it(
    live_server, page, org, make_staff, make_customer, catalogue
):
    home = org["home"]
    clerk_a = with_password(make_staff(Role.BILLING_CLERK, [home], username="clerk-a"), "a-good-pass-a")
    clerk_b = with_password(make_staff(Role.BILLING_CLERK, [home], username="clerk-b"), "a-good-pass-b")
    customer = make_customer(home, name="Lê Thị Bích", phones=["0903 555 010"])
    billing.tariffs_load_reference()
    contract = Contract.objects.get(customer=customer)
    billing.reading_record(actor=None, contract=contract, period=OCT, value=READ, source="handheld")
    billing.billing_run(actor=None, period=OCT, unit=home)
    billing.invoices_issue(actor=None, period=OCT, unit=home)
    invoice = Invoice.objects.get(customer=customer, period=OCT)
    assert invoice.status == "issued"
    complaint = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn tháng 10 quá cao",
        customer=customer,
    ).ticket  # fmt: skip
    admin = f"{live_server.url}/admin"

    # Clerk A finds the bill by the contract's number and opens the dispute from its page: the bill and the
    # customer's complaint ticket are filled in.
    log_in(page, live_server, "clerk-a", "a-good-pass-a")
    page.goto(f"{admin}/billing/invoice/?q={contract.number}")
    page.click(f"#result_list a:has-text('{invoice.number}')")
    page.click("#open-dispute")
    page.wait_for_selector("#id_claim")
    assert (page.input_value("#id_invoice"), page.input_value("#id_ticket")) == (str(invoice.pk), str(complaint.pk))
    page.fill("#id_claim", "Nhà đi vắng nửa tháng, chỉ số không đúng")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    dispute = Dispute.objects.get()
    assert (
        dispute.invoice_id,
        dispute.customer_id,
        dispute.ticket_id,
        dispute.status,
        dispute.opened_by_id,
    ) == (
        invoice.pk,
        customer.pk,
        complaint.pk,
        "open",
        clerk_a.pk,
    )
    item = Reinspection.objects.get(dispute=dispute)
    assert (item.reading_id, item.done_at) == (invoice.reading_id, None)
    invoice.refresh_from_db()
    assert invoice.status == "issued"  # an issued bill is not held: it is corrected by an adjustment

    # The re-inspection found the register lower: the reading is corrected, the dispute stays open.
    run_action(page, f"{admin}/billing/reinspection/?queue=open", item.pk, "record_outcome")
    page.select_option("#id_outcome", "corrected")
    page.fill("#id_reread_value", str(REREAD))
    page.fill("#id_evidence", "Ảnh công tơ, niêm phong còn nguyên")
    page.click("#content-main input[type=submit]")
    page.wait_for_selector("ul.messagelist li.success")
    item.refresh_from_db()
    assert (item.outcome, item.reread_value, item.inspector_id) == ("corrected", REREAD, clerk_a.pk)
    corrected = MeterReading.objects.get(corrects=invoice.reading)
    assert (corrected.value, corrected.kwh, corrected.status) == (
        REREAD,
        invoice.kwh - (READ - REREAD),
        "valid",
    )
    dispute.refresh_from_db()
    assert dispute.status == "open"

    # Clerk A proposes the adjustment from the corrected reading.
    page.goto(f"{admin}/billing/adjustment/add/")
    pick(page, "original", invoice.number, invoice.pk)
    pick(page, "dispute", complaint.number, dispute.pk)
    pick(page, "corrected_reading", contract.number, corrected.pk)
    page.fill("#id_record", "Biên bản phúc tra: chỉ số thực tế thấp hơn")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    adjustment = Adjustment.objects.get()
    charge = billing.charge_for(
        category=contract.tariff_category, period=OCT, kwh=corrected.kwh, households=invoice.households
    )
    expected = charge.total - invoice.total
    assert expected != 0
    assert (adjustment.original_id, adjustment.dispute_id, adjustment.corrected_reading_id) == (
        invoice.pk,
        dispute.pk,
        corrected.pk,
    )
    assert (adjustment.status, adjustment.proposed_by_id, adjustment.kwh, adjustment.delta_total) == (
        "proposed",
        clerk_a.pk,
        corrected.kwh,
        expected,
    )

    # Four eyes: A's own approval is refused with a message and changes nothing.
    page.goto(f"{admin}/billing/adjustment/?queue=for_me")
    assert page.locator(f"#result_list input.action-select[value='{adjustment.pk}']").count() == 0
    run_action(page, f"{admin}/billing/adjustment/?queue=awaiting", adjustment.pk, "approve")
    error = page.wait_for_selector("ul.messagelist li.error")
    assert "another billing clerk" in error.inner_text()
    assert page.locator("ul.messagelist li.success").count() == 0
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decided_by_id, adjustment.invoice_id) == ("proposed", None, None)
    assert not Invoice.objects.filter(adjusts=invoice).exists()
    log_out(page)

    # Clerk B finds it awaiting their decision and approves it: the adjustment invoice is issued.
    log_in(page, live_server, "clerk-b", "a-good-pass-b")
    page.goto(f"{admin}/billing/adjustment/?queue=for_me")
    row = page.locator("#result_list tbody tr", has_text=invoice.number)
    assert row.count() == 1
    run_action(page, f"{admin}/billing/adjustment/?queue=for_me", adjustment.pk, "approve")
    success = page.wait_for_selector("ul.messagelist li.success")
    assert "1 adjustment(s) approved" in success.inner_text()
    assert page.locator("ul.messagelist li.error").count() == 0
    adjustment.refresh_from_db()
    assert (adjustment.status, adjustment.decided_by_id) == ("approved", clerk_b.pk)
    made = Invoice.objects.get(adjusts=invoice)
    assert adjustment.invoice_id == made.pk
    assert (made.kind, made.status, made.total, made.kwh) == (
        "adjustment",
        "issued",
        expected,
        corrected.kwh - invoice.kwh,
    )
    assert expected < 0  # the bill went down: the difference is owed back to the customer
    assert Refund.objects.get(adjustment=adjustment).amount == -expected
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("resolved", "corrected")
    # The original bill's page shows the adjustment invoice that now completes it.
    page.goto(f"{admin}/billing/invoice/{invoice.pk}/change/")
    assert made.number in page.inner_text("#content-main")
