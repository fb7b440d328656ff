"""Ticket API shapes: an input serializer for intake (validated, then handed to the service) and the output."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, prefetch_related_objects
from django.utils.translation import gettext as _
from rest_framework import serializers

from core.api.serializers import CachedFieldsMixin, CompiledRepresentationMixin
from core.numbers import WholeNumberSerializerField
from core.text import DESCRIPTION_MAX_CHARS, NOTE_MAX_CHARS, ComposedSerializerField
from crm import shared_cache
from crm.models import Unit
from crm.scoping import scope_for
from customers import privacy
from customers.selectors import contract_numbered, customer_for_intake
from tickets.models import (
    Callback,
    Category,
    Channel,
    Disposition,
    Incident,
    Interaction,
    Priority,
    ResolutionCode,
    Status,
    Ticket,
    TicketAttachment,
    TicketNote,
    WorkOrder,
    WorkOrderStatus,
)


class CategoryField(serializers.SlugRelatedField):
    """A category by its code, from the catalogue kept in the shared cache (intake asks every time)."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="code", queryset=Category.objects.filter(is_active=True), **kwargs)

    def to_internal_value(self, data):
        category = active_category(data)
        if category is None:
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data))
        return category


def active_category(code) -> Category | None:
    """The active category with ``code`` (surrounding spaces ignored), from the shared cache."""
    catalogue = shared_cache.remember(
        "categories",
        (shared_cache.CATALOGUE,),
        lambda: {c.code: c for c in Category.objects.filter(is_active=True)},
    )
    return catalogue.get(code.strip()) if isinstance(code, str) else None


class TicketInSerializer(CachedFieldsMixin, serializers.Serializer):
    category = CategoryField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)
    # Composed before the limits are counted: letters typed on a decomposing keyboard count once (``core.text``).
    description = ComposedSerializerField(max_length=DESCRIPTION_MAX_CHARS)
    customer_code = serializers.CharField(required=False, allow_blank=True)
    contract_number = serializers.CharField(required=False, allow_blank=True)
    caller_name = ComposedSerializerField(required=False, allow_blank=True, max_length=200)
    caller_phone = serializers.CharField(required=False, allow_blank=True, max_length=30)
    caller_address = ComposedSerializerField(required=False, allow_blank=True, max_length=300)
    unit_code = serializers.CharField(required=False, allow_blank=True)
    incident = WholeNumberSerializerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The number of the outage this call is about (``outages/status`` lists it). Without it an outage "
        "call is linked to the open outage covering the customer's address, if any.",
    )

    def validate(self, data):
        return resolve_intake_parties(self.context["request"].user, data)


def resolve_intake_parties(user, data: dict) -> dict:
    """Turn the codes of an intake request into the customer, contract and unit, each within ``user``'s units.
    Raises a DRF ValidationError naming the field."""
    code = data.pop("customer_code", "") or ""
    data["customer"] = None
    if code:
        # By its unique code, then the scope checked on the row (cheaper than the scope's unit list in SQL).
        customer = customer_for_intake(code.strip().upper())
        data["customer"] = customer if customer and scope_for(user).allows_unit(customer.unit_id) else None
        if data["customer"] is None:
            raise serializers.ValidationError({"customer_code": _("No such customer in your units.")})
    number = data.pop("contract_number", "") or ""
    data["contract"] = None
    if number:
        try:  # the one lookup by number (trimmed, in capitals), as the admin, the API and the imports read it
            data["contract"] = contract_numbered(user=user, number=number)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"contract_number": exc.messages}) from None
    number = data.pop("incident", None)
    data["incident"] = None
    if number is not None:
        # Open, covering the caller and an outage call: the service checks (its rules are every path's).
        data["incident"] = Incident.objects.for_user(user).select_related("unit").filter(pk=number).first()
        if data["incident"] is None:
            raise serializers.ValidationError({"incident": _("No such outage in your units.")})
    unit_code = data.pop("unit_code", "") or ""
    data["unit"] = None
    if unit_code:
        data["unit"] = Unit.objects.for_user(user).filter(code=unit_code.strip().upper()).first()
        if data["unit"] is None:
            raise serializers.ValidationError({"unit_code": _("No such unit among yours.")})
    return data


