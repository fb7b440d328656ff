"""Admin for tickets (queues for agents and supervisors, actions that call the services) and the catalogue."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.exports import StreamingExportMixin
from core.json_input import ADMIN_FORMFIELD_OVERRIDES
from core.numbers import WholeNumberField
from core.text import NOTE_MAX_CHARS, ComposedCharField, name_key
from core.times import local_stamp
from crm.admin_base import (
    MaskedLookupsMixin,
    ReadOnlyAdmin,
    RecordFieldsMixin,
    SafeListMixin,
    ScopedAdmin,
    ScopedUnitFilter,
    ServiceErrorsMixin,
    add_service_errors,
    report_errors,
)
from crm.models import Unit
from crm.permissions import EverythingOnlyAdminMixin
from crm.scoping import scope_for
from customers import privacy
from customers.admin import CurrentUnitMixin
from customers.models import Customer
from customers.normalise import InvalidPhone, normalise_phone
from tickets import selectors, services
from tickets.models import (
    DUE_SOON,
    Callback,
    Category,
    Holiday,
    Incident,
    Interaction,
    SlaPolicy,
    Status,
    Suspension,
    Ticket,
    TicketAttachment,
    TicketEvent,
    TicketNote,
    WorkOrder,
    due_soon,
)
from tickets.resources import TicketResource


class QueueFilter(admin.SimpleListFilter):
    """The queues an agent or supervisor works from."""

    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("mine", _("My open tickets")),
            ("open", _("Open tickets of my units")),
            ("breaching", _("Breaching within 30 minutes")),
            ("breached", _("Breached and open")),
            ("callback", _("Callbacks due")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "mine":
            return queryset.open().filter(assignee=request.user)
        if value == "open":
            return queryset.open()
        if value == "breaching":
            return queryset.open().filter(due_soon(now))
        if value == "breached":
            return queryset.open().filter(escalation_level__gt=0)
        if value == "callback":
            return queryset.filter(status=Status.RESOLVED)  # a finished callback closes the ticket
        return queryset


class EscalationFilter(admin.SimpleListFilter):
    """The escalation levels, named by who hears of each. Django's own filter of the field would read the levels
    present from the tickets themselves: a scan of every ticket of the user's units on every page."""

    title = gettext_lazy("escalation level")
    parameter_name = "escalation_level__exact"

    def lookups(self, request, model_admin):
        return [
            ("0", _("Not escalated")),
            ("1", _("1: the unit's dispatchers")),
            ("2", _("2: the company's supervisors")),
            ("3", _("3: the corporation's managers")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value in {"0", "1", "2", "3"}:
            return queryset.filter(escalation_level=int(value))
        return queryset


class CallerPhoneField(forms.CharField):
    """The caller's number typed as people write it ("+84 903 123 456", "84-903-123-456"), cleaned to its normal
    form (+84…, ``customers.normalise``); one that is not a Vietnamese number is refused on the field with the
    reason, keeping what the agent typed. The new-ticket and the log-a-call forms take it alike."""

    def __init__(self, **kwargs):
        super().__init__(max_length=30, required=False, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return ""
        try:
            return normalise_phone(value)
        except InvalidPhone as exc:
            raise forms.ValidationError(str(exc), code="invalid_phone") from exc


class TicketIntakeForm(forms.ModelForm):
    # When the agent opened the form (picked up the call): the call is logged with its handling time on save.
    call_started_at = forms.DateTimeField(widget=forms.HiddenInput, required=False)
    # The form's one-time token: the same form posted twice takes one ticket (``ticket_open``'s idempotency key).
    submission_token = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def intake(self) -> dict:
        """What the form asks ``services.ticket_open`` to take (a customer's ticket goes to their unit)."""
        data = self.cleaned_data
        return {
            "category": data.get("category"), "channel": data.get("channel"), "priority": data.get("priority"),
            "description": data.get("description", ""), "customer": data.get("customer"),
            "contract": data.get("contract"), "caller_name": data.get("caller_name", ""),
            "caller_phone": data.get("caller_phone", ""), "caller_address": data.get("caller_address", ""),
            "unit": data.get("unit") if not data.get("customer") else None,
        }  # fmt: skip

    def clean(self):
        """Once the fields are read, the service's own refusals (a contract that is not the customer's, a
        category suspended in the unit or no longer taken…) on the fields they concern: the form comes back
        with them and with what the agent typed, while the caller is still on the line."""
        data = super().clean()
        if self.instance.pk is None and "category" in self.fields and not self.errors:
            intake = self.intake()
            del intake["caller_address"]
            try:
                services.ticket_open_check(**intake)
            except ValidationError as exc:
                add_service_errors(self, exc)
        return data

    class Meta:
        model = Ticket
        fields = [
            "customer", "contract", "caller_name", "caller_phone", "caller_address", "category", "channel",
            "priority", "description", "unit",
        ]  # fmt: skip
        # Composed before the limits are counted, as the API and the service count (``core.text``).
        field_classes = dict.fromkeys(["caller_name", "caller_address", "description"], ComposedCharField)


class HistoryInline(admin.TabularInline):
    """What is already on the ticket: shown, never edited here."""

    extra = 0
    can_delete = False
    related: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*self.related)


class AddOnlyInline:
    """One empty form for something new; saved by ``TicketAdmin.save_formset`` through a service."""

    extra = 1
    max_num: int | None = 1
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).none()

    def has_change_permission(self, request, obj=None):
        return False


class NoteHistoryInline(HistoryInline):
    """What was written on the ticket, internal notes and messages to the customer apart by their kind."""

    model = TicketNote
    verbose_name_plural = gettext_lazy("notes and messages")
    fields = ["created_at", "author", "kind", "recipient", "body"]
    ordering = ["created_at"]
    related = ("author",)

    @admin.display(description=gettext_lazy("kind"))
    def kind(self, note):
        return _("Message to the customer") if note.to_customer else _("Internal note")

    def get_readonly_fields(self, request, obj=None):
        # A message went to the customer's phone (or e-mail): shown as the user may see it.
        return privacy.with_shown_fields(self.fields, TicketNote, {"recipient": privacy.RECORD}, request.user)

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)


def submission_token() -> str:
    """A form's one-time token, fresh each time the form is drawn: the same form posted twice writes once."""
    return uuid.uuid4().hex


class NoteAddForm(forms.ModelForm):
    submission_token = forms.CharField(
        widget=forms.HiddenInput, required=False, initial=submission_token, max_length=64
    )

    def has_changed(self) -> bool:
        # The token alone is no note: an empty "write" box stays empty.
        return bool(set(self.changed_data) - {"submission_token"})


class NoteAddInline(AddOnlyInline, admin.StackedInline):
    """One new note or message per save, written through ``ticket_add_note``."""

    model = TicketNote
    form = NoteAddForm
    verbose_name = gettext_lazy("new note or message to the customer")
    verbose_name_plural = gettext_lazy("write")
    fields = ["body", "to_customer", "submission_token"]


class AttachmentHistoryInline(HistoryInline):
    model = TicketAttachment
    fields = ["uploaded_at", "uploaded_by", "download", "content_type", "size"]
    ordering = ["uploaded_at"]
    related = ("uploaded_by",)

    @admin.display(description=gettext_lazy("file"))
    def download(self, attachment):
        return format_html(
            '<a href="{}">{}</a>', reverse("ticket-attachment", args=[attachment.pk]), attachment.name
        )


