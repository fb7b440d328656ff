"""The billing clerk's path through the admin, in Vietnamese: finding a bill by what the customer quotes,
from the card to the bill to a dispute, forms that ask for numbers and codes (never database ids), records
read by their codes, money written ``1.369.721 ₫``, a refused form that keeps what was typed, invoice lines
in the interface's language and a printable bill."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import AuditRecord, Dispute, Invoice, InvoiceLine, MeterReading
from billing.money import line_label, money
from crm.models import Role
from customers.models import Contract, MeterAssignment
from tests.billing.conftest import OCT
from tickets.services import ticket_open

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


def billing_ticket(customer, catalogue):
    return ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket


def bill(customer, read, value=250, issue=True) -> Invoice:
    read(customer, OCT, value)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    if issue:
        billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    return Invoice.objects.get(customer=customer, period=OCT)


# Money ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "shown"),
    [(1369721, "1.369.721 ₫"), (0, "0 ₫"), (999, "999 ₫"), (1000, "1.000 ₫"), (-45000, "-45.000 ₫"),
     (None, "")],
)  # fmt: skip
def test_money_is_written_the_vietnamese_way(amount, shown):
    assert money(amount) == shown


def test_the_invoice_list_and_page_show_money_as_dong(client, clerk, make_customer, read):
    invoice = bill(make_customer(), read)
    client.force_login(clerk)
    listed = client.get(reverse("admin:billing_invoice_changelist"), **VI).content.decode()
    assert money(invoice.total) in listed
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]), **VI).content.decode()
    for amount in (invoice.subtotal, invoice.vat, invoice.total):
        assert money(amount) in page
    line = invoice.lines.order_by("position").first()
    assert money(line.amount) in page


# Finding a bill ----------------------------------------------------------------------------------------------


def test_an_invoice_is_found_by_its_contract_number_or_its_meter_serial(client, clerk, make_customer, read):
    mine, other = make_customer(phones=["0903 400 001"]), make_customer(phones=["0903 400 002"])
    invoice, _other = bill(mine, read), bill(other, read, 300)
    contract = Contract.objects.get(customer=mine)
    serial = MeterAssignment.objects.get(contract=contract).meter.serial
    client.force_login(clerk)
    url = reverse("admin:billing_invoice_changelist")
    for term in (contract.number, serial, f"  {serial} ", invoice.number, mine.code):
        found = client.get(url, {"q": term}).context["cl"].result_list
        assert [i.pk for i in found] == [invoice.pk], term
    assert list(client.get(url, {"q": "KHONG-CO"}).context["cl"].result_list) == []


# From the card to the bill and to a dispute ------------------------------------------------------------------


def test_the_cards_invoice_numbers_link_to_the_invoice_and_it_offers_a_dispute(
    client, clerk, make_customer, read
):
    customer = make_customer()
    invoice = bill(customer, read)
    client.force_login(clerk)
    html = client.get(reverse("admin:customers_customer_card", args=[customer.pk]), **VI).content.decode()
    link = reverse("admin:billing_invoice_change", args=[invoice.pk])
    assert f'<a href="{link}">{invoice.number}</a>' in html
    assert money(invoice.total) in html
    dispute_url = reverse("admin:billing_dispute_add") + f"?customer={customer.code}"
    assert f'href="{dispute_url}"' in html and "Mở khiếu nại" in html


def test_an_agent_sees_the_numbers_without_a_link_nor_the_dispute_button(client, staff, make_customer, read):
    customer = make_customer()
    invoice = bill(customer, read)
    client.force_login(staff[Role.AGENT])
    html = client.get(reverse("admin:customers_customer_card", args=[customer.pk]), **VI).content.decode()
    assert invoice.number in html
    assert reverse("admin:billing_invoice_change", args=[invoice.pk]) not in html
    assert reverse("admin:billing_dispute_add") not in html


def test_a_dispute_opened_from_the_invoice_page_is_prefilled_and_saved(
    client, clerk, make_customer, read, catalogue
):
    customer = make_customer()
    invoice = bill(customer, read)
    ticket = billing_ticket(customer, catalogue)
    client.force_login(clerk)
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]), **VI).content.decode()
    url = reverse("admin:billing_dispute_add") + f"?invoice={invoice.number}"
    assert f'href="{url}"' in page and "Mở khiếu nại" in page
    form = client.get(url, **VI).context["adminform"].form
    assert (form.initial["invoice"], form.initial["ticket"]) == (invoice.pk, ticket.pk)
    response = client.post(url, {"ticket": ticket.pk, "invoice": invoice.pk, "reading": "", "claim": "Nhà vắng"})
    assert response.status_code == 302
    dispute = Dispute.objects.get()
    assert (dispute.invoice, dispute.ticket, dispute.customer, dispute.opened_by) == (
        invoice, ticket, customer, clerk
    )


def test_a_dispute_is_opened_from_the_ticket_page_and_from_the_card(client, clerk, make_customer, read, catalogue):
    customer = make_customer()
    invoice = bill(customer, read)
    ticket = billing_ticket(customer, catalogue)
    client.force_login(clerk)
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]), **VI).content.decode()
    url = reverse("admin:billing_dispute_add") + f"?ticket={ticket.number}"
    assert f'href="{url}"' in page and "Mở khiếu nại" in page
    form = client.get(url).context["adminform"].form
    assert (form.initial["ticket"], form.initial["invoice"]) == (ticket.pk, invoice.pk)
    form = client.get(reverse("admin:billing_dispute_add"), {"customer": customer.code}).context["adminform"].form
    assert (form.initial["ticket"], form.initial["invoice"]) == (ticket.pk, invoice.pk)


def test_an_outage_ticket_offers_no_dispute_and_another_units_records_are_not_prefilled(
    client, clerk, org, make_customer, read, catalogue
):
    customer = make_customer()
    outage = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer
    ).ticket
    client.force_login(clerk)
    page = client.get(reverse("admin:tickets_ticket_change", args=[outage.pk])).content.decode()
    assert 'id="open-dispute"' not in page and "?ticket=" not in page
    stranger = make_customer(org["other_corporation"], phones=["0903 400 009"])
    theirs = bill(stranger, read)
    form = client.get(reverse("admin:billing_dispute_add"), {"invoice": theirs.number}).context["adminform"].form
    assert form.initial == {}


# No database ids -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["admin:billing_dispute_add", "admin:billing_adjustment_add"])
def test_the_dispute_and_adjustment_forms_ask_for_numbers_not_ids(client, clerk, url_name):
    client.force_login(clerk)
    html = client.get(reverse(url_name)).content.decode()
    assert "vForeignKeyRawIdAdminWidget" not in html
    assert html.count("admin-autocomplete") >= 3


def test_the_autocomplete_finds_an_invoice_and_a_reading_by_number_within_the_clerks_units(
    client, clerk, org, make_customer, read
):
    mine = bill(make_customer(phones=["0903 400 011"]), read)
    theirs = bill(make_customer(org["other_corporation"], phones=["0903 400 012"]), read)
    client.force_login(clerk)

    def ask(field, term):
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": "billing", "model_name": "dispute", "field_name": field, "term": term},
        )
        assert response.status_code == 200
        return [(int(r["id"]), r["text"]) for r in response.json()["results"]]

    assert ask("invoice", mine.number) == [(mine.pk, mine.number)]
    assert ask("invoice", theirs.number) == []
    reading = MeterReading.objects.get(pk=mine.reading_id)
    assert ask("reading", mine.contract.number) == [(reading.pk, f"{mine.contract.number} 10/2025: 250")]


def test_records_read_by_their_codes_never_their_ids(make_customer, read, catalogue):
    customer = make_customer()
    invoice = bill(customer, read)
    ticket = billing_ticket(customer, catalogue)
    dispute = billing.dispute_open(actor=None, ticket=ticket, invoice=invoice, claim="Cao")
    text = str(dispute)
    assert ticket.number in text and customer.code in text
    assert f"#{dispute.pk}" not in text and not re.search(rf"\b{customer.pk}\b", text.replace(customer.code, ""))
    assert str(invoice.reading) == f"{invoice.contract.number} 10/2025: 250"
    reinspection = dispute.reinspections.get()
    assert invoice.contract.number in str(reinspection) and f"#{reinspection.pk}" not in str(reinspection)


# A refused form keeps what was typed -----------------------------------------------------------------------------


def test_a_refused_dispute_keeps_the_clerks_claim_with_the_reason_in_vietnamese(
    client, clerk, make_customer, read, catalogue
):
    mine, other = make_customer(phones=["0903 400 021"]), make_customer(phones=["0903 400 022"])
    invoice = bill(mine, read)
    ticket = billing_ticket(other, catalogue)  # another customer's ticket: the service refuses
    client.force_login(clerk)
    claim = "Khách nói tháng này đi vắng, chỉ số không thể cao như vậy"
    response = client.post(
        reverse("admin:billing_dispute_add"),
        {"ticket": ticket.pk, "invoice": invoice.pk, "reading": "", "claim": claim},
        **VI,
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form["claim"].value() == claim and str(form["invoice"].value()) == str(invoice.pk)
    assert form.errors["invoice"] == ["Hóa đơn không thuộc khách hàng của phiếu yêu cầu."]
    assert claim in response.content.decode()
    assert not Dispute.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == "issued"


# Invoice lines in the interface's language and the printable bill --------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "vietnamese"),
    [
        ("Tier 1 (0–50 kWh)", "Bậc 1 (0–50 kWh)"),
        ("Tier 6 (401+ kWh)", "Bậc 6 (từ 401 kWh)"),
        ("Tier 1 (all kWh)", "Bậc 1 (toàn bộ kWh)"),
        ("Flat", "Giá một mức"),
        ("Peak", "Giờ cao điểm"),
        ("Off-peak", "Giờ thấp điểm"),
        ("Normal", "Giờ bình thường"),
        ("Rebate #3: Hỗ trợ COVID đợt 5", "Giảm tiền điện: Hỗ trợ COVID đợt 5"),
        ("Adjustment of 2025-0000012", "Điều chỉnh hóa đơn 2025-0000012"),
        ("Giảm tiền điện: đã dịch", "Giảm tiền điện: đã dịch"),
    ],
)
def test_invoice_lines_are_labelled_in_the_interfaces_language(stored, vietnamese):
    from django.utils import translation

    with translation.override("vi"):
        assert line_label(stored) == vietnamese


def test_the_invoice_page_labels_its_lines_in_vietnamese(client, clerk, make_customer, read):
    invoice = bill(make_customer(), read, 250)
    client.force_login(clerk)
    html = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]), **VI).content.decode()
    labels = list(invoice.lines.order_by("position").values_list("label", flat=True))
    assert labels[0].startswith("Tier 1")
    assert "Bậc 1 (0–50 kWh)" in html and "Tier 1 (" not in html


def test_the_printable_invoice_has_its_lines_vat_by_rate_totals_and_the_customer(
    client, clerk, org, make_customer, read
):
    customer = make_customer()
    invoice = bill(customer, read, 250)
    client.force_login(clerk)
    response = client.get(reverse("admin:billing_invoice_print", args=[invoice.pk]), **VI)
    assert response.status_code == 200
    html = response.content.decode()
    # On paper only the bill: the page's own style sheet (a static file, under the CSP) hides the admin's frame.
    assert 'href="/static/billing/invoice_print.css"' in html and 'src="/static/billing/invoice_print.js"' in html
    assert "@media print" in (settings.BASE_DIR / "billing/static/billing/invoice_print.css").read_text()
    assert f"Hóa đơn tiền điện {invoice.number}" in html
    assert customer.code in html and customer.address in html
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position"))
    assert len(lines) > 1
    for line in lines:
        assert money(line.amount) in html
    rates = response.context["rates"]
    assert rates == [{"percent": 8, "base": invoice.subtotal, "vat": invoice.vat}]
    assert sum(line.amount for line in lines) == invoice.subtotal
    for amount in (invoice.subtotal, invoice.vat, invoice.total):
        assert money(amount) in html
    page = client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]), **VI).content.decode()
    assert reverse("admin:billing_invoice_print", args=[invoice.pk]) in page
    theirs = bill(make_customer(org["other_corporation"], phones=["0903 400 031"]), read)
    assert client.get(reverse("admin:billing_invoice_print", args=[theirs.pk])).status_code == 404


def test_a_refused_re_inspection_outcome_keeps_what_the_clerk_typed(client, clerk, make_customer, read):
    from tests.billing.conftest import NOV

    customer = make_customer()
    read(customer, OCT, 100)
    rise = read(customer, NOV, 500)
    billing.anomaly_scan(actor=None, period=NOV)
    item = rise.reinspections.get()
    client.force_login(clerk)
    evidence = "Ảnh công tơ, niêm phong còn nguyên"
    response = client.post(
        reverse("admin:billing_reinspection_changelist"),
        {"action": "record_outcome", "_selected_action": [item.pk], "_confirmed": "1", "outcome": "confirmed",
         "reread_value": str(rise.value - 80), "evidence": evidence},
        **VI,
    )  # fmt: skip
    assert response.status_code == 200  # the form again, not the list
    form = response.context["form"]
    assert (form["evidence"].value(), form["reread_value"].value()) == (evidence, str(rise.value - 80))
    assert form.errors["reread_value"] == ["Chỉ số phúc tra khác chỉ số đã ghi: kết quả phải là điều chỉnh chỉ số."]
    assert evidence in response.content.decode()
    item.refresh_from_db()
    assert item.done_at is None and item.outcome == ""


def test_a_corrected_register_below_the_previous_reading_is_refused_beside_it(client, clerk, make_customer, read):
    from tests.billing.conftest import NOV

    customer = make_customer()
    read(customer, OCT, 100)
    rise = read(customer, NOV, 500)
    billing.anomaly_scan(actor=None, period=NOV)
    item = rise.reinspections.get()
    client.force_login(clerk)
    response = client.post(
        reverse("admin:billing_reinspection_changelist"),
        {"action": "record_outcome", "_selected_action": [item.pk], "_confirmed": "1", "outcome": "corrected",
         "reread_value": "5", "evidence": "Ảnh công tơ"},
    )  # fmt: skip
    assert response.status_code == 200
    form = response.context["form"]
    assert list(form.errors) == ["reread_value"] and form["reread_value"].value() == "5"
    item.refresh_from_db()
    rise.refresh_from_db()
    assert (item.done_at, item.outcome, rise.value) == (None, "", 500)


def test_the_line_refund_and_rebate_pages_show_money_as_dong(
    client, clerk, make_customer, catalogue, make_staff
):
    from billing.models import RebateApplication, Refund
    from tests.conftest import _bill

    customer = make_customer()
    _bill([customer], {customer.pk: billing_ticket(customer, catalogue)}, make_staff)
    client.force_login(clerk)
    line = InvoiceLine.objects.filter(invoice__customer=customer).order_by("pk").first()
    page = client.get(reverse("admin:billing_invoiceline_change", args=[line.pk]), **VI).content.decode()
    assert money(line.amount) in page
    refund, rebate = Refund.objects.get(), RebateApplication.objects.get()
    for model, obj in (("refund", refund), ("rebateapplication", rebate)):
        page = client.get(reverse(f"admin:billing_{model}_change", args=[obj.pk]), **VI).content.decode()
        assert money(obj.amount) in page


def test_a_reading_import_reads_by_its_file_and_time_not_its_id(client, clerk, org):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from billing.imports import reading_import_create

    item = reading_import_create(
        actor=clerk, unit=org["home"],
        upload=SimpleUploadedFile("thang-10.csv", b"meter_serial,period,value\n", content_type="text/csv"),
    )  # fmt: skip
    assert str(item).startswith("thang-10") and f"#{item.pk}" not in str(item)
    client.force_login(clerk)
    page = client.get(reverse("admin:billing_readingimport_upload")).content.decode()
    assert f">{item}</a>" in page


def test_the_audit_list_names_each_record_by_its_number_or_code_never_its_id(client, clerk, make_customer, read):
    customer = make_customer()
    invoice = bill(customer, read, 250)
    reading = invoice.reading
    AuditRecord.objects.create(
        at=timezone.now(), actor=clerk, unit=customer.unit, action="reading.correct", object_type="meterreading",
        object_id=reading.pk, reason="Đọc lại",
    )  # fmt: skip
    AuditRecord.objects.create(
        at=timezone.now(), actor=clerk, unit=customer.unit, action="invoice.issue", object_type="invoice",
        object_id=invoice.pk,
    )  # fmt: skip
    client.force_login(clerk)
    page = client.get(reverse("admin:billing_auditrecord_changelist"), **VI)
    assert page.status_code == 200
    names = {(r.object_type, r.object_id): r.record_name for r in page.context["cl"].result_list}
    assert names["invoice", invoice.pk] == invoice.number
    assert names["meterreading", reading.pk] == f"{reading.contract.number} {reading.period:%m/%Y}: {reading.value}"
    html = page.content.decode()
    assert invoice.number in html and f"invoice {invoice.pk}" not in html
    assert "Bản ghi" in html  # the column's heading, in Vietnamese
