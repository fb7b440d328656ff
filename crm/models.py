"""The organisation (corporation → company → unit) and the staff who work in it.

Units are the district power offices (*Điện lực*) that own customers, meters and, later, tickets. Units are
dated: when two units merge, both old ones get a ``valid_to`` and point at their ``successor``; records keep
the unit of their time, and the successor's staff still see them (see ``crm.scoping``).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from knox.models import AbstractAuthToken

from core.times import local_stamp
from crm.scoping import ScopedQuerySet

UNIT_CODE_VALIDATOR = RegexValidator(
    r"^[A-Z]{2}[0-9]{4}$", _("A unit code is two capital letters and four digits, e.g. PE0101.")
)
COMPANY_CODE_VALIDATOR = RegexValidator(
    r"^[A-Z]{2}[0-9]{2}$", _("A company code is two capital letters and two digits, e.g. PE01.")
)
PREFIX_VALIDATOR = RegexValidator(r"^[A-Z]{2}$", _("A code prefix is two capital letters, e.g. PE."))


class DatedQuerySet(ScopedQuerySet):
    def active_on(self, day: dt.date):
        return self.filter(Q(valid_from__lte=day), Q(valid_to__isnull=True) | Q(valid_to__gte=day))

    def active(self):
        from django.utils import timezone

        return self.active_on(timezone.localdate())


class Dated(models.Model):
    valid_from = models.DateField(_("valid from"), default=dt.date(2010, 1, 1))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="%(app_label)s_%(class)s_valid_range",
            )
        ]

    def is_active_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class CorporationQuerySet(DatedQuerySet):
    scope_path = "companies__units"
    scope_through_many = True


class Corporation(Dated):
    """One of EVN's five power corporations (EVNNPC, EVNCPC, EVNSPC, EVNHANOI, EVNHCMC)."""

    code = models.CharField(_("code"), max_length=16, unique=True)
    name = models.CharField(_("name"), max_length=200)
    code_prefix = models.CharField(
        _("code prefix"),
        max_length=2,
        unique=True,
        validators=[PREFIX_VALIDATOR],
        help_text=_("First two letters of the codes of its companies, units and customers."),
    )

    objects = CorporationQuerySet.as_manager()

    class Meta(Dated.Meta):
        verbose_name = _("power corporation")
        verbose_name_plural = _("power corporations")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


class CompanyQuerySet(DatedQuerySet):
    scope_path = "units"
    scope_through_many = True


class Company(Dated):
    """A provincial or city power company (*Công ty Điện lực*), owned by a corporation."""

    corporation = models.ForeignKey(
        Corporation, on_delete=models.PROTECT, related_name="companies", verbose_name=_("corporation")
    )
    code = models.CharField(_("code"), max_length=4, unique=True, validators=[COMPANY_CODE_VALIDATOR])
    name = models.CharField(_("name"), max_length=200)
    province = models.CharField(_("province or city"), max_length=100)

    objects = CompanyQuerySet.as_manager()

    class Meta(Dated.Meta):
        verbose_name = _("power company")
        verbose_name_plural = _("power companies")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


class UnitQuerySet(DatedQuerySet):
    scope_path = "pk"


