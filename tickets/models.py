"""Tickets: every request of every channel, the service catalogue with its time limits, and the clocks.

Every deadline is a stored timestamp computed at intake from the policy in force then (policies are dated,
so a change never rewrites open tickets); the SLA sweep (``tickets.sla``) acts on what is due, using
``next_check_at``, which always holds the earliest moment the sweep has something to do for a ticket.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.text import DESCRIPTION_MAX_CHARS, NOTE_MAX_CHARS, name_key
from core.times import local_stamp
from crm.models import Unit
from crm.scoping import ScopedQuerySet
from customers.models import Contract, Customer


class Holiday(models.Model):
    """A Vietnamese public holiday (a day off for working-day targets). Kept as data: Tết moves every year."""

    day = models.DateField(_("day"), unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("public holiday")
        verbose_name_plural = _("public holidays")
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.name}"


class Category(models.Model):
    """A kind of request in the service catalogue (outage, new connection, bill complaint…)."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    is_outage = models.BooleanField(
        _("outage or fault"), default=False, help_text=_("Outage reports are never suspended.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("request category")
        verbose_name_plural = _("request categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SlaPolicy(models.Model):
    """The time limits of a category from a moment on. A new policy applies to tickets taken after it starts."""

    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="policies", verbose_name=_("category")
    )
    valid_from = models.DateTimeField(_("valid from"))
    acknowledge_minutes = models.PositiveIntegerField(_("acknowledge within (minutes)"), default=3)
    contact_minutes = models.PositiveIntegerField(_("unit calls the customer within (minutes)"), default=4)
    # A target of 0 would breach every ticket the moment it is taken.
    resolve_minutes = models.PositiveIntegerField(
        _("resolve within (minutes)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    resolve_working_days = models.PositiveSmallIntegerField(
        _("resolve within (working days)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    # With 0, every callback would be overdue the moment its ticket is resolved.
    callback_hours = models.PositiveSmallIntegerField(
        _("call back within (hours after resolution)"), default=24, validators=[MinValueValidator(1)]
    )
    escalate_level2_minutes = models.PositiveIntegerField(
        _("escalate to the supervisor (minutes after the first breach)"), default=30
    )
    escalate_level3_minutes = models.PositiveIntegerField(
        _("escalate to the company manager (minutes after the first breach)"), default=120
    )

    class Meta:
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        ordering = ["category", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["category", "valid_from"], name="tickets_policy_unique_start"),
            models.CheckConstraint(
                condition=Q(resolve_minutes__isnull=False, resolve_working_days__isnull=True)
                | Q(resolve_minutes__isnull=True, resolve_working_days__isnull=False),
                name="tickets_policy_one_resolve_target",
                violation_error_code="one_resolve_target",
                violation_error_message=_("Choose exactly one resolve target: in minutes or in working days."),
            ),
            models.CheckConstraint(
                condition=Q(escalate_level3_minutes__gte=models.F("escalate_level2_minutes")),
                name="tickets_policy_levels_in_order",
                violation_error_code="levels_in_order",
                violation_error_message=_("Level 3 comes after level 2."),
            ),
            models.CheckConstraint(
                condition=Q(callback_hours__gte=1),
                name="tickets_policy_callback_at_least_an_hour",
                violation_error_code="callback_at_least_an_hour",
                violation_error_message=_(
                    "At least 1 hour: with 0, every callback would be overdue the moment its ticket is resolved."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} @ {self.valid_from:%Y-%m-%d}"


class Suspension(models.Model):
    """A category suspended for a period in some units (as new connections were during the 2021 lockdowns)."""

    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="suspensions", verbose_name=_("category")
    )
    units = models.ManyToManyField(Unit, related_name="suspensions", verbose_name=_("units"))
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    reason = models.TextField(_("reason"), max_length=NOTE_MAX_CHARS)

    class Meta:
        verbose_name = _("service suspension")
        verbose_name_plural = _("service suspensions")
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="tickets_suspension_period",
                violation_error_code="suspension_period",
                violation_error_message=_("A suspension ends after it starts."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.starts_at:%Y-%m-%d} – {self.ends_at:%Y-%m-%d}"


class IncidentQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def open(self):
        return self.filter(restored_at__isnull=True)

    def happened(self):
        """The outages that took place: not the planned ones called off before their start (closed at their
        start, in no minutes, they restored nothing)."""
        return self.filter(called_off_at__isnull=True)


class CalledOffAtField(models.DateTimeField):
    """The moment a planned outage was called off. Its column carries the rule that an outage called off is
    closed (its ``restored_at`` set) as a CHECK of its own: it is added with the column (ALTER TABLE … ADD
    COLUMN), where a table constraint would make SQLite rebuild the table."""

    def db_check(self, connection):
        quote = connection.ops.quote_name
        restored = self.model._meta.get_field("restored_at").column
        return f"{quote(self.column)} IS NULL OR {quote(restored)} IS NOT NULL"


class Incident(models.Model):
    """An outage in an area (a unit, some wards, optionally a feeder or transformer): calls about it are linked
    to it, and restoring it resolves them and tells their customers."""

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="incidents", verbose_name=_("unit"))
    wards = models.JSONField(_("wards"), default=list, blank=True, help_text=_("Empty: the whole unit."))
    feeder_code = models.CharField(_("feeder"), max_length=40, blank=True)
    transformer_code = models.CharField(_("transformer station"), max_length=40, blank=True)
    cause = models.CharField(_("cause"), max_length=300)
    started_at = models.DateTimeField(_("started at"))
    estimated_restore_at = models.DateTimeField(_("estimated restore at"), null=True, blank=True)
    restored_at = models.DateTimeField(_("restored at"), null=True, blank=True)
    # A planned outage called off before its start is closed at its start (``restored_at``) and marked here, so
    # that the restore figures leave it out (``IncidentQuerySet.happened``).
    called_off_at = CalledOffAtField(_("called off at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )

    objects = IncidentQuerySet.as_manager()

    class Meta:
        verbose_name = _("outage incident")
        verbose_name_plural = _("outage incidents")
        constraints = [
            models.CheckConstraint(
                condition=Q(restored_at__isnull=True) | Q(restored_at__gte=models.F("started_at")),
                name="tickets_incident_restored_after_start",
            )
        ]
        indexes = [
            models.Index(
                fields=["unit"], condition=Q(restored_at__isnull=True), name="tickets_incident_open_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.unit.code} {local_stamp(self.started_at)} {self.cause}"

    @property
    def called_off(self) -> bool:
        return self.called_off_at is not None

    @property
    def restore_minutes(self) -> int | None:
        if self.restored_at is None:
            return None
        return int((self.restored_at - self.started_at).total_seconds() // 60)

    def covers(self, *, unit_id: int, ward: str) -> bool:
        """Whether the outage reaches an address of unit ``unit_id`` in ``ward``: the whole unit, or a ward it
        names however either is spelled ("phường Bến Nghé" typed by a clerk, "Phường Bến Nghé" picked from the
        list: ``core.text.name_key``)."""
        if self.unit_id != unit_id:
            return False
        return not self.wards or name_key(ward) in {name_key(w) for w in self.wards}


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    CHAT = "chat", _("Web chat")
    SMS = "sms", _("SMS")
    APP = "app", _("Mobile app")
    WEBSITE = "website", _("Website")
    ZALO = "zalo", _("Zalo")
    PORTAL = "portal", _("Public-service portal")
    ASSISTANT = "assistant", _("Virtual assistant")


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


class Status(models.TextChoices):
    NEW = "new", _("New")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    DISPATCHED = "dispatched", _("Dispatched")
    IN_PROGRESS = "in_progress", _("In progress")
    PENDING_CUSTOMER = "pending_customer", _("Pending the customer")
    RESOLVED = "resolved", _("Resolved")
    REOPENED = "reopened", _("Reopened")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")
    DUPLICATE = "duplicate", _("Duplicate")


OPEN_STATUSES = [
    Status.NEW,
    Status.ACKNOWLEDGED,
    Status.DISPATCHED,
    Status.IN_PROGRESS,
    Status.PENDING_CUSTOMER,
    Status.REOPENED,
]

# "Breaching soon": a ticket with a deadline not yet met and not yet breached falling within this much time,
# whatever its escalation level (a deadline met late stops the ladder; the next one is warned of like any
# other). One rule for the queue, the breaches page's "due soon" and the colour of the list's time left.
DUE_SOON = dt.timedelta(minutes=30)

# Each deadline of a ticket: its moment, the moment it was met, its breach flag.
DEADLINES = (
    ("acknowledge_due", "acknowledged_at", "acknowledge_breached"),
    ("contact_due", "contacted_at", "contact_breached"),
    ("resolve_due", "resolved_at", "resolve_breached"),
)


def due_soon(now: dt.datetime) -> Q:
    """The open tickets' condition of breaching within ``DUE_SOON`` of ``now``: a deadline neither met nor
    breached falls by then. ``next_check_at`` is never later than such a deadline, and is empty while the ticket
    waits for the customer or is no longer open, so it narrows the rows through the sweep's partial index
    before the deadlines decide."""
    soon = now + DUE_SOON
    deadline_near = Q()
    for due, met, breached in DEADLINES:
        deadline_near |= Q(**{f"{due}__lte": soon, f"{met}__isnull": True, breached: False})
    return Q(next_check_at__lte=soon) & deadline_near


class TicketQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def open(self):
        return self.filter(status__in=OPEN_STATUSES)


class Ticket(models.Model):
    """One request of a customer (or an unknown caller), routed to the unit responsible for the address."""

    number = models.CharField(_("number"), max_length=12, editable=False)
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets",
        verbose_name=_("customer"),
        db_index=False,
    )
    contract = models.ForeignKey(
        Contract,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets",
        verbose_name=_("contract"),
        db_index=False,
    )
    caller_name = models.CharField(_("caller's name"), max_length=200, blank=True)
    caller_phone = models.CharField(_("caller's phone"), max_length=13, blank=True)
    caller_address = models.CharField(_("caller's address"), max_length=300, blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("category"), db_index=False
    )
    policy = models.ForeignKey(
        SlaPolicy,
        on_delete=models.PROTECT,
        related_name="tickets",
        verbose_name=_("SLA policy"),
        db_index=False,
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    priority = models.CharField(
        _("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL
    )
    description = models.TextField(_("description"), max_length=DESCRIPTION_MAX_CHARS)
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="tickets",
        verbose_name=_("responsible unit"),
        db_index=False,
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        verbose_name=_("assignee"),
        db_index=False,
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.NEW)
    incident = models.ForeignKey(
        Incident,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets",
        verbose_name=_("outage incident"),
        db_index=False,
    )
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="duplicates",
        verbose_name=_("duplicate of"),
        db_index=False,
    )
    created_at = models.DateTimeField(_("received at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("taken by"),
        db_index=False,
    )
    # The clocks: stored deadlines, breach flags, and the moment the sweep next has something to do.
    acknowledge_due = models.DateTimeField(_("acknowledge by"))
    contact_due = models.DateTimeField(_("contact the customer by"))
    resolve_due = models.DateTimeField(_("resolve by"))
    callback_due = models.DateTimeField(_("call back by"), null=True, blank=True)
    # When the callback sweep found the deadline passed with the callback not finished (None: not overdue, or
    # not yet swept); a new resolution clears it.
    callback_overdue_at = models.DateTimeField(_("callback overdue since"), null=True, blank=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    contacted_at = models.DateTimeField(_("customer contacted at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    paused_at = models.DateTimeField(_("waiting for the customer since"), null=True, blank=True)
    acknowledge_breached = models.BooleanField(_("acknowledge breached"), default=False)
    contact_breached = models.BooleanField(_("contact breached"), default=False)
    resolve_breached = models.BooleanField(_("resolve breached"), default=False)
    first_breach_at = models.DateTimeField(_("first breached at"), null=True, blank=True)
    # A reopen starts the contact and resolve clocks again; a deadline missed in an earlier cycle stays missed
    # in the figures (the first such deadline; None: never missed before the current cycle).
    contact_missed_before = models.DateTimeField(
        _("contact deadline missed in an earlier cycle"), null=True, blank=True
    )
    resolve_missed_before = models.DateTimeField(
        _("resolve deadline missed in an earlier cycle"), null=True, blank=True
    )
    escalation_level = models.PositiveSmallIntegerField(
        _("escalation level"), default=0, validators=[MaxValueValidator(3), MinValueValidator(0)]
    )
    next_check_at = models.DateTimeField(_("next SLA check"), null=True, blank=True)
    # How many times the ticket was reopened: its current cycle of clocks and escalations (the sweep reads it
    # with the row instead of counting the reopen events of each ticket it escalates).
    cycle = models.PositiveSmallIntegerField(_("times reopened"), default=0, db_default=0)

    objects = TicketQuerySet.as_manager()

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        permissions = [
            ("reroute_ticket", _("Can send a ticket to another unit")),
            ("assign_ticket", _("Can assign a ticket to another member of staff")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["number"], name="tickets_ticket_number_unique"),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="tickets_ticket_status_valid"),
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values), name="tickets_ticket_channel_valid"
            ),
            models.CheckConstraint(condition=Q(escalation_level__lte=3), name="tickets_ticket_level_max"),
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | ~Q(caller_phone="") | ~Q(caller_name=""),
                name="tickets_ticket_who_called",
                violation_error_code="who_called",
                violation_error_message=_("For an unknown caller, take at least a phone number or a name."),
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.DUPLICATE) | Q(duplicate_of__isnull=False),
                name="tickets_ticket_duplicate_of",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[Status.RESOLVED, Status.CLOSED]) | Q(resolved_at__isnull=False),
                name="tickets_ticket_resolved_at",
            ),
        ]
        indexes = [
            # Only the rows that have them: most tickets have no contract, assignee, incident or duplicate.
            models.Index(
                fields=["contract"], condition=Q(contract__isnull=False), name="tickets_contract_idx"
            ),
            models.Index(
                fields=["assignee", "status"],
                condition=Q(assignee__isnull=False),
                name="tickets_assignee_idx",
            ),
            models.Index(
                fields=["incident"], condition=Q(incident__isnull=False), name="tickets_incident_idx"
            ),
            models.Index(
                fields=["duplicate_of"],
                condition=Q(duplicate_of__isnull=False),
                name="tickets_duplicate_of_idx",
            ),
            models.Index(fields=["unit", "status", "-id"], name="tickets_unit_status_idx"),
            models.Index(fields=["customer", "-id"], name="tickets_customer_idx"),
            # The dashboard: a unit's tickets over a period.
            models.Index(fields=["unit", "created_at"], name="tickets_unit_created_idx"),
            # The sweep reads only tickets with something due: its cost follows the due items, not the table.
            models.Index(
                fields=["next_check_at"],
                condition=Q(next_check_at__isnull=False),
                name="tickets_next_check_idx",
            ),
            # The callback sweep reads only resolved tickets whose callback it has not yet found overdue.
            models.Index(
                fields=["callback_due"],
                condition=Q(status=Status.RESOLVED, callback_overdue_at__isnull=True),
                name="tickets_callback_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class IntakeKey(models.Model):
    """An ``Idempotency-Key`` as its sender used it: the key belongs to the authenticated user who sent it (two
    callers' keys never meet), with a hash of the request it came with. Claimed before the ticket is numbered,
    so a request that loses a race for its key takes no number; a retry gets the first ticket, the same key
    with another request is refused."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("sent by"),
        db_index=False,  # the unique (owner, key) index serves it
    )
    key = models.CharField(_("idempotency key"), max_length=100)
    request_hash = models.CharField(_("hash of the request"), max_length=64, blank=True)
    ticket = models.OneToOneField(
        "Ticket",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="intake_key",
        verbose_name=_("ticket"),
    )
    created_at = models.DateTimeField(_("received at"))

    class Meta:
        verbose_name = _("intake idempotency key")
        verbose_name_plural = _("intake idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="tickets_intakekey_owner_key"),
            # Keys sent with no user (the system's own intakes) are unique among themselves.
            models.UniqueConstraint(
                fields=["key"], condition=Q(owner__isnull=True), name="tickets_intakekey_system_key"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class TicketCounter(models.Model):
    """The last ticket number given in a year; incremented in the database, so two intakes never share one."""

    year = models.PositiveSmallIntegerField(primary_key=True, verbose_name=_("year"))
    last = models.PositiveIntegerField(default=0, verbose_name=_("last number"))

    class Meta:
        verbose_name = _("ticket counter")
        verbose_name_plural = _("ticket counters")

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    STATUS = "status", _("Status changed")
    ROUTED = "routed", _("Re-routed")
    ASSIGNED = "assigned", _("Assigned")
    CONTACTED = "contacted", _("Customer contacted")
    BREACH = "breach", _("Deadline breached")
    ESCALATED = "escalated", _("Escalated")
    NOTE = "note", _("Note")
    LINKED = "linked", _("Linked to an outage incident")
    CALLBACK = "callback", _("Callback")
    CALLBACK_OVERDUE = "cb_overdue", _("Callback overdue")
    MESSAGE = "message", _("Message to the customer")
    ATTACHMENT = "attachment", _("Attachment")
    DEADLINE = "deadline", _("Deadline moved")  # a public holiday added or removed moved it


class TicketEventQuerySet(ScopedQuerySet):
    scope_path = "ticket__unit"


class TicketEvent(models.Model):
    """One change to a ticket: who, when, before and after. Never edited."""

    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="events", verbose_name=_("ticket")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
        db_index=False,
    )
    at = models.DateTimeField(_("at"))
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)
    level = models.PositiveSmallIntegerField(_("escalation level"), null=True, blank=True)
    # How many times the ticket had been reopened when this happened: a reopened ticket's clocks and its
    # escalation ladder start again, and each cycle escalates once per level. Its default is the database's
    # too, for the rows written in SQL (the benchmark's sweep).
    cycle = models.PositiveSmallIntegerField(_("times reopened"), default=0, db_default=0)

    objects = TicketEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        constraints = [
            # One escalation event per level, ticket and cycle, whatever sweeps run at once.
            models.UniqueConstraint(
                fields=["ticket", "cycle", "level"],
                condition=Q(kind="escalated"),
                name="tickets_event_one_escalation_per_level",
            ),
            # A callback is found overdue once per resolution (the callback sweep).
            models.UniqueConstraint(
                fields=["ticket", "cycle"],
                condition=Q(kind="cb_overdue"),
                name="tickets_event_one_callback_overdue",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket} {self.get_kind_display()} @ {local_stamp(self.at)}"


class CallbackOutcome(models.TextChoices):
    SURVEYED = "surveyed", _("Customer answered the survey")
    UNREACHABLE = "unreachable", _("Unreachable")


class CallbackQuerySet(ScopedQuerySet):
    scope_path = "ticket__unit"


class Callback(models.Model):
    """The centre's call after resolution: satisfaction with the fix and with the staff, or unreachable.

    One per resolution: a reopened ticket resolved again gets a new callback for its new cycle, and the earlier
    ones stay (the survey a customer answered counts in the satisfaction figures of its period whatever happens
    to the ticket later). The queue and the survey form work on the row of the ticket's current cycle."""

    ticket = models.ForeignKey(
        Ticket,
        on_delete=models.CASCADE,
        related_name="callbacks",
        verbose_name=_("ticket"),
        db_index=False,  # the unique (ticket, cycle) index serves it
    )
    # The ticket's cycle (``Ticket.cycle``: how many times it had been reopened) the callback follows.
    cycle = models.PositiveSmallIntegerField(_("times reopened"), default=0, db_default=0)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    outcome = models.CharField(_("outcome"), max_length=12, choices=CallbackOutcome.choices, blank=True)
    fix_score = models.PositiveSmallIntegerField(
        _("satisfaction with the fix (1–5)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    attitude_score = models.PositiveSmallIntegerField(
        _("satisfaction with the staff (1–5)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    comment = models.TextField(_("comment"), blank=True, max_length=NOTE_MAX_CHARS)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("agent"),
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    objects = CallbackQuerySet.as_manager()

    class Meta:
        verbose_name = _("callback")
        verbose_name_plural = _("callbacks")
        constraints = [
            models.UniqueConstraint(fields=["ticket", "cycle"], name="tickets_callback_one_per_cycle"),
            models.CheckConstraint(
                condition=Q(fix_score__isnull=True) | Q(fix_score__gte=1, fix_score__lte=5),
                name="tickets_callback_fix_1_5",
            ),
            models.CheckConstraint(
                condition=Q(attitude_score__isnull=True) | Q(attitude_score__gte=1, attitude_score__lte=5),
                name="tickets_callback_attitude_1_5",
            ),
            models.CheckConstraint(
                condition=~Q(outcome="surveyed") | Q(fix_score__isnull=False, attitude_score__isnull=False),
                name="tickets_callback_survey_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket} {self.outcome or '…'}"


class Disposition(models.TextChoices):
    TICKET = "ticket", _("Request taken")
    INFORMATION = "information", _("Information given")
    TRANSFERRED = "transferred", _("Transferred")
    DROPPED = "dropped", _("Dropped")
    NUISANCE = "nuisance", _("Nuisance call")


class InteractionQuerySet(ScopedQuerySet):
    scope_path = "unit"


class Interaction(models.Model):
    """One call or message handled by an agent: handling time, channel and what came of it."""

    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="interactions", verbose_name=_("unit")
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="interactions",
        verbose_name=_("customer"),
    )
    ticket = models.ForeignKey(
        Ticket,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="interactions",
        verbose_name=_("ticket"),
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("agent")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    caller_phone = models.CharField(_("caller's phone"), max_length=13, blank=True)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"))
    disposition = models.CharField(_("disposition"), max_length=12, choices=Disposition.choices)
    note = models.TextField(_("note"), blank=True, max_length=NOTE_MAX_CHARS)
    # The one-time token of the form it was logged from: the same form posted twice logs the call once.
    submission_key = models.CharField(max_length=64, null=True, blank=True, editable=False)

    objects = InteractionQuerySet.as_manager()

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__gte=models.F("started_at")), name="tickets_interaction_times"
            ),
            models.UniqueConstraint(
                fields=["agent", "submission_key"], condition=Q(submission_key__isnull=False),
                name="tickets_interaction_submitted_once",
            ),
        ]
        indexes = [models.Index(fields=["unit", "-started_at"], name="tickets_interaction_unit_idx")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {local_stamp(self.started_at)}"

    @property
    def handling_seconds(self) -> int:
        return int((self.ended_at - self.started_at).total_seconds())


class WorkOrderStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged by the crew")
    CONTACTED = "contacted", _("Customer contacted")
    ON_SITE = "on_site", _("On site")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class ResolutionCode(models.TextChoices):
    FIXED = "fixed", _("Fault fixed")
    RESTORED_BY_NETWORK = "network", _("Restored with the network")
    CUSTOMER_SIDE = "customer_side", _("Fault on the customer's side")
    METER_REPLACED = "meter_replaced", _("Meter replaced")
    NO_FAULT = "no_fault", _("No fault found")
    CONNECTED = "connected", _("Connected")


class WorkOrderQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def open(self):
        return self.exclude(status__in=[WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED])


class WorkOrder(models.Model):
    """A job for a unit's field crew (*phiếu lệnh*), made from a ticket and followed step by step."""

    ticket = models.ForeignKey(
        Ticket, on_delete=models.PROTECT, related_name="work_orders", verbose_name=_("ticket")
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="work_orders", verbose_name=_("unit"), db_index=False
    )
    crew = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="work_orders",
        verbose_name=_("crew member"),
    )  # fmt: skip
    status = models.CharField(
        _("status"), max_length=12, choices=WorkOrderStatus.choices, default=WorkOrderStatus.ISSUED
    )
    issued_at = models.DateTimeField(_("issued at"))
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    contacted_at = models.DateTimeField(_("customer contacted at"), null=True, blank=True)
    on_site_at = models.DateTimeField(_("on site at"), null=True, blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)
    resolution_code = models.CharField(
        _("resolution"), max_length=16, choices=ResolutionCode.choices, blank=True
    )
    note = models.TextField(_("note"), blank=True)

    objects = WorkOrderQuerySet.as_manager()

    class Meta:
        verbose_name = _("work order")
        verbose_name_plural = _("work orders")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=WorkOrderStatus.values), name="tickets_workorder_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="done") | (Q(done_at__isnull=False) & ~Q(resolution_code="")),
                name="tickets_workorder_done_has_resolution",
            ),
        ]
        indexes = [models.Index(fields=["unit", "status", "-id"], name="tickets_workorder_unit_idx")]

    def __str__(self) -> str:
        return f"{self.ticket.number}/{self.pk}"

    @property
    def contact_minutes(self) -> float | None:
        """Minutes from issue to the customer call (the unit's target is 4)."""
        if self.contacted_at is None:
            return None
        return round((self.contacted_at - self.issued_at).total_seconds() / 60, 1)


class NoteQuerySet(ScopedQuerySet):
    scope_path = "ticket__unit"


class TicketNote(models.Model):
    """Something written on a ticket: an internal note for staff, or a message sent to the customer.

    The two never mix: internal notes are never sent, and a message to the customer is written once, sent
    through the outbox and kept as it was sent.
    """

    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="notes", verbose_name=_("ticket")
    )
    to_customer = models.BooleanField(
        _("message to the customer"),
        default=False,
        help_text=_(
            "Sent to the customer's phone (or e-mail); otherwise an internal note seen only by staff."
        ),
    )
    body = models.TextField(_("text"), max_length=DESCRIPTION_MAX_CHARS)
    recipient = models.CharField(_("sent to"), max_length=254, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("at"))
    # The one-time token of the form it was written from: the same form posted twice writes (and sends) once.
    submission_key = models.CharField(max_length=64, null=True, blank=True, editable=False)

    objects = NoteQuerySet.as_manager()

    class Meta:
        verbose_name = _("ticket note")
        verbose_name_plural = _("ticket notes")
        indexes = [models.Index(fields=["ticket", "created_at"], name="tickets_note_ticket_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(body=""), name="tickets_note_body_not_empty"),
            models.CheckConstraint(
                condition=Q(to_customer=False) | ~Q(recipient=""), name="tickets_note_message_has_recipient"
            ),
            models.UniqueConstraint(
                fields=["ticket", "submission_key"], condition=Q(submission_key__isnull=False),
                name="tickets_note_submitted_once",
            ),
        ]

    def __str__(self) -> str:
        kind = _("message") if self.to_customer else _("internal note")
        return f"{self.ticket.number} {kind} @ {local_stamp(self.created_at)}"


# The type a file on a ticket is stored and served as follows from its extension (one of
# TONGDAI_ATTACHMENT_TYPES), never from the type the uploader's browser claimed: a ".txt" claimed as text/html
# is served as text/plain. An extension not listed here is served as application/octet-stream.
ATTACHMENT_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "heic": "image/heic",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "txt": "text/plain",
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "eml": "message/rfc822",
}


def attachment_content_type(name: str) -> str:
    """The type a file named ``name`` is served as (its extension's, case-insensitively)."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ATTACHMENT_CONTENT_TYPES.get(extension, "application/octet-stream")


def attachment_path(instance: TicketAttachment, filename: str) -> str:
    # The stored name never uses the uploaded one (which is kept in ``name``): no collisions, no odd characters.
    return f"tickets/{instance.ticket.created_at:%Y/%m}/{uuid.uuid4().hex}"


class TicketAttachment(models.Model):
    """A file on a ticket (a photo of the meter, a scanned request form). Served only to staff who see it."""

    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("ticket")
    )
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=200)
    name = models.CharField(_("file name"), max_length=200)
    content_type = models.CharField(_("type"), max_length=100)  # attachment_content_type(name)
    size = models.PositiveIntegerField(_("size (bytes)"))
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )  # fmt: skip
    uploaded_at = models.DateTimeField(_("at"))

    objects = NoteQuerySet.as_manager()

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return f"{self.ticket.number}: {self.name}"