class TicketListSerializer(serializers.ListSerializer):
    """A page of tickets: the numbers of the tickets its duplicates repeat read in one query, not one each."""

    def to_representation(self, data):
        tickets = list(data.all() if hasattr(data, "all") else data)
        masters = Prefetch("duplicate_of", queryset=Ticket.objects.only("id", "number"))
        prefetch_related_objects([t for t in tickets if t.duplicate_of_id is not None], masters)
        return super().to_representation(tickets)


class TicketSerializer(
    privacy.MaskedRepresentationMixin, CompiledRepresentationMixin, serializers.ModelSerializer
):
    masked_fields = {"caller_phone": privacy.PHONE}
    category = serializers.CharField(source="category.code")
    unit_code = serializers.CharField(source="unit.code")
    customer_code = serializers.CharField(source="customer.code", default=None, allow_null=True)
    assignee: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    incident: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    duplicate_of = serializers.CharField(
        source="duplicate_of.number",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="The number of the ticket this one repeats (status duplicate); null otherwise.",
    )

    class Meta:
        model = Ticket
        list_serializer_class = TicketListSerializer
        fields = [
            "id", "number", "status", "duplicate_of", "category", "channel", "priority", "description", "customer_code",
            "caller_name", "caller_phone", "caller_address", "unit_code", "assignee", "incident", "created_at", "acknowledge_due",
            "contact_due", "resolve_due", "callback_due", "callback_overdue_at", "acknowledged_at", "contacted_at", "resolved_at",
            "acknowledge_breached", "contact_breached", "resolve_breached", "escalation_level", "cycle",
        ]  # fmt: skip


class TicketStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices)
    note = ComposedSerializerField(required=False, allow_blank=True, default="", max_length=NOTE_MAX_CHARS)
    duplicate_of = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="With status duplicate: the number it repeats.",
    )

    def validate_duplicate_of(self, value):
        if not value.strip():
            return None
        ticket = Ticket.objects.for_user(self.context["request"].user).filter(number=value.strip()).first()
        if ticket is None:
            raise serializers.ValidationError(_("No such ticket in your units."))
        return ticket


class TicketIncidentSerializer(serializers.Serializer):
    """The outage a ticket is part of, linked after the call was taken (it came before the outage was entered)."""

    incident = WholeNumberSerializerField(
        min_value=1, help_text="The outage's number (``outages/status`` lists those covering a customer)."
    )

    def validate_incident(self, value):
        # Open, started and covering the caller, for an outage call: the service checks (intake's rules).
        incident = Incident.objects.for_user(self.context["request"].user).filter(pk=value).first()
        if incident is None:
            raise serializers.ValidationError(_("No such outage in your units."))
        return incident


class IncidentSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        help_text="The outage's number: give it as ``incident`` when taking its calls."
    )
    cause = serializers.CharField()
    wards = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField()
    estimated_restore_at = serializers.DateTimeField(allow_null=True)


class OutageStatusSerializer(serializers.Serializer):
    customers = serializers.ListField(child=serializers.CharField())
    outage = serializers.BooleanField()
    incidents = IncidentSerializer(many=True)


class WorkOrderSerializer(serializers.ModelSerializer):
    ticket = serializers.CharField(source="ticket.number")
    unit_code = serializers.CharField(source="unit.code")
    crew = serializers.CharField(
        source="crew.username",
        default=None,
        allow_null=True,
        help_text="The crew member's username; null: the unit's dispatchers.",
    )

    class Meta:
        model = WorkOrder
        fields = [
            "id", "ticket", "unit_code", "crew", "status", "issued_at", "acknowledged_at", "contacted_at",
            "on_site_at", "done_at", "resolution_code", "note", "contact_minutes",
        ]  # fmt: skip


