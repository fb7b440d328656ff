"""Ticket API: intake for every channel (idempotent with an Idempotency-Key header), lists and moves."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.mixins import CreateModelMixin
from rest_framework.response import Response

from crm.api.permissions import CanChangeModel
from crm.api.scoped import ScopedReadOnlyViewSet
from tickets import services
from tickets.api.serializers import TicketInSerializer, TicketSerializer, TicketStatusSerializer
from tickets.models import Ticket


class TicketViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    queryset = Ticket.objects.select_related("category", "unit", "customer")
    serializer_class = TicketSerializer
    filterset_fields = ["status", "unit", "category", "channel", "escalation_level"]

    @extend_schema(
        request=TicketInSerializer,
        responses={201: TicketSerializer, 200: TicketSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="A retried request with the same key returns the first ticket (200), never a second.",
            )
        ],
    )
    def create(self, request, *args, **kwargs):
        """Take a request from any channel and route it to the responsible unit."""
        incoming = TicketInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and len(key) > 100:
            return Response(
                {"Idempotency-Key": ["At most 100 characters."]}, status=http.HTTP_400_BAD_REQUEST
            )
        intake = services.ticket_open(actor=request.user, idempotency_key=key, **incoming.validated_data)
        body = {**TicketSerializer(intake.ticket).data, "warnings": intake.warnings}
        return Response(body, status=http.HTTP_201_CREATED if intake.created else http.HTTP_200_OK)

    @extend_schema(request=TicketStatusSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="status", permission_classes=[CanChangeModel])
    def change_status(self, request, pk=None):
        """Move the ticket (acknowledged, dispatched, in progress, pending the customer, resolved, closed…)."""
        ticket = self.get_object()
        incoming = TicketStatusSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        ticket = services.ticket_change_status(actor=request.user, ticket=ticket, to=incoming.validated_data["status"],
                                               note=incoming.validated_data["note"])  # fmt: skip
        return Response(TicketSerializer(ticket).data)

    @extend_schema(request=None, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="contact", permission_classes=[CanChangeModel])
    def contact(self, request, pk=None):
        """The unit has called the customer."""
        ticket = services.ticket_record_contact(actor=request.user, ticket=self.get_object())
        return Response(TicketSerializer(ticket).data)
