"""Ticket API: intake for every channel (idempotent with an Idempotency-Key header), lists and moves."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.csp import csp_override
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.mixins import CreateModelMixin
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import CanChangeModel, needs
from core.api.scoped import ScopedReadOnlyViewSet
from core.errors import renamed
from core.json_input import JSONParser
from customers.models import Customer
from customers.normalise import InvalidPhone, normalise_phone
from tickets import selectors, services
from tickets.api.filters import InteractionFilter, TicketFilter, WorkOrderFilter
from tickets.api.serializers import (
    CallbackInSerializer,
    CallbackSerializer,
    InteractionInSerializer,
    InteractionSerializer,
    OutageStatusSerializer,
    TicketAssignSerializer,
    TicketAttachmentSerializer,
    TicketIncidentSerializer,
    TicketInSerializer,
    TicketNoteSerializer,
    TicketRerouteSerializer,
    TicketSerializer,
    TicketStatusSerializer,
    WorkOrderAssignSerializer,
    WorkOrderInSerializer,
    WorkOrderSerializer,
    WorkOrderStepSerializer,
)
from tickets.models import Callback, Interaction, Ticket, WorkOrder
from tickets.views import ATTACHMENT_CSP, attachment_response

#: The service's names of the intake's arguments → the request's fields that named them (a 400 names the latter).
INTAKE_FIELDS_SENT = {"unit": "unit_code", "contract": "contract_number", "customer": "customer_code"}


class TicketViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    queryset = Ticket.objects.select_related("category", "unit", "customer")
    serializer_class = TicketSerializer
    filterset_class = TicketFilter

    @extend_schema(
        request=TicketInSerializer,
        responses={201: TicketSerializer, 200: TicketSerializer, 422: OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description=(
                    "Yours (two users' keys never meet). A retried request with the same key and the same body "
                    "returns the first ticket (200), never a second; the same key with another body is refused "
                    "(422)."
                ),
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
                {"Idempotency-Key": [_("At most 100 characters.")]}, status=http.HTTP_400_BAD_REQUEST
            )
        try:
            intake = services.ticket_open(
                actor=request.user, idempotency_key=key,
                body_hash=_body_hash(request) if key else "", **incoming.validated_data,
            )
        except services.IdempotencyKeyReused as exc:
            return Response({"Idempotency-Key": [str(exc)]}, status=http.HTTP_422_UNPROCESSABLE_ENTITY)
        except DjangoValidationError as exc:
            # The service's refusal on the request's own fields (a unit, customer or contract named by its code).
            raise renamed(exc, INTAKE_FIELDS_SENT) from None
        if not intake.created and not Ticket.objects.for_user(request.user).filter(pk=intake.ticket.pk).exists():
            # A retry of a request taken before, whose ticket has since gone to a unit the caller does not
            # serve: its number, which the first answer gave, and nothing of what it holds now.
            return Response(
                {"number": intake.ticket.number, "detail": _("Taken before; the ticket is now with another unit.")},
                status=http.HTTP_200_OK,
            )
        body = {
            **TicketSerializer(intake.ticket, context={"request": request}).data,
            "warnings": intake.warnings,
        }
        return Response(body, status=http.HTTP_201_CREATED if intake.created else http.HTTP_200_OK)

    @extend_schema(request=TicketStatusSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="status", permission_classes=[CanChangeModel])
    def change_status(self, request, pk=None):
        """Move the ticket (acknowledged, dispatched, in progress, pending the customer, resolved, closed…)."""
        ticket = self.get_object()
        incoming = TicketStatusSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        ticket = services.ticket_change_status(actor=request.user, ticket=ticket, to=incoming.validated_data["status"],
                                               note=incoming.validated_data["note"],
                                               duplicate_of=incoming.validated_data["duplicate_of"])  # fmt: skip
        return Response(TicketSerializer(ticket, context={"request": request}).data)

    @extend_schema(request=TicketRerouteSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="reroute", permission_classes=[CanChangeModel])
    def reroute(self, request, pk=None):
        """A supervisor sends the ticket to another unit, with a reason."""
        if not request.user.has_perm("tickets.reroute_ticket"):
            return Response({"detail": _("Only a supervisor may re-route.")}, status=http.HTTP_403_FORBIDDEN)
        ticket = self.get_object()
        incoming = TicketRerouteSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        ticket = services.ticket_reroute(actor=request.user, ticket=ticket, **incoming.validated_data)
        return Response(TicketSerializer(ticket, context={"request": request}).data)

    @extend_schema(request=None, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="contact", permission_classes=[CanChangeModel])
    def contact(self, request, pk=None):
        """The unit has called the customer."""
        ticket = services.ticket_record_contact(actor=request.user, ticket=self.get_object())
        return Response(TicketSerializer(ticket, context={"request": request}).data)

    @extend_schema(request=TicketIncidentSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="incident", permission_classes=[CanChangeModel])
    def incident(self, request, pk=None):
        """Link an outage call taken before the outage was entered to it (``incident``: its number), by intake's
        rules: an outage report, an outage that has started, is still open and covers the caller's address. It
        needs the right to change tickets of the outage's unit too; its restore then resolves the ticket and
        tells the customer."""
        ticket = self.get_object()
        incoming = TicketIncidentSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        ticket = services.ticket_link_incident(
            actor=request.user, ticket=ticket, incident=incoming.validated_data["incident"]
        )
        return Response(TicketSerializer(ticket, context={"request": request}).data)

    @extend_schema(request=TicketAssignSerializer, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], url_path="assign", permission_classes=[CanChangeModel])
    def assign(self, request, pk=None):
        """Give the ticket to a member of staff of its unit (oneself, or anyone with ``assign_ticket``)."""
        ticket = self.get_object()
        incoming = TicketAssignSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        ticket = services.ticket_assign(actor=request.user, ticket=ticket, **incoming.validated_data)
        return Response(TicketSerializer(ticket, context={"request": request}).data)

    @extend_schema(methods=["GET"], responses={200: TicketNoteSerializer(many=True)})
    @extend_schema(methods=["POST"], request=TicketNoteSerializer, responses={201: TicketNoteSerializer})
    @action(detail=True, methods=["get", "post"], url_path="notes", pagination_class=None,
            permission_classes=[needs("tickets.view_ticket", "tickets.view_ticketnote")])  # fmt: skip
    def notes(self, request, pk=None):
        """Internal notes and messages to the customer (``to_customer: true`` sends it by SMS or e-mail)."""
        ticket = self.get_object()
        if request.method == "GET":
            rows = ticket.notes.select_related("author").order_by("created_at")
            return Response(TicketNoteSerializer(rows, many=True, context={"request": request}).data)
        if not request.user.has_perm("tickets.add_ticketnote"):
            return Response({"detail": _("Not allowed to write on tickets.")}, status=http.HTTP_403_FORBIDDEN)
        incoming = TicketNoteSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        note = services.ticket_add_note(actor=request.user, ticket=ticket, **incoming.validated_data)
        return Response(
            TicketNoteSerializer(note, context={"request": request}).data, status=http.HTTP_201_CREATED
        )

    @extend_schema(methods=["GET"], responses={200: TicketAttachmentSerializer(many=True)})
    @extend_schema(methods=["POST"], request={"multipart/form-data": TicketAttachmentSerializer},
                   responses={201: TicketAttachmentSerializer})  # fmt: skip
    @action(detail=True, methods=["get", "post"], url_path="attachments", pagination_class=None,
            parser_classes=[MultiPartParser, FormParser, JSONParser],
            permission_classes=[needs("tickets.view_ticket", "tickets.view_ticketattachment")])  # fmt: skip
    def attachments(self, request, pk=None):
        """The ticket's files; POST a ``file`` as multipart/form-data to add one."""
        ticket = self.get_object()
        if request.method == "GET":
            rows = ticket.attachments.select_related("uploaded_by").order_by("uploaded_at")
            return Response(TicketAttachmentSerializer(rows, many=True).data)
        if not request.user.has_perm("tickets.add_ticketattachment"):
            return Response({"detail": _("Not allowed to attach files.")}, status=http.HTTP_403_FORBIDDEN)
        incoming = TicketAttachmentSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        attachment = services.ticket_attach(
            actor=request.user, ticket=ticket, upload=incoming.validated_data["file"]
        )
        return Response(TicketAttachmentSerializer(attachment).data, status=http.HTTP_201_CREATED)


    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"attachments/(?P<attachment_id>[0-9]+)/download",
            url_name="attachment-download",
            permission_classes=[needs("tickets.view_ticket", "tickets.view_ticketattachment")])  # fmt: skip
    @method_decorator(csp_override(ATTACHMENT_CSP))  # type: ignore[arg-type]
    def attachment_download(self, request, pk=None, attachment_id=None):
        """A file of the ticket, as a download (an integration's token fetches what ``attachments`` lists)."""
        ticket = self.get_object()
        attachment = ticket.attachments.filter(pk=attachment_id).first()
        if attachment is None:
            raise NotFound
        return attachment_response(attachment)

    @extend_schema(request=WorkOrderInSerializer, responses={201: WorkOrderSerializer})
    @action(detail=True, methods=["post"], url_path="work-orders",
            permission_classes=[needs("tickets.view_ticket", "tickets.add_workorder")])  # fmt: skip
    def work_orders(self, request, pk=None):
        """Send a crew: a work order for this ticket, to the crew member named by ``crew`` (their username) or,
        without one, to the unit's dispatchers, who are told; the ticket becomes dispatched."""
        ticket = self.get_object()
        incoming = WorkOrderInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        order = services.work_order_create(actor=request.user, ticket=ticket, **incoming.validated_data)
        order = WorkOrder.objects.select_related("ticket", "unit", "crew").get(pk=order.pk)
        return Response(WorkOrderSerializer(order).data, status=http.HTTP_201_CREATED)

    @extend_schema(request=CallbackInSerializer, responses={201: CallbackSerializer})
    @action(detail=True, methods=["post"], url_path="callback",
            permission_classes=[needs("tickets.view_ticket", "tickets.add_callback")])  # fmt: skip
    def callback(self, request, pk=None):
        """Record one callback attempt of a resolved ticket: the survey (``reached: true`` with ``fix_score`` and
        ``attitude_score`` from 1 to 5), or an unanswered call; the third unanswered one makes it unreachable.
        A finished callback closes the ticket."""
        ticket = self.get_object()
        incoming = CallbackInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        callback = services.callback_record(actor=request.user, ticket=ticket, **incoming.validated_data)
        callback = Callback.objects.select_related("ticket", "agent").get(pk=callback.pk)
        return Response(CallbackSerializer(callback).data, status=http.HTTP_201_CREATED)


