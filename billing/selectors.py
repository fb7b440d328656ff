"""Reads of the billing app: what the customer card shows, and the price and VAT history bills are computed
from."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.translation import gettext as _

from billing import tariff
from billing.models import Dispute, Invoice, InvoiceKind, InvoiceStatus, PriceTable, VatRate
from billing.money import kwh, money

CARD_INVOICES = 6


class CardLink(str):
    """A card cell that links to a record's page (an invoice number): the card makes it a link, anything that
    only knows text (the API's card) gets the text."""

    url: str | None

    def __new__(cls, text: str, url: str | None):
        link = super().__new__(cls, text)
        link.url = url
        return link


class CardNotice(list):
    """A card row that is a warning rather than data: the card shows it above the section's table, in red.

    It is a one-cell row, so anything that only knows rows (the API's card) still shows the text.
    """

    def __init__(self, text: str):
        super().__init__([text])
        self.notice = text


def open_disputes(*, customer):
    """The customer's open disputes (a query, for ``Exists`` or ``.exists()``). Whoever sees the customer sees
    that a dispute is open, whichever unit handles it: the warning is there so that nobody cuts the supply of
    a customer who contests a bill; the dispute itself stays in its unit's scope."""
    return Dispute.objects.open().filter(customer=customer)


# The card's customer query computes whether the customer has an open dispute (``card_sections.provide``).
CARD_ANNOTATIONS = {
    "card_open_dispute": Exists(open_disputes(customer=OuterRef("pk"))),
}


def card_invoices(*, customer, user) -> dict:
    """The customer's last invoices (within the user's scope), preceded by the open-dispute warning if any:
    the warning every role must see before acting on supply (the customer contests a bill or a reading). One
    query: the warning comes with the card's customer (``CARD_ANNOTATIONS``), and is asked apart only for a
    customer read elsewhere."""
    invoices = list(
        Invoice.objects.for_user(user)
        .filter(customer_id=customer.pk)
        .only("number", "kind", "period", "kwh", "total", "refund_offset", "status")
        .order_by("-period", "-id")[:CARD_INVOICES]
    )
    can_open = user.has_perm("billing.view_invoice")
    rows: list[list] = [
        [
            CardLink(i.number, reverse("admin:billing_invoice_change", args=[i.pk]) if can_open else None),
            i.period.strftime("%m/%Y"),
            kwh(i.kwh),
            money(i.total),
            money(i.amount_due),
            # The choices' labels by their enums: ``get_status_display`` hashes every label (a translation each).
            str(InvoiceStatus(i.status).label)
            if i.kind == InvoiceKind.REGULAR
            else f"{InvoiceStatus(i.status).label} ({InvoiceKind(i.kind).label})",
        ]
        for i in invoices
    ]
    disputed = getattr(customer, "card_open_dispute", None)
    if disputed is None:
        disputed = open_disputes(customer=customer).exists()
    if disputed:
        rows.insert(0, CardNotice(_("Open billing dispute: do not cut supply")))
    actions = []
    if user.has_perm("billing.add_dispute"):
        url = reverse("admin:billing_dispute_add") + "?" + urlencode({"customer": customer.code})
        actions.append((_("Open a dispute"), url, "get"))
    return {
        # What the bill charged, and what the customer pays once refunds offset on it are taken off.
        "columns": [_("number"), _("period"), _("kWh"), _("total"), _("amount due"), _("status")],
        "rows": rows,
        "actions": actions,
    }


def tables_for(category: str) -> list[tariff.PriceTable]:
    """The dated price history of a tariff category, as the pure model of ``billing.tariff`` takes it."""
    tables = []
    for row in PriceTable.objects.filter(tariff_category=category).prefetch_related("steps"):
        steps = sorted(row.steps.all(), key=lambda s: s.position)
        tables.append(
            tariff.PriceTable(
                kind=row.kind,
                valid_from=row.valid_from,
                tiers=tuple(tariff.Tier(s.upper_kwh, s.price) for s in steps if not s.register),
                tou_prices=tuple((s.register, s.price) for s in steps if s.register),
            )
        )
    if not tables:
        raise ValidationError(_("No price table for the tariff category %(c)s.") % {"c": category})
    return tables


def vat_rates() -> list[tariff.VatRate]:
    """The dated VAT history, as the pure model of ``billing.tariff`` takes it."""
    rates = [tariff.VatRate(valid_from=r.valid_from, percent=r.percent) for r in VatRate.objects.all()]
    if not rates:
        raise ValidationError(_("No VAT rate is loaded."))
    return rates