class CrewField(serializers.CharField):
    """A crew member by their username (as the work-order filter takes it), among the staff of the units the
    caller sees; empty or null: the unit's dispatchers decide. Whether they may be sent (a field crew member
    of the order's unit, still active) is the service's to say, on this field."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        if not kwargs["required"]:
            kwargs.setdefault("default", None)
        super().__init__(allow_blank=True, allow_null=True, **kwargs)

    def run_validation(self, data=serializers.empty):
        # Empty or blanks mean null (the dispatchers): DRF would hand a blank text on as it is, unread.
        if isinstance(data, str) and not data.strip():
            data = None
        return super().run_validation(data)

    def to_internal_value(self, data):
        from tickets.selectors import crew_pickable_by

        username = super().to_internal_value(data).strip()
        if not username:
            return None
        if len(username) > 150:  # no username is longer (Django's column)
            raise serializers.ValidationError(_("At most 150 characters."))
        crew = crew_pickable_by(self.context["request"].user).filter(username__iexact=username).first()
        if crew is None:
            raise serializers.ValidationError(
                _("No crew member with the username %(value)s among those you may send.")
                % {"value": username}
            )
        return crew

    def to_representation(self, value):
        return value.get_username() if value is not None else None


class WorkOrderInSerializer(serializers.Serializer):
    crew = CrewField(help_text="The crew member's username; left out: the unit's dispatchers decide.")
    note = ComposedSerializerField(required=False, allow_blank=True, default="", max_length=NOTE_MAX_CHARS)


class WorkOrderAssignSerializer(serializers.Serializer):
    crew = CrewField(
        required=True, help_text="The crew member's username; null or empty: back to the unit's dispatchers."
    )


class WorkOrderStepSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=WorkOrderStatus.choices)
    resolution_code = serializers.ChoiceField(choices=ResolutionCode.choices, required=False, default="")
    note = ComposedSerializerField(required=False, allow_blank=True, default="", max_length=NOTE_MAX_CHARS)


class TicketRerouteSerializer(serializers.Serializer):
    unit_code = serializers.CharField()
    reason = ComposedSerializerField(max_length=NOTE_MAX_CHARS)

    def validate(self, data):
        user = self.context["request"].user
        unit = Unit.objects.for_user(user).active().filter(code=data.pop("unit_code").strip().upper()).first()
        if unit is None:
            raise serializers.ValidationError({"unit_code": _("No such active unit among yours.")})
        data["unit"] = unit
        return data


class TicketAssignSerializer(serializers.Serializer):
    assignee = serializers.CharField(
        max_length=150, help_text="The username of a member of staff serving the ticket's unit."
    )

    def validate_assignee(self, value):
        """The member of staff by their username whatever its case, among the active staff of the units the
        caller sees, as the crew field reads one: anyone else, whether unknown, gone or serving elsewhere, is
        refused alike. Whether they serve the ticket's unit is the service's to say."""
        from django.contrib.auth import get_user_model

        from crm.models import StaffProfile

        username = value.strip()
        profiles = StaffProfile.objects.for_user(self.context["request"].user)
        user = (
            get_user_model()
            .objects.filter(staff_profile__in=profiles, username__iexact=username, is_active=True)
            .first()
        )
        if user is None:
            raise serializers.ValidationError(
                _("No member of staff of the units you see has the username %(value)s.")
                % {"value": username}
            )
        return user


class TicketNoteSerializer(privacy.MaskedRepresentationMixin, serializers.ModelSerializer):
    masked_fields = {"recipient": privacy.RECORD}  # the customer's phone (or e-mail) a message went to
    author = serializers.CharField(source="author.username", default=None, read_only=True, allow_null=True)
    body = ComposedSerializerField(max_length=DESCRIPTION_MAX_CHARS)

    class Meta:
        model = TicketNote
        fields = ["id", "to_customer", "body", "recipient", "author", "created_at"]
        read_only_fields = ["recipient", "author", "created_at"]


class TicketAttachmentSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None, read_only=True)
    download = serializers.SerializerMethodField()
    file = serializers.FileField(write_only=True)

    class Meta:
        model = TicketAttachment
        fields = ["id", "name", "content_type", "size", "uploaded_by", "uploaded_at", "download", "file"]
        read_only_fields = ["name", "content_type", "size", "uploaded_by", "uploaded_at"]

    def get_download(self, attachment) -> str:
        """The API's own download, which a token may follow (the admin's pages link their own)."""
        from django.urls import reverse

        return reverse("ticket-attachment-download", args=[attachment.ticket_id, attachment.pk])


class CallbackInSerializer(serializers.Serializer):
    reached = serializers.BooleanField(
        help_text="Did the customer answer? False counts an unanswered attempt."
    )
    fix_score = WholeNumberSerializerField(
        min_value=1, max_value=5, required=False, allow_null=True, default=None
    )
    attitude_score = WholeNumberSerializerField(
        min_value=1, max_value=5, required=False, allow_null=True, default=None
    )
    comment = ComposedSerializerField(required=False, allow_blank=True, default="", max_length=NOTE_MAX_CHARS)
    cycle = WholeNumberSerializerField(
        min_value=0, required=False, allow_null=True, default=None,
        help_text="The resolution the survey is about (the ticket's ``cycle`` when the agent called): refused when "
        "the ticket has been reopened and resolved again since.",
    )  # fmt: skip
    attempts = WholeNumberSerializerField(
        min_value=0, required=False, allow_null=True, default=None,
        help_text="The callback's ``attempts`` when the agent dialled: refused, recording nothing, when another "
        "attempt has been recorded since (a request sent twice, a colleague's call).",
    )  # fmt: skip


class CallbackSerializer(serializers.ModelSerializer):
    ticket = serializers.CharField(source="ticket.number")
    ticket_status = serializers.CharField(source="ticket.status")
    agent = serializers.CharField(source="agent.username", default=None, allow_null=True)

    class Meta:
        model = Callback
        fields = [
            "ticket", "ticket_status", "cycle", "attempts", "outcome", "fix_score", "attitude_score", "comment",
            "agent", "completed_at",
        ]  # fmt: skip


class InteractionInSerializer(serializers.Serializer):
    """A call or message to log (a softphone posts one when the agent hangs up)."""

    channel = serializers.ChoiceField(choices=Channel.choices)
    disposition = serializers.ChoiceField(choices=Disposition.choices)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(required=False, help_text="Or give handling_seconds.")
    handling_seconds = WholeNumberSerializerField(required=False, min_value=0, max_value=24 * 3600)
    customer_code = serializers.CharField(required=False, allow_blank=True)
    ticket_number = serializers.CharField(required=False, allow_blank=True)
    unit_code = serializers.CharField(required=False, allow_blank=True)
    caller_phone = serializers.CharField(required=False, allow_blank=True, max_length=30)
    note = ComposedSerializerField(required=False, allow_blank=True, max_length=NOTE_MAX_CHARS)

    def validate(self, data):
        import datetime as dt

        from customers.models import Customer

        user = self.context["request"].user
        seconds = data.pop("handling_seconds", None)
        if "ended_at" not in data:
            if seconds is None:
                raise serializers.ValidationError({"ended_at": _("Give ended_at or handling_seconds.")})
            try:
                data["ended_at"] = data["started_at"] + dt.timedelta(seconds=seconds)
            except OverflowError:  # a start at the end of the calendar
                raise serializers.ValidationError(
                    {"started_at": _("A call cannot start in the future.")}
                ) from None
        code = (data.pop("customer_code", "") or "").strip().upper()
        data["customer"] = None
        if code:
            data["customer"] = Customer.objects.for_user(user).filter(code=code).first()
            if data["customer"] is None:
                raise serializers.ValidationError({"customer_code": _("No such customer in your units.")})
        number = (data.pop("ticket_number", "") or "").strip()
        data["ticket"] = None
        if number:
            data["ticket"] = Ticket.objects.for_user(user).filter(number=number).first()
            if data["ticket"] is None:
                raise serializers.ValidationError({"ticket_number": _("No such ticket in your units.")})
        unit_code = (data.pop("unit_code", "") or "").strip().upper()
        data["unit"] = None
        if unit_code:
            data["unit"] = Unit.objects.for_user(user).filter(code=unit_code).first()
            if data["unit"] is None:
                raise serializers.ValidationError({"unit_code": _("No such unit among yours.")})
        return data


class InteractionSerializer(privacy.MaskedRepresentationMixin, serializers.ModelSerializer):
    masked_fields = {"caller_phone": privacy.PHONE}
    customer_code = serializers.CharField(source="customer.code", default=None, allow_null=True)
    ticket_number = serializers.CharField(source="ticket.number", default=None, allow_null=True)
    unit_code = serializers.CharField(source="unit.code")
    agent = serializers.CharField(source="agent.username")
    handling_seconds = WholeNumberSerializerField()

    class Meta:
        model = Interaction
        fields = [
            "id", "channel", "disposition", "started_at", "ended_at", "handling_seconds", "customer_code",
            "ticket_number", "unit_code", "agent", "caller_phone", "note",
        ]  # fmt: skip