def _body_hash(request) -> str:
    """The hash of what the request asks for: its parsed body, field order and spacing aside."""
    data = request.data
    if hasattr(data, "lists"):  # a form: every value of every field
        data = dict(data.lists())
    return services.request_hash(data)


class OutageStatusQuery(serializers.Serializer):
    """The outage status's parameters, read by DRF's text rules."""

    customer_code = serializers.CharField(required=False, allow_blank=True, max_length=40)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)


class OutageStatusView(APIView):
    """For the virtual assistant: is there an outage affecting this customer code or phone?"""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter("customer_code", OpenApiTypes.STR, required=False),
            OpenApiParameter("phone", OpenApiTypes.STR, required=False, description="Any spelling."),
        ],
        responses={200: OutageStatusSerializer},
    )
    def get(self, request):
        if not request.user.has_perm("tickets.view_incident"):
            return Response({"detail": _("Not allowed.")}, status=http.HTTP_403_FORBIDDEN)
        query = OutageStatusQuery(data=request.query_params)
        query.is_valid(raise_exception=True)  # DRF's rules for text: a NUL character, an overlong value
        code = query.validated_data.get("customer_code", "").strip().upper()
        phone = query.validated_data.get("phone", "").strip()
        customers = Customer.objects.for_user(request.user).select_related("unit")
        if code:
            customers = customers.filter(code=code)
        elif phone:
            try:
                customers = customers.filter(phones__number=normalise_phone(phone))
            except InvalidPhone as exc:
                return Response({"phone": [str(exc)]}, status=http.HTTP_400_BAD_REQUEST)
        else:
            return Response({"detail": _("Give customer_code or phone.")}, status=http.HTTP_400_BAD_REQUEST)
        incidents = {}
        found = list(customers[:10])
        for customer in found:
            for incident in selectors.incidents_for_customer(customer):
                incidents[incident.pk] = incident
        payload = {
            "customers": [c.code for c in found],
            "outage": bool(incidents),
            "incidents": list(incidents.values()),
        }
        return Response(OutageStatusSerializer(payload).data)


