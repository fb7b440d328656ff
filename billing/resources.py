"""Export columns of invoices and disputes: natural keys only (invoice number, contract number, customer
code, unit code, ticket number, a reading as its contract and period), never database ids. Export only:
invoices and disputes are made by the billing services. Wire them into an admin with
``core.exports.StreamingExportMixin`` (``export_resource_class = InvoiceResource``)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from import_export import fields, widgets

from billing.models import Dispute, Invoice
from core.exports import ScopedResource, natural_key_field


class InvoiceResource(ScopedResource):
    number = fields.Field(attribute="number", column_name="number", readonly=True)
    contract = natural_key_field(Invoice, "contract", "number")
    customer = natural_key_field(Invoice, "customer", "code")
    unit = natural_key_field(Invoice, "unit", "code")
    adjusts = natural_key_field(Invoice, "adjusts", "number")

    export_select_related = ("contract", "customer", "unit", "adjusts")

    class Meta:
        model = Invoice
        fields = (
            "number", "kind", "contract", "customer", "unit", "period", "period_start", "period_end", "kwh",
            "households", "subtotal", "vat", "total", "status", "hold_reason", "adjusts", "created_at",
            "issued_at", "paid_at",
        )  # fmt: skip


class DisputeResource(ScopedResource):
    ticket = natural_key_field(Dispute, "ticket", "number")
    customer = natural_key_field(Dispute, "customer", "code")
    unit = natural_key_field(Dispute, "unit", "code")
    invoice = natural_key_field(Dispute, "invoice", "number")
    # A reading has no number of its own: it is the reading of a contract for a period.
    reading_contract = fields.Field(
        attribute="reading__contract__number", column_name="reading_contract", readonly=True
    )
    reading_period = fields.Field(
        attribute="reading__period", column_name="reading_period", widget=widgets.DateWidget(), readonly=True
    )
    opened_by = natural_key_field(Dispute, "opened_by", "username")

    export_select_related = ("ticket", "customer", "unit", "invoice", "reading__contract", "opened_by")
    column_labels = {
        "reading_contract": gettext_lazy("contract of the reading"),
        "reading_period": gettext_lazy("period of the reading"),
    }

    class Meta:
        model = Dispute
        fields = (
            "ticket", "customer", "unit", "invoice", "reading_contract", "reading_period", "claim", "status",
            "outcome", "opened_at", "opened_by", "resolved_at",
        )  # fmt: skip
