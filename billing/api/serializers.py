"""Billing API shapes: invoices with their lines, readings taken by the channels' systems, disputes, payments."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import services
from billing.models import (
    RECORDED_SOURCES,
    Dispute,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    MeterReading,
    Payment,
    PaymentSource,
    ReadingSource,
)
from billing.rules import LARGEST_REGISTER
from core.api.serializers import CachedFieldsMixin
from core.months import MONTH_INPUT_FORMATS
from core.numbers import WholeNumberSerializerField
from core.text import DESCRIPTION_MAX_CHARS, ComposedSerializerField
from customers.selectors import contract_numbered


class InvoiceLineSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["position", "label", "segment_start", "tier", "kwh", "price", "amount", "vat_percent"]


OWED_HELP = (
    "What may still be paid on the invoice (đồng), what POST .../payments/ accepts: for a bill, its amount due "
    "after the credits of its approved adjustments, less its payments; for a charging adjustment, its charge "
    "less its payments, unless the bill's credits cover it; 0 for a credit adjustment or when nothing is owed. "
    "null before issue."
)


class InvoiceSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    customer_code = serializers.CharField(source="customer.code")
    unit_code = serializers.CharField(source="unit.code")
    adjusts: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="number", read_only=True, allow_null=True
    )
    # The charge is subtotal + VAT = total; refunds offset on the bill come off it: the customer pays amount_due.
    amount_due = serializers.IntegerField(read_only=True)
    owed = serializers.SerializerMethodField(help_text=OWED_HELP)

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "kind", "customer_code", "unit_code", "period", "period_start", "period_end", "kwh",
            "households", "subtotal", "vat", "total", "refund_offset", "amount_due", "status", "hold_reason",
            "hold_kind", "adjusts", "issued_at", "paid_at", "owed",
        ]  # fmt: skip

    @extend_schema_field(serializers.IntegerField(allow_null=True, help_text=OWED_HELP))
    def get_owed(self, invoice: Invoice) -> int | None:
        if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            return None
        # Annotated by the invoice views (``services.with_owed``): no query per row.
        owed = getattr(invoice, "owed", None)
        return services.payment_owed(invoice) if owed is None else owed


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "lines"]


class MonthField(serializers.DateField):
    """A billing period written as the admin's month fields take it (``MONTH_INPUT_FORMATS``: ``2025-10``,
    ``10/2025``, ``2025-10-01``) and as a reading file writes it; a day other than the 1st is refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", list(MONTH_INPUT_FORMATS))
        super().__init__(**kwargs)
        self.error_messages["invalid"] = gettext_lazy(
            "A billing period is a month: YYYY-MM (e.g. 2025-10), MM/YYYY or YYYY-MM-01."
        )

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if day.day != 1:
            raise serializers.ValidationError(_("A billing period is the first day of a month (YYYY-MM-01)."))
        return day


class ReadingSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    contract_number = serializers.CharField(source="contract.number", read_only=True)
    meter_serial = serializers.CharField(source="meter.serial", read_only=True)

    class Meta:
        model = MeterReading
        fields = [
            "id", "contract_number", "meter_serial", "period", "value", "previous_value", "kwh", "source", "status",
            "flag_reason", "taken_at",
        ]  # fmt: skip


class ReadingEstimateInSerializer(serializers.Serializer):
    """A contract's month: the contract by its number (in the caller's units) and the month. As is, what
    ``POST readings/estimate/`` takes (a stopped meter's month to estimate)."""

    contract_number = serializers.CharField()
    period = MonthField()

    def validate(self, data):
        # The one lookup by number (``contract_numbered``): trimmed, any case, as the reading file reads it.
        try:
            data["contract"] = contract_numbered(
                user=self.context["request"].user, number=data.pop("contract_number")
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"contract_number": exc.messages}) from None
        return data


class ReadingInSerializer(ReadingEstimateInSerializer):
    """A reading a metering system posts: the contract's month and its register (a month in the future is
    refused by ``reading_record``, by the reading rules)."""

    # The most a meter reads (``billing.rules.register_refusal``, the meter moves' bound).
    value = WholeNumberSerializerField(min_value=0, max_value=LARGEST_REGISTER, error_messages={
        "max_value": gettext_lazy("A meter's register reads at most {max_value} kWh: check the digits."),
    })  # fmt: skip
    # A field named like Field.source: the serializer's metaclass takes declared fields off the class.
    # The sources a reading file's line may give (``RECORDED_SOURCES``): a metering system's own estimate too.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=[(str(s), ReadingSource(s).label) for s in RECORDED_SOURCES]
    )
    taken_at = serializers.DateTimeField(required=False)
    rolled_over = serializers.BooleanField(required=False, default=False)


class DisputeSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    customer_code = serializers.CharField(source="customer.code", read_only=True)
    ticket_number = serializers.CharField(
        source="ticket.number", read_only=True, default=None, allow_null=True
    )
    invoice_number = serializers.CharField(
        source="invoice.number", read_only=True, default=None, allow_null=True,
        help_text="The bill the dispute is about: one opened on an adjustment invoice is about the bill it adjusts.",
    )  # fmt: skip

    class Meta:
        model = Dispute
        fields = [
            "id", "customer_code", "ticket_number", "invoice_number", "reading", "claim", "status", "outcome",
            "opened_at", "resolved_at",
        ]  # fmt: skip


class DisputeInSerializer(serializers.Serializer):
    ticket_number = serializers.CharField()
    invoice_number = serializers.CharField()
    # Composed before the limit is counted, as every text body is (``core.text``).
    claim = ComposedSerializerField(max_length=DESCRIPTION_MAX_CHARS)

    def validate(self, data):
        from tickets.models import Ticket

        user = self.context["request"].user
        ticket = (
            Ticket.objects.for_user(user)
            .select_related("category", "customer")
            .filter(number=data.pop("ticket_number"))
            .first()
        )
        if ticket is None:
            raise serializers.ValidationError({"ticket_number": _("No such ticket in your units.")})
        invoice = (
            Invoice.objects.for_user(user)
            .filter(number=data.pop("invoice_number"))
            .select_related("reading")
            .first()
        )
        if invoice is None:
            raise serializers.ValidationError({"invoice_number": _("No such invoice in your units.")})
        data.update(ticket=ticket, invoice=invoice)
        return data


class PaymentSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    recorded_by = serializers.CharField(
        source="recorded_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Payment
        fields = [
            "id", "invoice_number", "amount", "paid_at", "source", "reference", "recorded_by", "created_at",
        ]  # fmt: skip


class PaymentInSerializer(serializers.Serializer):
    """A payment received against the invoice of the URL: the amount in whole đồng, when it was made, the
    channel and the channel's transaction reference (the same reference again is a retry)."""

    amount = WholeNumberSerializerField(min_value=1, max_value=10**15)
    paid_at = serializers.DateTimeField()
    # A field named like Field.source: the serializer's metaclass takes declared fields off the class.
    source = serializers.ChoiceField(choices=PaymentSource.choices)  # type: ignore[assignment]
    reference = serializers.CharField(max_length=100)