class WorkOrderViewSet(ScopedReadOnlyViewSet):
    """The unit's work orders; the crew moves them step by step (``POST …/advance/``)."""

    queryset = WorkOrder.objects.select_related("ticket", "unit", "crew")
    serializer_class = WorkOrderSerializer
    filterset_class = WorkOrderFilter

    @extend_schema(request=WorkOrderAssignSerializer, responses={200: WorkOrderSerializer})
    @action(detail=True, methods=["post"], url_path="assign",
            permission_classes=[needs("tickets.view_workorder", "tickets.add_workorder")])  # fmt: skip
    def assign(self, request, pk=None):
        """Give an open work order to a crew member of its unit (``crew``: their username), or move it to another
        one; both are told. Sending crews is a dispatcher's or supervisor's right: a crew member cannot."""
        order = self.get_object()
        incoming = WorkOrderAssignSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        order = services.work_order_assign(actor=request.user, order=order, **incoming.validated_data)
        order = WorkOrder.objects.select_related("ticket", "unit", "crew").get(pk=order.pk)
        return Response(WorkOrderSerializer(order).data)

    @extend_schema(request=WorkOrderStepSerializer, responses={200: WorkOrderSerializer})
    @action(detail=True, methods=["post"], url_path="advance", permission_classes=[CanChangeModel])
    def advance(self, request, pk=None):
        incoming = WorkOrderStepSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        order = services.work_order_advance(
            actor=request.user, order=self.get_object(), **incoming.validated_data
        )
        return Response(WorkOrderSerializer(order).data)


