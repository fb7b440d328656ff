"""Customers API: list and detail (scoped), the caller lookup, the customer card, and the metering system's
installs and removals of meters (by serial and contract number)."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api.permissions import needs
from core.api.scoped import ScopedReadOnlyViewSet
from customers import selectors, services
from customers.api import filters, serializers
from customers.models import METER_SERIAL_VALIDATOR, Contract, Customer, Meter


class CustomerViewSet(ScopedReadOnlyViewSet):
    queryset = Customer.objects.select_related("unit")
    serializer_class = serializers.CustomerSerializer
    filterset_class = filters.CustomerFilter

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                required=True,
                description="Phone (any spelling), customer code, meter serial, or words of a name or address.",
            ),
            OpenApiParameter("limit", OpenApiTypes.INT, required=False, description="At most 200."),
        ],
        responses={200: serializers.LookupResponseSerializer},
        filters=False,
    )
    @action(detail=False, methods=["get"], url_path="lookup", pagination_class=None, filter_backends=[])
    def lookup(self, request):
        """Find the caller: exact code/phone/serial first, then names with the accents as typed, then the rest."""
        limit = request.query_params.get("limit") or settings.TONGDAI_LOOKUP_LIMIT
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise ValidationError({"limit": _("limit must be a whole number.")}) from None
        if not 1 <= limit <= 200:
            raise ValidationError({"limit": _("limit must be between 1 and 200.")})
        try:
            found = selectors.lookup_customers(
                user=request.user, query=request.query_params.get("q", ""), limit=limit
            )
        except selectors.InvalidQuery as exc:
            raise ValidationError({"q": str(exc)}) from None
        payload = {
            "query": found.query,
            "count": len(found.customers),
            "truncated": found.truncated,
            "results": found.customers,
        }
        return Response(serializers.LookupResponseSerializer(payload).data)

    @extend_schema(responses={200: serializers.CustomerCardSerializer})
    @action(detail=True, methods=["get"], url_path="card", filter_backends=[])
    def card(self, request, pk=None):
        """Everything an agent sees on the customer card."""
        try:
            customer_id = int(pk)
        except (TypeError, ValueError):
            raise Http404 from None
        card = selectors.customer_card(user=request.user, customer_id=customer_id)
        if card is None:
            raise Http404
        return Response(serializers.CustomerCardSerializer(card, context={"request": request}).data)


class ContractViewSet(ScopedReadOnlyViewSet):
    queryset = Contract.objects.select_related("customer")
    serializer_class = serializers.ContractSerializer
    filterset_class = filters.ContractFilter


SERIAL_PATH = r"(?P<serial>[^/]+)"


class MeterViewSet(ScopedReadOnlyViewSet):
    queryset = Meter.objects.select_related("unit")
    serializer_class = serializers.MeterSerializer
    filterset_class = filters.MeterFilter

    def _meter_by_serial(self, serial: str) -> Meter:
        """The meter of the caller's units with this serial (any case): 400 for a serial no meter can have,
        404 for one not in the caller's units."""
        serial = serial.strip().upper()
        try:
            METER_SERIAL_VALIDATOR(serial)
        except DjangoValidationError as exc:
            raise ValidationError({"serial": exc.messages}) from None
        meter = Meter.objects.for_user(self.request.user).filter(serial=serial).first()
        if meter is None:
            raise Http404
        return meter

    @extend_schema(
        request=serializers.MeterInstallInSerializer, responses={201: serializers.MeterMoveSerializer}
    )
    @action(
        detail=False, methods=["post"], url_path=f"{SERIAL_PATH}/install", url_name="install", filter_backends=[],
        pagination_class=None,
        permission_classes=[needs("customers.change_meter", "customers.change_contract")],
    )  # fmt: skip
    def install(self, request, serial=None):
        """Install a meter from stock on a contract (by its number), with the register at install."""
        meter = self._meter_by_serial(serial or "")
        incoming = serializers.MeterInstallInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        assignment = services.meter_install(actor=request.user, meter=meter, **incoming.validated_data)
        return Response(serializers.MeterMoveSerializer(assignment).data, status=http.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.MeterRemoveInSerializer, responses={200: serializers.MeterMoveSerializer}
    )
    @action(
        detail=False, methods=["post"], url_path=f"{SERIAL_PATH}/remove", url_name="remove", filter_backends=[],
        pagination_class=None, permission_classes=[needs("customers.change_meter")],
    )  # fmt: skip
    def remove(self, request, serial=None):
        """Take an installed meter off its contract with its last register; back to stock, or faulty."""
        meter = self._meter_by_serial(serial or "")
        incoming = serializers.MeterRemoveInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        assignment = services.meter_remove(actor=request.user, meter=meter, **incoming.validated_data)
        return Response(serializers.MeterMoveSerializer(assignment).data)
