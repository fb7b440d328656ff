"""Billing API: invoices (scoped lists with their lines) and their payments, readings from the metering systems,
disputes."""

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.mixins import CreateModelMixin
from rest_framework.response import Response

from billing import services
from billing.api.serializers import (
    DisputeInSerializer,
    DisputeSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    MonthField,
    PaymentInSerializer,
    PaymentSerializer,
    ReadingEstimateInSerializer,
    ReadingInSerializer,
    ReadingSerializer,
)
from billing.models import Dispute, Invoice, InvoiceLine, MeterReading, Payment
from core.api.filters import CodeFilter, scoped
from core.api.permissions import needs
from core.api.scoped import ScopedReadOnlyViewSet
from core.errors import renamed
from core.months import MONTH_INPUT_FORMATS
from crm.models import Unit
from customers.models import Customer


class MonthFormField(forms.DateField):
    """A billing month as the POSTs read it (``MonthField``: the same spellings, ``MONTH_INPUT_FORMATS``): a
    mid-month day is refused, not an empty list."""

    input_formats = MONTH_INPUT_FORMATS

    def clean(self, value):
        day = super().clean(value)
        if day is not None:
            try:
                MonthField().to_internal_value(day)
            except serializers.ValidationError as exc:
                raise ValidationError(exc.detail, code="invalid") from None
        return day


class MonthFilter(filters.DateFilter):
    field_class = MonthFormField


class InvoiceFilter(filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=gettext_lazy("unit"), help_text="A unit's code, e.g. PE0101.")
    customer_code = CodeFilter(field_name="customer", queryset=scoped(Customer), what=gettext_lazy("customer"),
                               help_text="A customer's code.")  # fmt: skip
    period = MonthFilter(help_text="A month: YYYY-MM, MM/YYYY or its first day, YYYY-MM-01.")

    class Meta:
        model = Invoice
        fields = ["period", "status", "kind", "unit", "customer_code"]


class ReadingFilter(filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=gettext_lazy("unit"), help_text="A unit's code, e.g. PE0101.")
    period = MonthFilter(help_text="A month: YYYY-MM, MM/YYYY or its first day, YYYY-MM-01.")

    class Meta:
        model = MeterReading
        fields = ["period", "status", "source", "unit"]


class DisputeFilter(filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=gettext_lazy("unit"), help_text="A unit's code, e.g. PE0101.")

    class Meta:
        model = Dispute
        fields = ["status", "unit"]


class InvoiceViewSet(ScopedReadOnlyViewSet):
    queryset = Invoice.objects.select_related("customer", "unit", "adjusts")
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter

    def get_serializer_class(self):
        return InvoiceDetailSerializer if self.action == "retrieve" else InvoiceSerializer

    def get_queryset(self):
        # What is still owed on each invoice (the ``owed`` field), in the same query.
        queryset = services.with_owed(super().get_queryset())
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")))
        return queryset

    @extend_schema(methods=["GET"], responses={200: PaymentSerializer(many=True)})
    @extend_schema(methods=["POST"], request=PaymentInSerializer,
                   responses={201: PaymentSerializer, 200: PaymentSerializer})  # fmt: skip
    @action(detail=True, methods=["get", "post"], url_path="payments", pagination_class=None,
            permission_classes=[needs("billing.view_invoice", "billing.view_payment")])  # fmt: skip
    def payments(self, request, pk=None):
        """The invoice's payments, in the order they were made; ``POST`` records one (201). The same
        ``source`` and ``reference`` again for this invoice and amount is a retry: 200 with the first payment,
        never a second; with another invoice or amount it is refused (400, on ``reference``)."""
        invoice = self.get_object()
        if request.method == "GET":
            rows = invoice.payments.select_related("invoice", "recorded_by").order_by("paid_at", "id")
            return Response(PaymentSerializer(rows, many=True).data)
        if not request.user.has_perm("billing.add_payment"):
            return Response({"detail": _("Not allowed to record payments.")}, status=http.HTTP_403_FORBIDDEN)
        incoming = PaymentInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        recorded = services.payment_record(actor=request.user, invoice=invoice, **incoming.validated_data)
        payment = Payment.objects.select_related("invoice", "recorded_by").get(pk=recorded.payment.pk)
        return Response(
            PaymentSerializer(payment).data, status=http.HTTP_201_CREATED if recorded.created else http.HTTP_200_OK
        )


class ReadingViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    """Readings of a period; ``POST`` takes one (validated against the previous, jumps flagged)."""

    queryset = MeterReading.objects.select_related("contract", "meter")
    serializer_class = ReadingSerializer
    filterset_class = ReadingFilter

    @extend_schema(request=ReadingInSerializer, responses={201: ReadingSerializer})
    def create(self, request, *args, **kwargs):
        incoming = ReadingInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        reading = services.reading_record(actor=request.user, **incoming.validated_data)
        return Response(ReadingSerializer(reading).data, status=http.HTTP_201_CREATED)

    @extend_schema(request=ReadingEstimateInSerializer, responses={201: ReadingSerializer})
    @action(detail=False, methods=["post"])
    def estimate(self, request):
        """``POST readings/estimate/``: a stopped meter's month estimated from its last three real cycles
        (``reading_estimate``); the next real reading trues it up."""
        if not request.user.has_perm("billing.add_meterreading"):
            return Response({"detail": _("Not allowed to record readings.")}, status=http.HTTP_403_FORBIDDEN)
        incoming = ReadingEstimateInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        reading = services.reading_estimate(actor=request.user, **incoming.validated_data)
        return Response(ReadingSerializer(reading).data, status=http.HTTP_201_CREATED)


class DisputeViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    """Billing disputes; ``POST`` opens one from a billing complaint ticket (the bill is held if not issued)."""

    queryset = Dispute.objects.select_related("customer", "ticket", "invoice")
    serializer_class = DisputeSerializer
    filterset_class = DisputeFilter

    @extend_schema(request=DisputeInSerializer, responses={201: DisputeSerializer})
    def create(self, request, *args, **kwargs):
        incoming = DisputeInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        try:
            dispute = services.dispute_open(actor=request.user, **incoming.validated_data)
        except ValidationError as exc:  # the service's refusals under the names this body gives
            raise renamed(exc, {"ticket": "ticket_number", "invoice": "invoice_number"}) from None
        return Response(DisputeSerializer(dispute).data, status=http.HTTP_201_CREATED)