class AttachmentAddInline(AddOnlyInline, admin.TabularInline):
    model = TicketAttachment
    verbose_name = gettext_lazy("new attachment")
    verbose_name_plural = gettext_lazy("attach a file")
    fields = ["file"]


def crew_named(value: str, user):
    """The crew member a dispatcher picked on a page (their user id; empty: the unit's dispatchers decide),
    among those ``user`` may name (``selectors.crew_pickable_by``, as the API's): anyone else is "no such crew
    member", without their name. The work order services decide whether they may be sent (a field crew member
    serving the unit, still active), so a choice that went stale while the page was open is refused with its
    reason."""
    value = (value or "").strip()
    if not value:
        return None
    crew = None
    if value.isascii() and value.isdigit() and len(value) <= 18:
        crew = selectors.crew_pickable_by(user).filter(pk=int(value)).first()
    if crew is None:
        raise ValidationError({"crew": _("No such crew member.")})
    return crew


def issued_text(order) -> str:
    if order.crew_id is None:
        return _("Work order %(o)s issued; the unit's dispatchers are told.") % {"o": order}
    return _("Work order %(o)s issued to %(who)s.") % {"o": order, "who": order.crew.get_username()}


class SendCrewForm(forms.Form):
    """The list's "Send a crew": one crew member serving every chosen ticket's unit, or the units' dispatchers."""

    crew = forms.ChoiceField(label=gettext_lazy("crew member"), required=False)
    note = forms.CharField(label=gettext_lazy("note"), required=False, max_length=NOTE_MAX_CHARS,
                           widget=forms.TextInput(attrs={"size": 60}))  # fmt: skip

    def __init__(self, *args, units=(), **kwargs):
        super().__init__(*args, **kwargs)
        common = None
        for unit_id in units:
            crews = {str(u.pk): selectors.crew_label(u) for u in selectors.crews_of_unit(unit_id)}
            common = crews if common is None else {k: v for k, v in common.items() if k in crews}
        self.fields["crew"].choices = [
            ("", _("The unit's dispatchers decide")), *sorted((common or {}).items(), key=lambda kv: kv[1])
        ]