class InteractionViewSet(CreateModelMixin, ScopedReadOnlyViewSet):
    """Calls and messages handled by agents; POST logs one (a softphone posts it when the agent hangs up)."""

    queryset = Interaction.objects.select_related("customer", "ticket", "unit", "agent")
    serializer_class = InteractionSerializer
    filterset_class = InteractionFilter  # the unit by its code, among the caller's units
    FIELDS_SENT = {"unit": "unit_code", "customer": "customer_code", "ticket": "ticket_number"}

    @extend_schema(request=InteractionInSerializer, responses={201: InteractionSerializer})
    def create(self, request, *args, **kwargs):
        incoming = InteractionInSerializer(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        try:
            interaction = services.interaction_record(actor=request.user, **incoming.validated_data)
        except DjangoValidationError as exc:
            if not hasattr(exc, "error_dict"):
                raise
            # The service's refusal on the request's own fields (a unit, customer or ticket named by its code).
            return Response(
                {self.FIELDS_SENT.get(name, name): messages for name, messages in exc.message_dict.items()},
                status=http.HTTP_400_BAD_REQUEST,
            )
        # The row just written, as written: its unit follows the customer or ticket (after merges), which may be
        # a unit the agent's profile does not list (it still names the unit merged away).
        interaction = Interaction.objects.select_related("customer", "ticket", "unit", "agent").get(
            pk=interaction.pk
        )
        return Response(
            InteractionSerializer(interaction, context={"request": request}).data, status=http.HTTP_201_CREATED
        )