class Unit(Dated):
    """A district power office (*Điện lực*): the owner of customers, meters and the work in its area."""

    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="units", verbose_name=_("company")
    )
    code = models.CharField(_("code"), max_length=6, unique=True, validators=[UNIT_CODE_VALIDATOR])
    name = models.CharField(_("name"), max_length=200)
    district = models.CharField(_("district"), max_length=100, help_text=_("As written in addresses."))
    successor = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="predecessors",
        verbose_name=_("merged into"),
    )

    objects = UnitQuerySet.as_manager()

    class Meta(Dated.Meta):
        verbose_name = _("unit")
        verbose_name_plural = _("units")
        ordering = ["code"]
        constraints = [
            *Dated.Meta.constraints,
            models.CheckConstraint(
                condition=Q(successor__isnull=True) | Q(valid_to__isnull=False),
                name="crm_unit_successor_needs_end",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} – {self.name}"


class Role(models.TextChoices):
    AGENT = "agent", _("Call-centre agent")
    SUPERVISOR = "supervisor", _("Supervisor")
    DISPATCHER = "dispatcher", _("Unit dispatcher")
    FIELD_CREW = "field_crew", _("Field crew")
    BILLING_CLERK = "billing_clerk", _("Billing clerk")
    MANAGER = "manager", _("Manager")
    ADMINISTRATOR = "administrator", _("Administrator")


class StaffProfileQuerySet(ScopedQuerySet):
    scope_path = "units"
    scope_through_many = True


class StaffProfile(models.Model):
    """What the centre knows of a staff member: badge, role and the units they serve."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="staff_profile",
        verbose_name=_("user"),
    )
    badge_number = models.CharField(
        _("badge number"),
        max_length=16,
        validators=[RegexValidator(r"^[0-9A-Za-z-]+$", _("Letters, digits and dashes only."))],
        help_text=_("The number an agent gives callers (danh số)."),
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    units = models.ManyToManyField(Unit, blank=True, related_name="staff", verbose_name=_("units served"))
    phone = models.CharField(_("work phone"), max_length=16, blank=True)
    assign_new_tickets = models.BooleanField(
        _("assign the tickets I take to me"),
        default=True,
        help_text=_("For agents: a ticket they save in the admin is assigned to them at once."),
    )

    objects = StaffProfileQuerySet.as_manager()

    class Meta:
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")
        # Not tied to a model of its own: the managers' dashboard (reports.admin_views) and its exports.
        permissions = [("view_dashboard", _("Can view the dashboard and export its tables"))]
        constraints = [
            models.UniqueConstraint(fields=["badge_number"], name="crm_staffprofile_badge_unique"),
            models.CheckConstraint(condition=~Q(badge_number=""), name="crm_staffprofile_badge_present"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="crm_staffprofile_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.badge_number} – {self.user.get_full_name() or self.user.get_username()}"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class OutboxChannel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    LOG = "log", _("Log only")


class OutboxMessage(models.Model):
    """A message to a person (a unit's dispatcher, a supervisor, a customer), written in the same transaction
    as the change it announces and delivered afterwards by a task, with retries (``crm.outbox``)."""

    channel = models.CharField(_("channel"), max_length=8, choices=OutboxChannel.choices)
    recipient = models.CharField(_("recipient"), max_length=254)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"))
    # What the message is about, so a retried change never sends twice (e.g. "ticket:12:escalation:2:user:5").
    dedupe_key = models.CharField(_("deduplication key"), max_length=120, null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=8, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # A file sent with an email (the managers' monthly report); stored under a generated name, sent as
    # ``attachment_name``.
    attachment = models.FileField(_("attachment"), upload_to="outbox/%Y/%m", null=True, blank=True)
    attachment_name = models.CharField(_("attachment name"), max_length=200, blank=True)
    # The member of staff a message is for (``staff_message``; empty for a customer): it is delivered to their
    # address as it is at delivery (``staff_address``), and to nobody once their account is deactivated. A
    # user with messages is deactivated, not deleted (as with their tickets and events).
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False, verbose_name=_("member of staff"),
    )  # fmt: skip

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        permissions = [("retry_outboxmessage", _("Can give failed messages back to the delivery sweep"))]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="crm_outbox_dedupe_unique"),
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="crm_outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=OutboxStatus.SENT) | Q(sent_at__isnull=False), name="crm_outbox_sent_at"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="crm_outbox_due_idx",
            ),
            # The failed messages, newest first (the admin's "failed" filter, ``outbox_retry`` of all failed).
            models.Index(fields=["id"], condition=Q(status="failed"), name="crm_outbox_failed_idx"),
            # A user's messages (what deleting a user checks), customers' messages left out.
            models.Index(fields=["staff"], condition=Q(staff__isnull=False), name="crm_outbox_staff_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} → {self.recipient}: {self.subject or self.body[:40]}"


class OutboxRetrySource(models.TextChoices):
    ADMIN = "admin", _("Admin")
    COMMAND = "command", _("Command line")


class OutboxRetry(models.Model):
    """A failed message given back to the delivery sweep (``crm.outbox.outbox_retry``): who, when, from where,
    and the error and attempts it had. Written once, never changed."""

    message = models.ForeignKey(
        OutboxMessage, on_delete=models.CASCADE, related_name="retries", verbose_name=_("message")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )  # fmt: skip
    source = models.CharField(_("retried from"), max_length=8, choices=OutboxRetrySource.choices)
    at = models.DateTimeField(_("at"))
    previous_attempts = models.PositiveSmallIntegerField(_("attempts before"))
    previous_error = models.TextField(_("error before"), blank=True)

    class Meta:
        verbose_name = _("outbox retry")
        verbose_name_plural = _("outbox retries")
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=OutboxRetrySource.values), name="crm_outboxretry_source_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} @ {local_stamp(self.at)}"


class ApiToken(AbstractAuthToken):
    """A token an integration (or a member of staff) sends to the API, for one user: django-rest-knox keeps only
    its SHA-512 digest and the first characters (``token_key``) to find it; the secret is shown once, when it is
    made (``crm.tokens``). It expires; revoking deletes it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="auth_token_set",  # the name django-rest-knox reads
        verbose_name=_("user"),
    )
    token_key = models.CharField(_("token starts with"), max_length=25, db_index=True)
    name = models.CharField(
        _("name"), max_length=100, help_text=_("What uses the token, e.g. “Zalo gateway” or “website”.")
    )
    created = models.DateTimeField(_("created at"), auto_now_add=True)
    expiry = models.DateTimeField(_("expires at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="crm_apitoken_name_present")]

    def __str__(self) -> str:
        return f"{self.name} ({self.user.get_username()}, {self.token_key}…)"


class ExportKind(models.TextChoices):
    LIST = "list", _("List, all matching rows")
    SELECTION = "selection", _("List, selected rows")
    DASHBOARD = "dashboard", _("Dashboard table")
    REPORT = "report", _("Monthly report by e-mail")


class ExportStatus(models.TextChoices):
    STARTED = "started", _("Being sent")
    COMPLETE = "complete", _("Complete")
    INCOMPLETE = "incomplete", _("Interrupted")


class ExportLogQuerySet(ScopedQuerySet):
    # An export is seen by those whose scope covers a unit its author served when exporting (administrators:
    # all of them): kept with the row, so the export stays with those units when its author leaves or moves.
    scope_path = "units"
    scope_through_many = True


class ExportLog(models.Model):
    """One export of personal or business data: who, when, which list, with which filters, in which format
    and how many rows. Written when the export starts and completed once, with its row count, when the last
    byte has gone (or marked interrupted when the download stopped); the database refuses any other change
    and any delete (``crm/migrations/0007_export_log.py``); the units its author served are recorded with it
    when it starts and never change (``crm/migrations/0012_export_log_units.py``)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )  # fmt: skip
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=ExportKind.choices)
    source = models.CharField(
        _("list"), max_length=100, help_text=_("The list or table exported, e.g. customers.customer.")
    )
    filters = models.TextField(_("filters"), blank=True, help_text=_("The filters and search applied."))
    file_format = models.CharField(_("format"), max_length=8)
    row_count = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ExportStatus.choices, default=ExportStatus.STARTED
    )
    units = models.ManyToManyField(
        Unit, blank=True, related_name="+", verbose_name=_("units served"),
        help_text=_("The units its author served when the export started: their managers read it."),
    )  # fmt: skip

    objects = ExportLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("export log")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ExportKind.values), name="crm_exportlog_kind_valid"),
            models.CheckConstraint(
                condition=Q(status=ExportStatus.STARTED, finished_at__isnull=True, row_count__isnull=True)
                | Q(
                    status__in=[ExportStatus.COMPLETE, ExportStatus.INCOMPLETE],
                    finished_at__isnull=False,
                    row_count__isnull=False,
                ),
                name="crm_exportlog_finished_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{local_stamp(self.started_at)} {self.source} ({self.file_format})"


class ClusterHeartbeat(models.Model):
    """The last time a task cluster ran its heartbeat task (``crm.tasks.cluster_heartbeat``, every minute): one
    row per cluster host, read by the health check (``/health/``)."""

    node = models.CharField(_("node"), max_length=200, unique=True)
    beat_at = models.DateTimeField(_("last beat at"))

    class Meta:
        verbose_name = _("task cluster heartbeat")
        verbose_name_plural = _("task cluster heartbeats")

    def __str__(self) -> str:
        return f"{self.node} {local_stamp(self.beat_at, seconds=True)}"
