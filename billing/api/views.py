"""Billing API: invoices (scoped lists with their lines), readings from the metering systems, disputes."""

from django.db.models import Prefetch
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import status as http
from rest_framework.mixins import CreateModelMixin
from rest_framework.response import Response

from billing import services
from billing.api.serializers import (
    DisputeInSerializer,
    DisputeSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    ReadingInSerializer,
    ReadingSerializer,
)
from billing.models import Dispute, Invoice, InvoiceLine, MeterReading
from core.api.filters import CodeFilter, scoped
from core.api.scoped import ScopedReadOnlyViewSet
from crm.models import Unit


class InvoiceFilter(filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=gettext_lazy("unit"), help_text="A unit's code, e.g. PE0101.")
    customer_code = filters.CharFilter(field_name="customer__code")

    class Meta:
        model = Invoice
        fields = ["period", "status", "kind", "unit", "customer_code"]


class ReadingFilter(filters.FilterSet):
    unit = CodeFilter(queryset=scoped(Unit), what=gettext_lazy("unit"), help_text="A unit's code, e.g. PE0101.")

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
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")))
        return queryset


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


class DisputeViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    """Billing disputes; ``POST`` opens one from a billing complaint ticket (the bill is held if not issued)."""

    queryset = Dispute.objects.select_related("customer", "ticket", "invoice")
    serializer_class = DisputeSerializer
    filterset_class = DisputeFilter

    @extend_schema(request=DisputeInSerializer, responses={201: DisputeSerializer})
    def create(self, request, *args, **kwargs):
        incoming = DisputeInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        dispute = services.dispute_open(actor=request.user, **incoming.validated_data)
        return Response(DisputeSerializer(dispute).data, status=http.HTTP_201_CREATED)
