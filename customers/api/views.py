"""Customers API: list and detail (scoped), the caller lookup and the customer card."""

from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api.scoped import ScopedReadOnlyViewSet
from customers import selectors
from customers.api import filters, serializers
from customers.models import Contract, Customer, Meter


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


class MeterViewSet(ScopedReadOnlyViewSet):
    queryset = Meter.objects.select_related("unit")
    serializer_class = serializers.MeterSerializer
    filterset_class = filters.MeterFilter
