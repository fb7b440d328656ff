"""Reads of the billing app: what the customer card shows."""

from __future__ import annotations

from django.utils.formats import number_format
from django.utils.translation import gettext as _

from billing.models import Dispute, Invoice

CARD_INVOICES = 6


class CardNotice(list):
    """A card row that is a warning rather than data: the card shows it above the section's table, in red.

    It is a one-cell row, so anything that only knows rows (the API's card) still shows the text.
    """

    def __init__(self, text: str):
        super().__init__([text])
        self.notice = text


def open_dispute_notice(*, customer, user) -> CardNotice | None:
    """The warning every role must see before acting on supply: the customer contests a bill or a reading."""
    if Dispute.objects.for_user(user).open().filter(customer=customer).exists():
        return CardNotice(_("Open billing dispute: do not cut supply"))
    return None


def card_invoices(*, customer, user) -> dict:
    """The customer's last invoices (within the user's scope), preceded by the open-dispute warning if any."""
    invoices = (
        Invoice.objects.for_user(user)
        .filter(customer=customer)
        .only("number", "kind", "period", "kwh", "total", "status")
        .order_by("-period", "-id")[:CARD_INVOICES]
    )
    rows: list[list] = [
        [
            i.number,
            i.period.strftime("%m/%Y"),
            number_format(i.kwh, force_grouping=True),
            number_format(i.total, force_grouping=True),
            i.get_status_display()
            if i.kind == "regular"
            else f"{i.get_status_display()} ({i.get_kind_display()})",
        ]
        for i in invoices
    ]
    notice = open_dispute_notice(customer=customer, user=user)
    if notice is not None:
        rows.insert(0, notice)
    return {
        "columns": [_("number"), _("period"), _("kWh"), _("total (VND)"), _("status")],
        "rows": rows,
        "actions": [],
    }
