"""A proposed adjustment's corrected consumption is held to the readings' rule: a consumption no meter reads
(``billing.services.MAX_KWH``, "more than any meter reads") is refused, whatever the database, instead of a
bill adjusted by hundreds of trillions of đồng."""

from __future__ import annotations

from billing.models import Adjustment, Invoice, InvoiceStatus
from billing.services import MAX_KWH
from crm.models import Role


def test_an_adjustment_of_more_kwh_than_any_meter_reads_is_refused(client, staff, two_customers):
    mine, _theirs = two_customers
    invoice = Invoice.objects.filter(customer=mine, status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PAID],
                                     adjusts__isnull=True).first()  # fmt: skip
    assert invoice is not None
    before = Adjustment.objects.count()
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(
        "/admin/billing/adjustment/add/",
        {"original": invoice.pk, "kwh": str(MAX_KWH * 50_000), "record": "Biên bản phúc tra"},
        HTTP_ACCEPT_LANGUAGE="vi",
    )
    assert Adjustment.objects.count() == before, [str(a) for a in Adjustment.objects.order_by("-pk")[:1]]
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