class AssignForm(forms.Form):
    assignee: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, label=gettext_lazy("assignee")
    )

    def __init__(self, *args, units=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Only staff who can work every chosen ticket (tickets.selectors.eligible_assignees, which the service
        # checks, for each ticket's unit): one serving only some of the units would be refused for the others.
        units = list(units)
        eligible = selectors.eligible_assignees(units[:1])
        for unit_id in units[1:]:
            eligible = eligible.filter(pk__in=selectors.eligible_assignees([unit_id]).values("pk"))
        self.fields["assignee"].queryset = eligible.order_by("username")


# A ticket's number as intake gives it (``tickets.services``): its year, a dash and seven digits.
TICKET_NUMBER = re.compile(r"[0-9]{4}-[0-9]{7}")

SCORES = [(n, str(n)) for n in range(1, 6)]


class CallbackSurveyForm(forms.Form):
    """One callback attempt: the customer's answers, or "no answer" (the third makes it unreachable). The
    comment is kept with either (for "no answer": what the next agent calling should know); scores ticked with
    "no answer" are refused by ``callback_record``, and "no score" clears a score ticked by mistake."""

    reached = forms.TypedChoiceField(
        label=gettext_lazy("did the customer answer?"),
        choices=[("yes", gettext_lazy("Yes: record the survey")), ("no", gettext_lazy("No answer"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    fix_score = forms.TypedChoiceField(
        label=gettext_lazy("satisfaction with the fix (1–5)"), choices=[("", gettext_lazy("no score")), *SCORES],
        coerce=int, required=False, empty_value=None, widget=forms.RadioSelect,
    )  # fmt: skip
    attitude_score = forms.TypedChoiceField(
        label=gettext_lazy("satisfaction with the staff (1–5)"), choices=[("", gettext_lazy("no score")), *SCORES],
        coerce=int, required=False, empty_value=None, widget=forms.RadioSelect,
    )  # fmt: skip
    comment = forms.CharField(
        label=gettext_lazy("comment"), required=False, max_length=NOTE_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    # The resolution the form was opened for (the ticket's cycle then): answers about an earlier fix are refused.
    cycle = WholeNumberField(min_value=0, required=False, widget=forms.HiddenInput)
    # The attempts already recorded when the form was drawn: a second post of the same form records nothing.
    attempts = WholeNumberField(min_value=0, required=False, widget=forms.HiddenInput)

    def clean_cycle(self) -> int:
        """A survey posted without its resolution is the first resolution's (cycle 0)."""
        cycle = self.cleaned_data.get("cycle")
        return 0 if cycle is None else cycle


@admin.register(Ticket)
class TicketAdmin(MaskedLookupsMixin, StreamingExportMixin, ServiceErrorsMixin, ScopedAdmin):
    form = TicketIntakeForm
    masked_lookups = {"caller_phone": privacy.PHONE}
    # The columns an agent works a queue by, readable at 1366 px (tickets/queue.css); every one is read from
    # the row and its joined category, customer, unit and assignee: no query per row.
    list_display = [
        "number", "who", "category", "status", "unit_code", "channel", "received", "time_left", "level",
        "assignee",
    ]  # fmt: skip
    list_select_related = ["category", "customer", "unit", "assignee"]
    # The queue's page reloads itself every 30 s, keeping its filters (tickets/queue_refresh.js).
    change_list_template = "admin/tickets/ticket/change_list.html"
    list_filter = [QueueFilter, ScopedUnitFilter, "status", "category", "channel", EscalationFilter]
    search_fields = ["number__exact", "customer__code__exact"]
    autocomplete_fields = ["customer", "contract", "unit"]
    actions = [
        "take", "assign", "acknowledge", "send_crew", "record_contact", "start_work", "resolve", "close",
        "export_selected_csv", "export_selected_xlsx",
    ]  # fmt: skip
    ordering = ["-id"]
    export_resource_class = TicketResource  # streamed exports of the changelist

    @admin.display(description=gettext_lazy("customer or caller"), ordering="customer__code")
    def who(self, ticket):
        if ticket.customer is not None:
            text = f"{ticket.customer.code} {ticket.customer.full_name}"
        else:
            text = ticket.caller_name or "—"
        return format_html('<span class="cell" title="{}">{}</span>', text, text)

    @admin.display(description=gettext_lazy("unit"), ordering="unit__code")
    def unit_code(self, ticket):
        return format_html('<span title="{}">{}</span>', ticket.unit.name, ticket.unit.code)

    @admin.display(description=gettext_lazy("received at"), ordering="created_at")
    def received(self, ticket):
        at = timezone.localtime(ticket.created_at)
        return format_html('<span title="{}">{}</span>', f"{at:%d/%m/%Y %H:%M}", f"{at:%d/%m %H:%M}")

    def changelist_view(self, request, extra_context=None):
        # The queue takes the whole width: no navigation sidebar beside it (the breadcrumbs and home remain).
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.display(description=gettext_lazy("time left"), ordering="next_check_at")
    def time_left(self, ticket):
        """Time to the next deadline not yet met (or how late it is), from the stored deadlines."""
        if ticket.status == Status.PENDING_CUSTOMER:
            return format_html('<span class="due paused">{}</span>', _("waiting for the customer"))
        due = selectors.next_deadline(ticket)
        if due is None:
            return "—"
        what, moment = due
        left = moment - timezone.now()
        title = f"{what}: {timezone.localtime(moment):%d/%m/%Y %H:%M}"
        if left.total_seconds() < 0:
            text = _("%(t)s late") % {"t": selectors.duration_text(-left)}
            css = "late"
        else:
            text = _("%(t)s left") % {"t": selectors.duration_text(left)}
            css = "soon" if left <= DUE_SOON else "ok"
        return format_html('<span class="due {}" title="{}">{}</span>', css, title, text)

    @admin.display(description=gettext_lazy("escalation"), ordering="escalation_level")
    def level(self, ticket):
        return ticket.escalation_level or "—"

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        return [NoteHistoryInline, NoteAddInline, AttachmentHistoryInline, AttachmentAddInline]

    def save_formset(self, request, form, formset, change):
        """New notes and files go through their services; nothing else in the inlines is writable."""
        ticket = form.instance
        started = timezone.now()
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed() or inline_form.instance.pk:
                continue
            data = inline_form.cleaned_data
            if formset.model is TicketNote:
                token = data.get("submission_token") or None
                note = services.ticket_add_note(
                    actor=request.user, ticket=ticket, body=data.get("body", ""),
                    to_customer=data.get("to_customer", False), token=token,
                )  # fmt: skip
                if token is not None and note.created_at < started:
                    messages.warning(
                        request,
                        _("This message was already sent to %(to)s; it was not sent again.") % {"to": note.recipient}
                        if note.to_customer else _("This note was already written; it was not written again."),
                    )
                elif note.to_customer:
                    messages.success(request, _("Message sent to %(to)s.") % {"to": note.recipient})
            elif formset.model is TicketAttachment and data.get("file"):
                services.ticket_attach(actor=request.user, ticket=ticket, upload=data["file"])

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*TicketIntakeForm.Meta.fields, "call_started_at", "submission_token"]
        fields = [
            "number", "status", "category", "customer", "contract", "caller_name", "caller_phone",
            "caller_address", "channel", "priority", "description", "unit", "assignee", "created_at",
            "acknowledge_due", "contact_due", "resolve_due", "callback_due", "callback_overdue_at", "acknowledged_at", "contacted_at",
            "resolved_at", "acknowledge_breached", "contact_breached", "resolve_breached", "escalation_level",
        ]  # fmt: skip
        if obj.duplicate_of_id is not None:
            # The request that stays open, by its number: a link for those who may open it (``RelatedShown``).
            fields.insert(fields.index("status") + 1, "duplicate_of")
        return privacy.with_shown_fields(fields, Ticket, {"caller_phone": privacy.PHONE}, request.user)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_urls(self):
        return [
            path("breaches/", self.admin_site.admin_view(self.breaches_view), name="tickets_ticket_breaches"),
            path(
                "callbacks/", self.admin_site.admin_view(self.callbacks_view), name="tickets_ticket_callbacks"
            ),
            path(
                "<int:object_id>/move/",
                self.admin_site.admin_view(self.move_view),
                name="tickets_ticket_move",
            ),
            path(
                "<int:object_id>/callback/",
                self.admin_site.admin_view(self.callback_view),
                name="tickets_ticket_callback",
            ),
            path(
                "report-outage/<int:incident_id>/<int:customer_id>/",
                self.admin_site.admin_view(self.report_outage_view),
                name="tickets_ticket_report_outage",
            ),
            *super().get_urls(),
        ]

    def breaches_view(self, request):
        """Breaches by unit: what a supervisor watches (one grouped query over the open tickets in scope)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Breaches by unit"),
            "opts": self.model._meta,
            "rows": selectors.breaches_by_unit(user=request.user),
        }
        return TemplateResponse(request, "admin/tickets/breaches.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The ticket page: its clocks, the buttons for the moves the user may make now, and its timeline."""
        ticket = self.get_object(request, object_id)
        if ticket is not None and request.method == "GET":
            extra_context = {
                **(extra_context or {}),
                # What was typed into a move the service refused, shown again in its form (once).
                "typed": request.session.pop(self.typed_key(ticket), None) or {},
                "moves": selectors.ticket_moves(ticket=ticket, user=request.user),
                "clocks": selectors.ticket_clocks(ticket=ticket),
                "timeline": selectors.ticket_timeline(ticket=ticket),
                "work_orders": selectors.ticket_work_orders(ticket=ticket, user=request.user),
                "move_url": reverse("admin:tickets_ticket_move", args=[ticket.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    MOVE_STATUS = {
        "acknowledge": Status.ACKNOWLEDGED, "start": Status.IN_PROGRESS, "resume": Status.IN_PROGRESS,
        "pending": Status.PENDING_CUSTOMER, "resolve": Status.RESOLVED, "reopen": Status.REOPENED,
        "cancel": Status.CANCELLED, "duplicate": Status.DUPLICATE,
    }  # fmt: skip

    @staticmethod
    def typed_key(ticket: Ticket) -> str:
        return f"tickets-move-typed-{ticket.pk}"

    def move_view(self, request, object_id: int):
        """A button of the ticket page: the move goes through its service; a refused one says why and changes
        nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ticket = self.get_queryset(request).filter(pk=object_id).first()
        if ticket is None:
            raise Http404(_("No such ticket in your units."))
        page = reverse("admin:tickets_ticket_change", args=[ticket.pk])
        key = request.POST.get("move", "")
        moves = {m.key: m for m in selectors.ticket_moves(ticket=ticket, user=request.user)}
        if key not in moves or moves[key].link:
            # Its status now, which another user may have changed since the page was opened.
            messages.error(
                request,
                _("Ticket %(n)s is %(status)s now: this move is not open to you on it. The page shows the moves "
                  "you can make.") % {"n": ticket.number, "status": Status(ticket.status).label},
            )  # fmt: skip
            return HttpResponseRedirect(page)
        note = request.POST.get("note", "").strip()
        try:
            if key == "take":
                services.ticket_assign(actor=request.user, ticket=ticket, assignee=request.user)
            elif key == "contact":
                services.ticket_record_contact(actor=request.user, ticket=ticket)
            elif key == "link_outage":
                incident = self._outage_named(request, request.POST.get("incident", ""))
                services.ticket_link_incident(actor=request.user, ticket=ticket, incident=incident)
            elif key == "send_crew":
                crew = crew_named(request.POST.get("crew", ""), request.user)
                order = services.work_order_create(actor=request.user, ticket=ticket, crew=crew, note=note)
                messages.success(request, issued_text(order))
            else:
                duplicate_of = None
                if key == "duplicate":
                    duplicate_of = self._ticket_named(request, request.POST.get("duplicate_of", ""))
                services.ticket_change_status(
                    actor=request.user, ticket=ticket, to=self.MOVE_STATUS[key], note=note, duplicate_of=duplicate_of
                )  # fmt: skip
        except ValidationError as exc:
            report_errors(request, exc)
            # The page opens again with what was typed, so the reason or the number is corrected, not retyped.
            request.session[self.typed_key(ticket)] = {
                "move": key,
                **{
                    name: request.POST.get(name, "")[:2000].replace("\x00", "")  # NUL: refused, invisible
                    for name in ("note", "duplicate_of", "crew", "incident")
                },
            }
            return HttpResponseRedirect(page)
        messages.success(
            request, _("%(n)s: %(move)s — done.") % {"n": ticket.number, "move": moves[key].label}
        )
        return HttpResponseRedirect(page)

    def _ticket_named(self, request, value: str) -> Ticket:
        """The ticket a duplicate repeats, named by its number (year-number, as intake gives them) among those of
        the user's units. Anything else typed (a NUL character pasted along, letters) is refused before it is
        looked up."""
        number = (value or "").strip()
        if not number:
            raise ValidationError({"duplicate_of": _("Name the ticket this one repeats.")})
        if not TICKET_NUMBER.fullmatch(number):
            raise ValidationError(
                {"duplicate_of": _("A ticket number is written as year-number, for example %(example)s.")
                                 % {"example": f"{timezone.localdate().year}-0000123"}}
            )  # fmt: skip
        ticket = self.get_queryset(request).filter(number=number).first()
        if ticket is None:
            raise ValidationError({"duplicate_of": _("No ticket numbered “%(n)s” in your units.") % {"n": number}})
        return ticket

    @staticmethod
    def _outage_named(request, value: str) -> Incident:
        """The outage a dispatcher picked on the ticket page, among those of the units they serve."""
        value = (value or "").strip()
        incident = None
        if value.isascii() and value.isdigit() and len(value) <= 18:
            incident = Incident.objects.for_user(request.user).filter(pk=int(value)).first()
        if incident is None:
            raise ValidationError({"incident": _("No such outage in your units.")})
        return incident

    def has_callback_permission(self, request) -> bool:
        return request.user.has_perm("tickets.add_callback")

    def callbacks_view(self, request):
        """The callbacks due: resolved tickets of the user's units waiting for the centre's call, each one click
        from its survey form."""
        if not self.has_callback_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": _("Callbacks due"),
            "opts": self.model._meta,
            "tickets": selectors.callbacks_due(user=request.user),
            "max_attempts": services.CALLBACK_MAX_ATTEMPTS,
        }
        return TemplateResponse(request, "admin/tickets/callbacks.html", context)

    def callback_view(self, request, object_id: int):
        """The survey form of one resolved ticket, recorded through ``callback_record``."""
        if not self.has_callback_permission(request):
            raise PermissionDenied
        ticket = (
            self.get_queryset(request).select_related("customer", "category").filter(pk=object_id).first()
        )
        if ticket is None:
            raise Http404(_("No such ticket in your units."))
        attempts = (
            Callback.objects.filter(ticket=ticket, cycle=ticket.cycle).values_list("attempts", flat=True).first()
            or 0
        )
        form = CallbackSurveyForm(request.POST or None, initial={"cycle": ticket.cycle, "attempts": attempts})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                callback = services.callback_record(
                    actor=request.user, ticket=ticket, reached=data["reached"], fix_score=data["fix_score"],
                    attitude_score=data["attitude_score"], comment=data["comment"], cycle=data["cycle"],
                    attempts=data["attempts"],
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                if callback.outcome == "surveyed":
                    text = _("Survey of %(n)s recorded; the ticket is closed.")
                elif callback.outcome == "unreachable":
                    text = _("%(n)s: unreachable after %(a)d attempts; the ticket is closed.")
                else:
                    text = _("%(n)s: attempt %(a)d without an answer recorded; call again later.")
                messages.success(request, text % {"n": ticket.number, "a": callback.attempts})
                return HttpResponseRedirect(reverse("admin:tickets_ticket_callbacks"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Callback survey: %(n)s") % {"n": ticket.number},
            "opts": self.model._meta,
            "ticket": ticket,
            "form": form,
            "attempts": attempts,
            "max_attempts": services.CALLBACK_MAX_ATTEMPTS,
            "phone": selectors.ticket_phone_shown(ticket, request.user),
        }
        return TemplateResponse(
            request, "admin/tickets/callback_form.html", context, status=400 if form.errors else 200
        )

    def report_outage_view(self, request, incident_id: int, customer_id: int):
        """One click from the customer card: the call becomes an outage ticket linked to the incident."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        incident = Incident.objects.for_user(request.user).filter(pk=incident_id).first()
        customer = Customer.objects.for_user(request.user).filter(pk=customer_id).first()
        card = reverse("admin:customers_customer_card", args=[customer_id])
        if incident is None or customer is None:
            raise Http404
        # A screen-popped card sends the number calling (as its "New ticket" carries it): the ticket and the call
        # logged keep it, so the restore SMS and the callback go to the number that called, not the primary one.
        from urllib.parse import urlencode

        calling = request.POST.get("caller_phone", "").strip()
        if calling:
            try:
                calling = normalise_phone(calling)
            except InvalidPhone as exc:
                messages.error(
                    request,
                    _("The number calling (%(phone)s) is not a phone number: %(reason)s No ticket was taken.")
                    % {"phone": calling, "reason": exc},
                )
                return HttpResponseRedirect(card)
            card = f"{card}?{urlencode({'phone': calling})}"  # the card keeps saying who calls
        # The card's one-time token: the click posted twice takes one ticket (``ticket_open``'s idempotency key).
        token = request.POST.get("submission_token", "").strip()[:64]
        key = f"card-outage:{incident.pk}:{customer.pk}:{token}" if token else None
        try:
            intake = services.ticket_open(
                actor=request.user, category=services.outage_category(), channel="phone", idempotency_key=key,
                description=incident.cause, customer=customer, incident=incident, caller_phone=calling,
            )  # fmt: skip
        except services.IdempotencyKeyReused as exc:
            intake = services.Intake(ticket=exc.ticket, created=False)
        except ValidationError as exc:
            report_errors(request, exc)
            return HttpResponseRedirect(card)
        if intake.created:
            services.ticket_assign_to_taker(actor=request.user, ticket=intake.ticket)  # as the new-ticket form
            self._log_call(request, intake.ticket)
            # The intake's warnings (the customer's open ticket of the category), as the new-ticket form shows them.
            for warning in intake.warnings:
                messages.warning(request, warning)
        elif key is not None:
            messages.warning(
                request, _("This call was already taken: ticket %(n)s. No second ticket was taken.")
                % {"n": intake.ticket.number},
            )  # fmt: skip
            return HttpResponseRedirect(card)
        messages.success(
            request, _("Ticket %(n)s taken and linked to the outage.") % {"n": intake.ticket.number}
        )
        return HttpResponseRedirect(card)

    def get_changeform_initial_data(self, request):
        """ "New ticket" from the customer card comes with ?customer=<id>: the unit follows the customer."""
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("channel", "phone")
        initial.setdefault("call_started_at", timezone.now())
        initial["submission_token"] = submission_token()
        if "customer" not in initial and "unit" not in initial:  # an unknown caller: the agent's only unit
            unit = services.interaction_unit(actor=request.user)
            if unit is not None:
                initial["unit"] = unit.pk
        return initial

    def save_model(self, request, obj, form, change):
        if change:
            return  # a ticket changes only through its actions and services; the inlines save themselves
        data = form.cleaned_data
        token = data.get("submission_token") or None
        try:
            intake = services.ticket_open(
                actor=request.user, idempotency_key=f"admin-intake:{token}" if token else None, **form.intake()
            )
        except services.IdempotencyKeyReused as exc:  # the same form posted again after a change
            intake = services.Intake(ticket=exc.ticket, created=False)
        for warning in intake.warnings:
            messages.warning(request, warning)
        obj.pk, obj.number = intake.ticket.pk, intake.ticket.number
        if not intake.created:
            messages.warning(
                request, _("This call was already taken: ticket %(n)s. No second ticket was taken.")
                % {"n": intake.ticket.number},
            )  # fmt: skip
            return
        services.ticket_assign_to_taker(actor=request.user, ticket=intake.ticket)
        # A ticket made from a "+" beside the ticket of a call being logged is that call's ticket: the call is the
        # one its own form logs, not a second one.
        if data["channel"] == "phone" and IS_POPUP_VAR not in request.POST:
            self._log_call(request, intake.ticket, started_at=data.get("call_started_at"))

    def _log_call(self, request, ticket, *, started_at=None):
        """An agent's phone intake is a call: it is logged with its handling time, from the moment the form (or
        the card) was opened; a start that cannot be true (in the future, or hours ago) counts from now. Every role
        that takes tickets logs calls (``crm.roles``); an account that may take a ticket but not log a call (a group
        of its own) still takes it, and its call is not logged: the ticket taken is never followed by a refusal."""
        if not request.user.has_perm("tickets.add_interaction"):
            return
        now = timezone.now()
        if started_at is None or not now - dt.timedelta(hours=4) <= started_at <= now:
            started_at = now
        services.interaction_record(
            actor=request.user, channel="phone", started_at=started_at, ended_at=now, disposition="ticket",
            ticket=ticket, customer=ticket.customer, caller_phone=ticket.caller_phone,
        )  # fmt: skip

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change)

    def response_add(self, request, obj, post_url_continue=None):
        """The agent reads the new number to the caller. Opened from a "+" beside a ticket field (a call being
        logged), the popup closes and hands the new ticket to that field, as every "+" of the admin does;
        "Save and add another" opens an empty form for the next caller; otherwise the ticket's own page."""
        if IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        messages.success(request, _("Ticket %(n)s created.") % {"n": obj.number})
        if "_addanother" in request.POST:
            url = reverse("admin:tickets_ticket_add")
            preserved = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
            return HttpResponseRedirect(add_preserved_filters(preserved, url))
        return HttpResponseRedirect(reverse("admin:tickets_ticket_change", args=[obj.pk]))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "caller_phone" in form.base_fields:
            # Typed as the caller reads it ("+84 903 123 456" too); stored normalised (customers.normalise).
            form.base_fields["caller_phone"] = CallerPhoneField(
                label=Ticket._meta.get_field("caller_phone").verbose_name
            )
        if obj is None and "unit" in form.base_fields:
            form.base_fields["unit"].required = False
            form.base_fields["unit"].help_text = _(
                "Only for an unknown caller: a customer's ticket goes to their unit."
            )
        return form

    def _move(self, request, queryset, to):
        done = 0
        for ticket in queryset:
            try:
                services.ticket_change_status(actor=request.user, ticket=ticket, to=to)
                done += 1
            except ValidationError as exc:
                messages.error(request, f"{ticket.number}: {'; '.join(exc.messages)}")
        if done:
            messages.success(request, _("%(n)d ticket(s) updated.") % {"n": done})

    @admin.action(description=gettext_lazy("Take (assign to me)"), permissions=["change"])
    def take(self, request, queryset):
        self._assign(request, queryset, request.user)

    @admin.action(description=gettext_lazy("Assign to…"), permissions=["assign"])
    def assign(self, request, queryset):
        """An intermediate page: pick one member of staff serving the tickets' units."""
        tickets = list(queryset.select_related("unit"))
        units = {t.unit_id for t in tickets}
        form = AssignForm(request.POST if "assignee" in request.POST else None, units=units)
        if form.is_bound and form.is_valid():
            self._assign(request, tickets, form.cleaned_data["assignee"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Assign tickets"),
            "opts": self.model._meta,
            "tickets": tickets,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tickets/assign.html", context)

    def has_assign_permission(self, request):
        return request.user.has_perm("tickets.assign_ticket")

    def _assign(self, request, tickets, assignee):
        done = 0
        for ticket in tickets:
            try:
                services.ticket_assign(actor=request.user, ticket=ticket, assignee=assignee)
                done += 1
            except ValidationError as exc:
                messages.error(request, f"{ticket.number}: {'; '.join(exc.messages)}")
        if done:
            messages.success(
                request,
                _("%(n)d ticket(s) assigned to %(who)s.") % {"n": done, "who": assignee.get_username()},
            )

    @admin.action(description=gettext_lazy("Acknowledge"), permissions=["change"])
    def acknowledge(self, request, queryset):
        self._move(request, queryset, Status.ACKNOWLEDGED)

    @admin.action(description=gettext_lazy("Send a crew (work order)…"), permissions=["send_crew"])
    def send_crew(self, request, queryset):
        """An intermediate page: the crew member (one serving every chosen ticket's unit, or the units'
        dispatchers) and an optional note, then one work order per ticket through ``work_order_create``."""
        tickets = list(queryset.select_related("unit"))
        form = SendCrewForm(
            request.POST if "send" in request.POST else None, units=sorted({t.unit_id for t in tickets})
        )
        if form.is_bound and form.is_valid():
            try:
                crew = crew_named(form.cleaned_data["crew"], request.user)
            except ValidationError as exc:
                report_errors(request, exc)
                return None
            for ticket in tickets:
                try:
                    order = services.work_order_create(
                        actor=request.user, ticket=ticket, crew=crew, note=form.cleaned_data["note"]
                    )
                    messages.success(request, issued_text(order))
                except ValidationError as exc:
                    messages.error(request, f"{ticket.number}: {'; '.join(exc.messages)}")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send a crew"),
            "opts": self.model._meta,
            "tickets": tickets,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tickets/send_crew.html", context)

    def has_send_crew_permission(self, request):
        return request.user.has_perm("tickets.change_ticket") and request.user.has_perm("tickets.add_workorder")

    @admin.action(description=gettext_lazy("Start work"), permissions=["change"])
    def start_work(self, request, queryset):
        self._move(request, queryset, Status.IN_PROGRESS)

    @admin.action(description=gettext_lazy("Resolve"), permissions=["change"])
    def resolve(self, request, queryset):
        self._move(request, queryset, Status.RESOLVED)

    @admin.action(description=gettext_lazy("Close"), permissions=["change"])
    def close(self, request, queryset):
        self._move(request, queryset, Status.CLOSED)

    @admin.action(description=gettext_lazy("The unit has called the customer"), permissions=["change"])
    def record_contact(self, request, queryset):
        for ticket in queryset:
            try:
                services.ticket_record_contact(actor=request.user, ticket=ticket)
            except ValidationError as exc:
                messages.error(request, f"{ticket.number}: {'; '.join(exc.messages)}")


@admin.register(TicketEvent)
class TicketEventAdmin(MaskedLookupsMixin, ReadOnlyAdmin):
    masked_lookups = {"before": privacy.RECORD, "after": privacy.RECORD}
    list_display = ["at", "ticket", "kind", "level", "actor", "note"]
    list_select_related = ["ticket", "actor"]
    list_filter = ["kind"]
    search_fields = ["ticket__number__exact"]
    fields = ["ticket", "kind", "level", "actor", "at", "before", "after", "note"]
    ordering = ["-id"]

    def get_fields(self, request, obj=None):
        # A message's event keeps the phone it went to: shown as the user may see it.
        masked = {"before": privacy.RECORD, "after": privacy.RECORD}
        return privacy.with_shown_fields(self.fields, TicketEvent, masked, request.user)


@admin.register(Category)
class CategoryAdmin(EverythingOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "is_outage", "is_active"]
    search_fields = ["code", "name"]

    def get_readonly_fields(self, request, obj=None):
        # The code is a category's key (the catalogue loader, the API, the integrations): set once, at creation.
        return ["code"] if obj is not None else []


class SlaPolicyForm(forms.ModelForm):
    """A new policy: the refusals of ``services.sla_policy_create`` (a start in the past, no resolve target or
    two, a target of 0, level 3 before level 2) show on the fields they concern, beside what was typed."""

    class Meta:
        model = SlaPolicy
        fields = [
            "category", "valid_from", "acknowledge_minutes", "contact_minutes", "resolve_minutes",
            "resolve_working_days", "callback_hours", "escalate_level2_minutes", "escalate_level3_minutes",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not self.errors:
            try:
                services.sla_policy_create_check(
                    category=data["category"], valid_from=data["valid_from"],
                    acknowledge_minutes=data["acknowledge_minutes"], contact_minutes=data["contact_minutes"],
                    resolve_minutes=data.get("resolve_minutes"), resolve_working_days=data.get("resolve_working_days"),
                    callback_hours=data["callback_hours"], escalate_level2_minutes=data["escalate_level2_minutes"],
                    escalate_level3_minutes=data["escalate_level3_minutes"],
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(self, exc)
        return data


@admin.register(SlaPolicy)
class SlaPolicyAdmin(EverythingOnlyAdminMixin, ServiceErrorsMixin, admin.ModelAdmin):
    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES  # whole numbers typed with digits only
    form = SlaPolicyForm
    list_display = [
        "category", "valid_from", "acknowledge_minutes", "contact_minutes", "resolve_minutes",
        "resolve_working_days", "callback_hours",
    ]  # fmt: skip
    list_select_related = ["category"]
    list_filter = ["category"]

    def get_readonly_fields(self, request, obj=None):
        # A policy in use is history: a change is a new policy from a later moment.
        return [f.name for f in SlaPolicy._meta.fields] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field is read-only: a policy is never changed
        data = form.cleaned_data
        policy = services.sla_policy_create(
            actor=request.user, category=data["category"], valid_from=data["valid_from"],
            acknowledge_minutes=data["acknowledge_minutes"], contact_minutes=data["contact_minutes"],
            resolve_minutes=data.get("resolve_minutes"), resolve_working_days=data.get("resolve_working_days"),
            callback_hours=data["callback_hours"], escalate_level2_minutes=data["escalate_level2_minutes"],
            escalate_level3_minutes=data["escalate_level3_minutes"],
        )  # fmt: skip
        obj.pk = policy.pk


class HolidayForm(forms.ModelForm):
    """A day the calendar cannot use (``services.holiday_day_check``) is refused on its field, beside what was
    typed."""

    class Meta:
        model = Holiday
        fields = ["day", "name"]

    def clean_day(self):
        day = self.cleaned_data["day"]
        try:
            services.holiday_day_check(day)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["day"]) from exc
        return day


@admin.register(Holiday)
class HolidayAdmin(EverythingOnlyAdminMixin, SafeListMixin, ServiceErrorsMixin, admin.ModelAdmin):
    """A day off added, moved or removed moves the open tickets' working-day deadlines: every change goes
    through ``services.holiday_save`` and ``services.holiday_delete``."""

    form = HolidayForm
    list_display = ["day", "name"]
    date_hierarchy = "day"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        holiday = services.holiday_save(
            actor=request.user, day=data["day"], name=data["name"], holiday=obj if change else None
        )
        obj.pk = holiday.pk

    def delete_model(self, request, obj):
        services.holiday_delete(actor=request.user, holiday=obj)

    def delete_queryset(self, request, queryset):
        for holiday in queryset:
            services.holiday_delete(actor=request.user, holiday=holiday)


class SuspensionForm(forms.ModelForm):
    """The refusals of a suspension's period and reason (``services.suspension_create_check``) show on their
    fields, beside what was typed."""

    class Meta:
        model = Suspension
        fields = ["category", "units", "starts_at", "ends_at", "reason"]

    def clean(self):
        data = super().clean()
        if data.get("starts_at") and data.get("ends_at") and "reason" in data:
            try:
                services.suspension_create_check(
                    starts_at=data["starts_at"], ends_at=data["ends_at"], reason=data["reason"]
                )
            except ValidationError as exc:
                add_service_errors(self, exc)
        return data


@admin.register(Suspension)
class SuspensionAdmin(RecordFieldsMixin, ServiceErrorsMixin, admin.ModelAdmin):
    """Suspensions are listed to every role (they say why intake is refused), made over the units the user
    sees only (``services.suspension_create`` holds the rule; the form offers no other) and deleted only by
    someone who sees all their units."""

    form = SuspensionForm
    list_display = ["category", "starts_at", "ends_at", "reason"]
    list_select_related = ["category"]
    filter_horizontal = ["units"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "units":
            kwargs["queryset"] = Unit.objects.for_user(request.user).order_by("code")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if not allowed or obj is None:
            return allowed
        scope = scope_for(request.user)
        return all(scope.allows_unit(unit_id) for unit_id in obj.units.values_list("pk", flat=True))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        suspension = services.suspension_create(
            actor=request.user, category=data["category"], units=list(data["units"]), starts_at=data["starts_at"],
            ends_at=data["ends_at"], reason=data["reason"],
        )  # fmt: skip
        obj.pk = suspension.pk

    def save_related(self, request, form, formsets, change):
        pass


class IncidentForm(forms.ModelForm):
    """An outage's wards are picked from its unit's list (``tickets.selectors.unit_wards``), grouped by unit;
    none picked: the whole unit. The service's refusals (``incident_open_check``) show on their fields."""

    wards = forms.MultipleChoiceField(
        label=gettext_lazy("wards"), required=False, help_text=gettext_lazy("None chosen: the whole unit."),
        widget=forms.SelectMultiple(attrs={"size": 12}),
    )  # fmt: skip

    class Meta:
        model = Incident
        fields = [
            "unit",
            "wards",
            "feeder_code",
            "transformer_code",
            "cause",
            "started_at",
            "estimated_restore_at",
        ]

    def clean(self):
        data = super().clean()
        unit, wards = data.get("unit"), data.get("wards") or []
        if unit is not None and wards:
            served = {name_key(w) for w in selectors.unit_wards(unit)}
            outside = [w for w in wards if name_key(w) not in served]
            if outside:
                self.add_error(
                    "wards",
                    _("%(unit)s does not serve: %(wards)s.")
                    % {"unit": unit.code, "wards": ", ".join(outside)},
                )
        if unit is not None and data.get("cause") and data.get("started_at"):
            try:
                services.incident_open_check(
                    unit=unit, cause=data["cause"], started_at=data["started_at"],
                    estimated_restore_at=data.get("estimated_restore_at"),
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(self, exc)
        return data


def moment_cell(at):
    """A moment in a compact list (outages, calls): day, month and time in local time, the full date on hover."""
    if at is None:
        return None  # the admin's empty value
    local = timezone.localtime(at)
    return format_html('<span title="{}">{}</span>', local_stamp(local), f"{local:%d/%m %H:%M}")


def field_label(model, name: str):
    return model._meta.get_field(name).verbose_name


@admin.register(Incident)
class IncidentAdmin(ServiceErrorsMixin, CurrentUnitMixin, ScopedAdmin):
    """Outages are entered on the units of today (``CurrentUnitMixin``): calls are taken there, so an outage on a
    unit merged away would take none."""

    # Readable at 1366 px with the estimated restore time, what a caller asks (tickets/lists.css).
    list_display = ["unit_code", "cause_text", "started", "estimated_restore", "restored", "minutes_to_restore"]
    list_select_related = ["unit"]
    list_filter = [ScopedUnitFilter]
    autocomplete_fields = ["unit"]
    fields = [
        "unit",
        "wards",
        "feeder_code",
        "transformer_code",
        "cause",
        "started_at",
        "estimated_restore_at",
    ]
    actions = ["restore_now"]
    ordering = ["-id"]
    form = IncidentForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "wards" in form.base_fields:  # the wards of the units the user may see, one group per unit
            units = Unit.objects.for_user(request.user).active().order_by("code")
            form.base_fields["wards"].choices = [
                (f"{unit.code} – {unit.name}", [(w, w) for w in selectors.unit_wards(unit)]) for unit in units
            ]
        return form

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def changelist_view(self, request, extra_context=None):
        # The list takes the whole width: no navigation sidebar beside it (the breadcrumbs and home remain).
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.display(description=gettext_lazy("unit"), ordering="unit__code")
    def unit_code(self, obj):
        return format_html('<span title="{}">{}</span>', obj.unit.name, obj.unit.code)

    @admin.display(description=field_label(Incident, "cause"), ordering="cause")
    def cause_text(self, obj):
        return format_html('<span class="cell" title="{}">{}</span>', obj.cause, obj.cause)

    @admin.display(description=field_label(Incident, "started_at"), ordering="started_at")
    def started(self, obj):
        return moment_cell(obj.started_at)

    @admin.display(description=field_label(Incident, "estimated_restore_at"), ordering="estimated_restore_at")
    def estimated_restore(self, obj):
        return moment_cell(obj.estimated_restore_at)

    @admin.display(description=gettext_lazy("restored at"), ordering="restored_at")
    def restored(self, obj):
        """When the power came back; a planned outage called off before its start says so (it restored
        nothing)."""
        return _("called off") if obj.called_off else moment_cell(obj.restored_at)

    @admin.display(description=gettext_lazy("restore minutes"))
    def minutes_to_restore(self, obj):
        return None if obj.called_off else obj.restore_minutes

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        incident = services.incident_open(
            actor=request.user, unit=data["unit"], cause=data["cause"], started_at=data["started_at"],
            wards=data.get("wards") or [], estimated_restore_at=data.get("estimated_restore_at"),
            feeder_code=data.get("feeder_code", ""), transformer_code=data.get("transformer_code", ""),
        )  # fmt: skip
        obj.pk = incident.pk

    def has_restore_permission(self, request):
        """"Power restored now" is offered to those who may restore an outage (dispatchers, supervisors), not
        to everyone who may read the list."""
        return request.user.has_perm("tickets.change_incident")

    @admin.action(
        description=gettext_lazy("Power restored now: resolve and notify its tickets"), permissions=["restore"]
    )
    def restore_now(self, request, queryset):
        """Each chosen outage is restored now; a planned one that has not started yet is called off instead."""
        for incident in queryset:
            try:
                result = services.incident_restore(actor=request.user, incident=incident)
            except ValidationError as exc:
                report_errors(request, exc)
                continue
            if result.get("called_off"):
                # A planned outage that had not started: it will not happen, and nobody was told anything.
                messages.success(
                    request,
                    _("Planned outage “%(cause)s” of %(unit)s from %(start)s called off before its start: it "
                      "takes no calls and nobody is told the power is back.") % {
                        "cause": incident.cause, "unit": incident.unit.code,
                        "start": timezone.localtime(incident.started_at).strftime("%d/%m/%Y %H:%M"),
                    },
                )  # fmt: skip
            else:
                messages.success(
                    request,
                    _("%(n)d ticket(s) resolved and their customers told.") % {"n": result["resolved"]},
                )


@admin.register(Callback)
class CallbackAdmin(ReadOnlyAdmin):
    list_display = [
        "ticket", "cycle", "outcome", "fix_score", "attitude_score", "attempts", "agent", "completed_at",
    ]  # fmt: skip
    list_select_related = ["ticket", "agent"]
    list_filter = ["outcome"]
    ordering = ["-id"]


class InteractionForm(forms.ModelForm):
    """A call or message the agent handled: when it started and how long it took, what came of it."""

    handling_seconds = WholeNumberField(
        label=gettext_lazy("handling time (seconds)"), min_value=0, max_value=24 * 3600,
        help_text=gettext_lazy("From picking up the call (or opening the message) to finishing its work."),
    )  # fmt: skip

    class Meta:
        model = Interaction
        fields = [
            "channel",
            "disposition",
            "customer",
            "ticket",
            "caller_phone",
            "unit",
            "started_at",
            "note",
        ]

    caller_phone = CallerPhoneField(label=Interaction._meta.get_field("caller_phone").verbose_name)
    # The form's one-time token: the same form posted twice logs the call once.
    submission_token = forms.CharField(
        widget=forms.HiddenInput, required=False, initial=submission_token, max_length=64
    )
    actor: Any = None  # who logs the call (``InteractionAdmin.get_form``): the service's checks are theirs

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        started = self.fields["started_at"]
        started.required = False
        started.help_text = _("Empty: the call has just ended (it started its handling time ago).")

    def clean(self):
        """The call's end (its start and handling time), then the service's refusals (``interaction_check``)
        on the fields they concern: the form comes back with them and with what the agent typed."""
        data = super().clean()
        seconds = data.get("handling_seconds")
        if seconds is None or "started_at" in self.errors:
            return data
        # Logged once the call is over: a start left empty is the handling time before now.
        if data.get("started_at") is None:
            data["started_at"] = timezone.now() - dt.timedelta(seconds=seconds)
        try:
            data["ended_at"] = data["started_at"] + dt.timedelta(seconds=seconds)
        except OverflowError:  # a start at the end of the calendar (31/12/9999)
            self.add_error("started_at", _("A call cannot start in the future."))
            return data
        if not self.errors:
            try:
                services.interaction_check(
                    actor=self.actor, started_at=data["started_at"], ended_at=data["ended_at"],
                    unit=data.get("unit"), customer=data.get("customer"), ticket=data.get("ticket"),
                    caller_phone=data.get("caller_phone", ""),
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(self, exc)
        return data


@admin.register(Interaction)
class InteractionAdmin(MaskedLookupsMixin, ServiceErrorsMixin, ReadOnlyAdmin):
    """Agents log the calls and messages they handle (``interaction_record``); nobody edits one afterwards."""

    masked_lookups = {"caller_phone": privacy.PHONE}

    # Readable at 1366 px, the ticket column included (tickets/lists.css).
    list_display = ["started", "channel", "disposition", "who", "ticket", "agent", "handling"]
    list_select_related = ["customer", "ticket", "agent"]
    list_filter = [ScopedUnitFilter, "channel", "disposition"]
    fields = [
        "unit", "customer", "ticket", "agent", "channel", "caller_phone", "started_at", "ended_at", "disposition",
        "note",
    ]  # fmt: skip
    add_fields = [
        "channel", "disposition", "customer", "ticket", "caller_phone", "started_at", "handling_seconds", "unit",
        "note", "submission_token",
    ]  # fmt: skip
    autocomplete_fields = ["customer", "ticket", "unit"]
    ordering = ["-id"]

    def has_add_permission(self, request):
        return request.user.has_perm("tickets.add_interaction")

    def changelist_view(self, request, extra_context=None):
        # The list takes the whole width: no navigation sidebar beside it (the breadcrumbs and home remain).
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    @admin.display(description=field_label(Interaction, "started_at"), ordering="started_at")
    def started(self, obj):
        return moment_cell(obj.started_at)

    @admin.display(description=field_label(Interaction, "customer"), ordering="customer__code")
    def who(self, obj):
        if obj.customer is None:
            return None
        text = str(obj.customer)
        return format_html('<span class="cell" title="{}">{}</span>', text, text)

    @admin.display(description=gettext_lazy("handling time (seconds)"))
    def handling(self, obj):
        return obj.handling_seconds

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type("InteractionForm", (InteractionForm,), {"actor": request.user})
            kwargs["fields"] = self.add_fields
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            form.base_fields["unit"].required = False
            form.base_fields["unit"].help_text = _(
                "Only when no customer or ticket is named and you serve several units."
            )
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return privacy.with_shown_fields(
            self.fields, Interaction, {"caller_phone": privacy.PHONE}, request.user
        )

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("channel", "phone")
        return initial

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        token = data.get("submission_token") or None
        logged = token is not None and Interaction.objects.filter(agent=request.user, submission_key=token).exists()
        interaction = services.interaction_record(
            actor=request.user, channel=data["channel"], disposition=data["disposition"],
            started_at=data["started_at"], ended_at=data["ended_at"], customer=data.get("customer"),
            ticket=data.get("ticket"), unit=data.get("unit"), caller_phone=data.get("caller_phone", ""),
            note=data.get("note", ""), token=token,
        )  # fmt: skip
        obj.pk = interaction.pk
        if logged:
            messages.warning(request, _("This call was already logged; it was not logged again."))
        else:
            messages.success(request, _("Call logged."))

    def save_related(self, request, form, formsets, change):
        pass

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:tickets_interaction_changelist"))


@admin.register(WorkOrder)
class WorkOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "ticket",
        "unit",
        "crew",
        "status",
        "issued_at",
        "contact_minutes",
        "done_at",
        "resolution_code",
    ]
    list_select_related = ["ticket", "unit", "crew"]
    list_filter = [ScopedUnitFilter, "status", "resolution_code"]
    search_fields = ["ticket__number__exact"]
    ordering = ["-id"]
    actions = ["give_to_crew"]
    change_form_template = "admin/tickets/workorder/change_form.html"

    def get_urls(self):
        return [
            path(
                "<int:object_id>/assign/",
                self.admin_site.admin_view(self.assign_view),
                name="tickets_workorder_assign",
            ),
            *super().get_urls(),
        ]

    def has_send_crew_permission(self, request) -> bool:
        return request.user.has_perm("tickets.add_workorder")

    @admin.display(description=gettext_lazy("minutes to contact the customer"))
    def contact_minutes(self, order):
        """The model's ``contact_minutes`` (from issue to the customer call), under a translated header."""
        return order.contact_minutes

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The work order's page: its details and, while it is open, whom to give it to instead."""
        order = self.get_object(request, object_id)
        if order is not None and request.method == "GET":
            crew_choices = []
            if self.has_send_crew_permission(request) and order.status not in ("done", "cancelled"):
                crew_choices = selectors.crew_choices(order.unit_id)
            extra_context = {
                **(extra_context or {}),
                "crew_choices": crew_choices,
                "assign_url": reverse("admin:tickets_workorder_assign", args=[order.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def assign_view(self, request, object_id: int):
        """Give the work order to a crew member (or back to the unit's dispatchers) through
        ``work_order_assign``, from its own page or its ticket's; a refusal says why and changes nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_send_crew_permission(request):
            raise PermissionDenied
        order = self.get_queryset(request).select_related("ticket").filter(pk=object_id).first()
        if order is None:
            raise Http404(_("No such work order in your units."))
        if request.POST.get("back") == "ticket":
            page = reverse("admin:tickets_ticket_change", args=[order.ticket_id])
        else:
            page = reverse("admin:tickets_workorder_change", args=[order.pk])
        try:
            crew = crew_named(request.POST.get("crew", ""), request.user)
            order = services.work_order_assign(actor=request.user, order=order, crew=crew)
        except ValidationError as exc:
            report_errors(request, exc)
            return HttpResponseRedirect(page)
        messages.success(
            request,
            _("Work order %(o)s is now with %(who)s.")
            % {"o": order, "who": order.crew.get_username() if order.crew else _("the unit's dispatchers")},
        )
        return HttpResponseRedirect(page)

    @admin.action(description=gettext_lazy("Give to a crew member…"), permissions=["send_crew"])
    def give_to_crew(self, request, queryset):
        """An intermediate page: one crew member serving every chosen order's unit (or the units'
        dispatchers); each order goes through ``work_order_assign``."""
        orders = list(queryset.select_related("ticket", "unit", "crew"))
        form = SendCrewForm(
            request.POST if "send" in request.POST else None, units=sorted({o.unit_id for o in orders})
        )
        del form.fields["note"]
        if form.is_bound and form.is_valid():
            try:
                crew = crew_named(form.cleaned_data["crew"], request.user)
            except ValidationError as exc:
                report_errors(request, exc)
                return None
            done = 0
            for order in orders:
                try:
                    services.work_order_assign(actor=request.user, order=order, crew=crew)
                    done += 1
                except ValidationError as exc:
                    messages.error(request, f"{order}: {'; '.join(exc.messages)}")
            if done:
                messages.success(
                    request,
                    _("%(n)d work order(s) given to %(who)s.")
                    % {"n": done, "who": crew.get_username() if crew else _("the unit's dispatchers")},
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Give work orders to a crew member"),
            "opts": self.model._meta,
            "orders": orders,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/tickets/workorder/give_to_crew.html", context)
