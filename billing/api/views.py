"""Billing API: invoices (scoped lists with their lines), readings from the metering systems, disputes."""

from django.db.models import Prefetch
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
from crm.api.scoped import ScopedReadOnlyViewSet


class InvoiceFilter(filters.FilterSet):
    customer_code = filters.CharFilter(field_name="customer__code")

    class Meta:
        model = Invoice
        fields = ["period", "status", "kind", "unit", "customer_code"]


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
    filterset_fields = ["period", "status", "source", "unit"]

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
    filterset_fields = ["status", "unit"]

    @extend_schema(request=DisputeInSerializer, responses={201: DisputeSerializer})
    def create(self, request, *args, **kwargs):
        incoming = DisputeInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        dispute = services.dispute_open(actor=request.user, **incoming.validated_data)
        return Response(DisputeSerializer(dispute).data, status=http.HTTP_201_CREATED)
