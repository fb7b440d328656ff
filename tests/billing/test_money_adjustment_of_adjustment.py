"""An adjustment asked for on an adjustment invoice (money audit #3): refused on the ``original`` field, naming
the bill it adjusts; the admin's autocomplete of ``original`` offers the regular bills only."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing import services as billing
from billing.models import Adjustment, AuditRecord, Invoice
from crm.models import Role
from tests.billing.conftest import OCT


@pytest.fixture
def adjusted(org, make_staff, make_customer, read):
    """October's bill of a customer, issued and adjusted once (approved): the clerks, the bill, the adjustment
    invoice."""
    proposer, approver = (make_staff(Role.BILLING_CLERK, [org["home"]]) for _i in range(2))
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    bill = Invoice.objects.get(customer=customer, period=OCT)
    first = billing.adjustment_propose(actor=proposer, invoice=bill, kwh=300, record="Biên bản 1")
    billing.adjustment_decide(actor=approver, adjustment=first, approve=True)
    first.refresh_from_db()
    return proposer, bill, first.invoice


def test_an_adjustment_asked_on_an_adjustment_invoice_is_refused_naming_the_bill_it_adjusts(adjusted):
    proposer, bill, adjustment_invoice = adjusted
    assert adjustment_invoice.status in ("issued", "paid")
    audits = AuditRecord.objects.count()
    # The clerk picks the adjustment invoice (issued) to correct it again: refused, and the reason says which
    # bill to adjust — not that the invoice is "a draft" to recompute.
    with pytest.raises(ValidationError) as refused:
        billing.adjustment_propose(actor=proposer, invoice=adjustment_invoice, kwh=250, record="Biên bản 2")
    assert list(refused.value.message_dict) == ["original"]
    text = " ".join(refused.value.messages)
    assert "draft" not in text
    assert bill.number in text and adjustment_invoice.number in text
    assert Adjustment.objects.count() == 1
    assert AuditRecord.objects.count() == audits
    # On the bill itself the second adjustment is taken, from the account as adjusted (300 kWh → 250 kWh).
    second = billing.adjustment_propose(actor=proposer, invoice=bill, kwh=250, record="Biên bản 2")
    assert (second.original, second.kwh, second.status) == (bill, 250, "proposed")
    expected = billing.charge_for(category="residential", period=OCT, kwh=250).total - (
        billing.charge_for(category="residential", period=OCT, kwh=300).total
    )
    assert second.delta_total == expected


def test_the_admin_add_form_refuses_an_adjustment_invoice_beside_original(client, adjusted):
    proposer, bill, adjustment_invoice = adjusted
    client.force_login(proposer)
    response = client.post(
        reverse("admin:billing_adjustment_add"),
        {"original": adjustment_invoice.pk, "dispute": "", "corrected_reading": "", "kwh": "250", "record": "Sai"},
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert any(bill.number in e for e in form.errors.get("original", [])), form.errors
    assert Adjustment.objects.count() == 1


def test_the_original_autocomplete_offers_regular_bills_only(client, adjusted):
    proposer, bill, adjustment_invoice = adjusted
    client.force_login(proposer)
    source = {"app_label": "billing", "model_name": "adjustment", "field_name": "original"}

    def offered(term):
        found = client.get(reverse("admin:autocomplete"), {**source, "term": term})
        assert found.status_code == 200
        return [r["id"] for r in found.json()["results"]]

    # The customer's code finds both invoices elsewhere; here only the bill is offered.
    assert offered(bill.customer.code) == [str(bill.pk)]
    assert offered(adjustment_invoice.number) == []
    assert offered(bill.number) == [str(bill.pk)]
    # The invoices' own list still finds the adjustment invoice.
    listed = client.get(reverse("admin:billing_invoice_changelist"), {"q": bill.customer.code})
    assert {i.pk for i in listed.context["cl"].result_list} == {bill.pk, adjustment_invoice.pk}
