"""Billing: dated tariffs, meter readings, invoices and their corrections, disputes, rebates and the audit.

What must never be wrong is kept by the database: an issued invoice cannot be changed or deleted (a trigger on
PostgreSQL and on SQLite, see migration 0002, and the model layer besides); an adjustment is approved by
somebody other than its proposer (a check constraint); a contract has one regular invoice per period and a
meter one current reading per period (unique constraints); audit records and payments cannot be edited (a
trigger).
Amounts are whole đồng in 64-bit integers.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from core.text import DESCRIPTION_MAX_CHARS, NOTE_MAX_CHARS
from core.times import local_stamp
from crm.models import Unit
from crm.scoping import ScopedQuerySet
from customers.models import Contract, Customer, CustomerType, Meter, TariffCategory

# Tariffs ------------------------------------------------------------------------------------------------


class TableKind(models.TextChoices):
    TIERED = "tiered", _("Tiered by monthly kWh")
    FLAT = "flat", _("Flat price")
    TOU = "tou", _("Time of use")


class PriceTable(models.Model):
    """The prices of one tariff category from a date on. A new price is a new table: old bills keep theirs."""

    tariff_category = models.CharField(_("tariff category"), max_length=16, choices=TariffCategory.choices)
    kind = models.CharField(_("kind"), max_length=8, choices=TableKind.choices)
    valid_from = models.DateField(_("valid from"))
    legal_basis = models.CharField(_("legal basis"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("price table")
        verbose_name_plural = _("price tables")
        ordering = ["tariff_category", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["tariff_category", "valid_from"], name="billing_pricetable_once"),
            models.CheckConstraint(condition=Q(kind__in=TableKind.values), name="billing_pricetable_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_tariff_category_display()} {self.valid_from:%d/%m/%Y}"


class PriceStep(models.Model):
    """One price of a table: a tier (its cumulative upper kWh, none for the last) or a time-of-use register."""

    table = models.ForeignKey(
        PriceTable, on_delete=models.CASCADE, related_name="steps", verbose_name=_("price table")
    )
    position = models.PositiveSmallIntegerField(_("position"))
    upper_kwh = models.PositiveIntegerField(_("up to kWh"), null=True, blank=True)
    register = models.CharField(_("register"), max_length=8, blank=True)
    price = models.PositiveIntegerField(_("VND/kWh before VAT"), validators=[MinValueValidator(1)])

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        ordering = ["table", "position"]
        constraints = [
            models.UniqueConstraint(fields=["table", "position"], name="billing_pricestep_position"),
            models.CheckConstraint(condition=Q(price__gt=0), name="billing_pricestep_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.table} #{self.position}: {self.price}"


class VatRate(models.Model):
    valid_from = models.DateField(_("valid from"), unique=True)
    percent = models.PositiveSmallIntegerField(_("VAT %"))
    legal_basis = models.CharField(_("legal basis"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("VAT rate")
        verbose_name_plural = _("VAT rates")
        ordering = ["valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__lte=100),
                name="billing_vat_percent",
                violation_error_code="percent",
                violation_error_message=_("A VAT rate is at most 100 %%."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.percent}% {self.valid_from:%d/%m/%Y}"


# Readings -----------------------------------------------------------------------------------------------


class ReadingSource(models.TextChoices):
    REMOTE = "remote", _("Remote-read")
    HANDHELD = "handheld", _("Handheld (tablet)")
    PHOTO = "photo", _("Photo")
    ESTIMATED = "estimated", _("Estimated")
    REINSPECTION = "reinspection", _("Re-inspection")


# The sources a reading may be recorded with (``reading_record``: the API, a file's line): a metering system's own
# estimate included (it trues nothing up); a re-inspection is recorded by ``reading_correct`` only.
RECORDED_SOURCES = (ReadingSource.REMOTE, ReadingSource.HANDHELD, ReadingSource.PHOTO, ReadingSource.ESTIMATED)


class ReadingStatus(models.TextChoices):
    VALID = "valid", _("Valid")
    FLAGGED = "flagged", _("Flagged (implausible jump)")
    SUPERSEDED = "superseded", _("Superseded by a correction")


class ReadingQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def current(self):
        return self.exclude(status=ReadingStatus.SUPERSEDED)


class MeterReading(models.Model):
    """The register of a contract's meter at the end of a billing period, and the kWh it gives for the period.

    ``kwh`` is computed by the service when the reading is taken: the advance over the previous reading, with
    a meter replacement or a roll-over accounted for. A correction is a new reading; the old one is kept,
    superseded.
    """

    # Both looked up through the unique (contract, period) index or by the reading itself.
    contract = models.ForeignKey(
        Contract,
        on_delete=models.PROTECT,
        related_name="readings",
        db_index=False,
        db_constraint=False,
        verbose_name=_("contract"),
    )
    meter = models.ForeignKey(
        Meter,
        on_delete=models.PROTECT,
        related_name="readings",
        db_index=False,
        db_constraint=False,
        verbose_name=_("meter"),
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("unit"),
    )
    period = models.DateField(_("period"), help_text=_("The first day of the billed month."))
    value = models.PositiveBigIntegerField(_("register (kWh)"))
    previous_value = models.PositiveBigIntegerField(_("previous register (kWh)"), null=True, blank=True)
    kwh = models.PositiveIntegerField(_("consumption (kWh)"))
    source = models.CharField(_("source"), max_length=12, choices=ReadingSource.choices)
    status = models.CharField(_("status"), max_length=10, choices=ReadingStatus.choices, default="valid")
    flag_reason = models.CharField(_("why flagged"), max_length=200, blank=True)
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("read by"),
    )  # fmt: skip
    taken_at = models.DateTimeField(_("taken at"))
    corrects = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="corrected_by", db_constraint=False,
        verbose_name=_("corrects"),
    )  # fmt: skip

    objects = ReadingQuerySet.as_manager()

    class Meta:
        verbose_name = _("meter reading")
        verbose_name_plural = _("meter readings")
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "period"],
                condition=~Q(status="superseded"),
                name="billing_reading_one_current_per_period",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReadingStatus.values), name="billing_reading_status"
            ),
            models.CheckConstraint(
                condition=Q(source__in=ReadingSource.values), name="billing_reading_source"
            ),
        ]
        indexes = [
            models.Index(fields=["period", "unit"], name="billing_reading_period_idx"),
            models.Index(fields=["unit", "-id"], name="billing_reading_unit_idx"),
            # What the checks of a deleted contract or meter read (see core.integrity): superseded ones too.
            models.Index(fields=["contract", "period"], name="billing_reading_contract_idx"),
            models.Index(fields=["meter"], name="billing_reading_meter_idx"),
            # The estimates in force (few): the readings import sends a line below one through the service,
            # which trues the estimate up.
            models.Index(
                fields=["contract", "period"],
                condition=Q(source="estimated") & ~Q(status="superseded"),
                name="billing_reading_estimated_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contract.number} {self.period:%m/%Y}: {self.value}"


# Invoices -----------------------------------------------------------------------------------------------


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    HELD = "held", _("Held for review")
    ISSUED = "issued", _("Issued")
    PAID = "paid", _("Paid")


class InvoiceKind(models.TextChoices):
    REGULAR = "regular", _("Regular")
    ADJUSTMENT = "adjustment", _("Adjustment")


class HoldKind(models.TextChoices):
    """Why a bill is held, which says what releases it: a clerk's own hold only the clerk's release
    (``invoice_release``); a flagged reading the clerk's review of it (or the reading corrected or confirmed on
    site); a dispute or re-inspection its closing. Empty while the bill is not held."""

    NONE = "", _("Not held")
    CLERK = "clerk", _("By a clerk")
    FLAGGED = "flagged", _("Flagged reading")
    REVIEW = "review", _("Disputed or under re-inspection")


# Once issued, an invoice only moves to paid; these columns are the only ones that may change then.
ISSUED_STATUSES = (InvoiceStatus.ISSUED, InvoiceStatus.PAID)


class InvoiceQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def update(self, **kwargs):
        if set(kwargs) - {"status", "paid_at"} and self.filter(status__in=ISSUED_STATUSES).exists():
            raise ValidationError(_("An issued invoice cannot be changed."))
        return super().update(**kwargs)

    def delete(self):
        if self.filter(status__in=ISSUED_STATUSES).exists():
            raise ValidationError(_("An issued invoice cannot be deleted."))
        return super().delete()


class BillingRun(models.Model):
    """One billing run: a period for one unit or all, what it made and what it skipped."""

    period = models.DateField(_("period"))
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("unit")
    )
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    invoices = models.PositiveIntegerField(_("invoices made"), default=0)
    without_reading = models.PositiveIntegerField(_("active contracts without a reading"), default=0)
    held = models.PositiveIntegerField(_("held"), default=0)

    objects = ScopedQuerySet.as_manager()  # a run over every unit (no unit) is seen by those who see all

    class Meta:
        verbose_name = _("billing run")
        verbose_name_plural = _("billing runs")

    def __str__(self) -> str:
        return f"{self.period:%m/%Y} {self.unit or _('all units')}"


class Invoice(models.Model):
    """A bill for one contract and period (or an adjustment of an earlier bill). Immutable once issued."""

    number = models.CharField(_("number"), max_length=20)
    kind = models.CharField(
        _("kind"), max_length=10, choices=InvoiceKind.choices, default=InvoiceKind.REGULAR
    )
    contract = models.ForeignKey(
        Contract,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,
        db_constraint=False,
        verbose_name=_("contract"),
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("unit"),
    )
    period = models.DateField(_("period"))
    period_start = models.DateField(_("from"))
    period_end = models.DateField(_("to (exclusive)"))
    reading = models.ForeignKey(
        MeterReading, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices", db_index=False,
        db_constraint=False,
        verbose_name=_("meter reading"),
    )  # fmt: skip
    kwh = models.IntegerField(_("kWh"))
    households = models.PositiveSmallIntegerField(_("households"), default=1)
    subtotal = models.BigIntegerField(_("amount before VAT"))
    vat = models.BigIntegerField(_("VAT"))
    total = models.BigIntegerField(_("total"))
    # Refunds offset on this bill: a settlement, not part of the charge (subtotal, VAT and total stay the
    # charge); the customer pays the amount due, total − offsets. Never more than the total.
    refund_offset = models.BigIntegerField(_("refund offsets"), default=0, db_default=0)
    status = models.CharField(_("status"), max_length=8, choices=InvoiceStatus.choices, default="draft")
    hold_reason = models.CharField(_("why held"), max_length=200, blank=True)
    hold_kind = models.CharField(
        _("held by"), max_length=8, choices=HoldKind.choices, blank=True, default="", db_default=""
    )
    adjusts = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="adjustments", db_constraint=False,
        verbose_name=_("adjusts"),
    )  # fmt: skip
    run = models.ForeignKey(
        BillingRun, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False,
        db_constraint=False,
        verbose_name=_("billing run"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("created at"))
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        permissions = [
            ("issue_invoice", _("Can issue invoices")),
            ("propose_adjustment", _("Can propose an adjustment invoice")),
            ("approve_adjustment", _("Can approve an adjustment invoice")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["number"], name="billing_invoice_number_unique"),
            models.UniqueConstraint(
                fields=["contract", "period"],
                condition=Q(kind="regular"),
                name="billing_invoice_one_per_period",
            ),
            models.CheckConstraint(
                condition=Q(status__in=InvoiceStatus.values), name="billing_invoice_status"
            ),
            models.CheckConstraint(condition=Q(kind__in=InvoiceKind.values), name="billing_invoice_kind"),
            models.CheckConstraint(
                condition=Q(total=F("subtotal") + F("vat")), name="billing_invoice_total_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(refund_offset=0)
                | Q(kind="regular", refund_offset__gt=0, refund_offset__lte=F("total")),
                name="billing_invoice_offset_within_total",
            ),
            models.CheckConstraint(
                condition=Q(kind="regular", adjusts__isnull=True, kwh__gte=0, subtotal__gte=0)
                | Q(kind="adjustment", adjusts__isnull=False),
                name="billing_invoice_adjustment_points_at_original",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["issued", "paid"]) | Q(issued_at__isnull=False),
                name="billing_invoice_issued_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="held") | ~Q(hold_reason=""), name="billing_invoice_held_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")), name="billing_invoice_period_dates"
            ),
            models.CheckConstraint(
                condition=Q(paid_at__isnull=True) | Q(status="paid"), name="billing_invoice_paid_at_when_paid"
            ),
        ]
        indexes = [
            models.Index(fields=["unit", "-id"], name="billing_invoice_unit_idx"),
            models.Index(fields=["customer", "-period"], name="billing_invoice_customer_idx"),
            models.Index(fields=["period", "unit"], name="billing_invoice_period_unit"),
            # A contract's, a reading's and a run's bills; what the checks of a deleted contract, reading or
            # run read (see core.integrity). None holds a column that issuing or paying changes.
            models.Index(fields=["contract", "-period"], name="billing_invoice_contract_idx"),
            models.Index(fields=["reading"], name="billing_invoice_reading_idx"),
            models.Index(fields=["run"], name="billing_invoice_run_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if self.pk is not None:
            stored = Invoice.objects.filter(pk=self.pk).values("status").first()
            if stored and stored["status"] in ISSUED_STATUSES:
                fields = kwargs.get("update_fields")
                if fields is None or set(fields) - {"status", "paid_at"}:
                    raise ValidationError(_("An issued invoice cannot be changed."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if Invoice.objects.filter(pk=self.pk, status__in=ISSUED_STATUSES).exists():
            raise ValidationError(_("An issued invoice cannot be deleted."))
        return super().delete(*args, **kwargs)

    @property
    def amount_due(self) -> int:
        """What the customer pays: the total less the refunds offset on the bill."""
        return self.total - self.refund_offset


class InvoiceLineQuerySet(ScopedQuerySet):
    scope_path = "invoice__unit"


class InvoiceLine(models.Model):
    """One priced line: a tier, a register, a flat price, a rebate or an adjustment difference."""

    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.CASCADE,
        related_name="lines",
        db_index=False,
        db_constraint=False,
        verbose_name=_("invoice"),
    )
    position = models.PositiveSmallIntegerField(_("position"))
    label = models.CharField(_("label"), max_length=100)
    segment_start = models.DateField(_("from"))
    tier = models.PositiveSmallIntegerField(_("tier"), null=True, blank=True)
    kwh = models.IntegerField(_("kWh"))
    price = models.IntegerField(_("price"))
    amount = models.BigIntegerField(_("amount"))
    vat_percent = models.PositiveSmallIntegerField(_("VAT %"))

    objects = InvoiceLineQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="billing_line_position"),
        ]

    def __str__(self) -> str:
        from billing.money import line_label, money

        return f"{line_label(self.label)}: {money(self.amount)}"


class InvoiceCounter(models.Model):
    year = models.PositiveSmallIntegerField(primary_key=True, verbose_name=_("year"))
    last = models.PositiveBigIntegerField(default=0, verbose_name=_("last number"))

    class Meta:
        verbose_name = _("invoice counter")
        verbose_name_plural = _("invoice counters")

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


# Disputes, re-inspections, corrections ---------------------------------------------------------------


class DisputeStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class DisputeOutcome(models.TextChoices):
    CONFIRMED = "confirmed", _("Reading confirmed")
    CORRECTED = "corrected", _("Reading corrected")
    METER_FAULT = "meter_fault", _("Meter fault: meter test ordered")
    WITHDRAWN = "withdrawn", _("Withdrawn by the customer")


class DisputeQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def open(self):
        return self.filter(status=DisputeStatus.OPEN)


class Dispute(models.Model):
    """A customer contests an invoice or a reading (from a billing complaint ticket). Supply is not cut meanwhile."""

    ticket = models.ForeignKey(
        "tickets.Ticket",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disputes",
        verbose_name=_("ticket"),
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="disputes", verbose_name=_("customer")
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("unit")
    )
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disputes",
        db_constraint=False,
        verbose_name=_("invoice"),
    )
    reading = models.ForeignKey(
        MeterReading,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disputes",
        db_constraint=False,
        verbose_name=_("meter reading"),
    )
    claim = models.TextField(_("what the customer says"), max_length=DESCRIPTION_MAX_CHARS)
    status = models.CharField(_("status"), max_length=10, choices=DisputeStatus.choices, default="open")
    outcome = models.CharField(_("outcome"), max_length=12, choices=DisputeOutcome.choices, blank=True)
    opened_at = models.DateTimeField(_("opened at"))
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("opened by"),
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    objects = DisputeQuerySet.as_manager()

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        constraints = [
            models.CheckConstraint(
                condition=Q(invoice__isnull=False) | Q(reading__isnull=False),
                name="billing_dispute_has_subject",
                violation_error_code="no_subject",
                violation_error_message=_("A dispute is about a bill or a reading: name one of them."),
            ),
            models.CheckConstraint(
                condition=Q(status="open", outcome="", resolved_at__isnull=True)
                | Q(status="resolved", resolved_at__isnull=False) & ~Q(outcome=""),
                name="billing_dispute_outcome_when_resolved",
            ),
        ]
        indexes = [
            models.Index(fields=["unit", "status", "-id"], name="billing_dispute_unit_idx"),
            models.Index(fields=["customer"], condition=Q(status="open"), name="billing_dispute_open_idx"),
        ]

    def __str__(self) -> str:
        # Read by its ticket's number and the customer's code (never a database id).
        subject = self.ticket.number if self.ticket is not None else getattr(self.invoice, "number", "")
        return f"{subject} {self.customer.code} {self.get_status_display()}".strip()


class ReinspectionReason(models.TextChoices):
    DISPUTE = "dispute", _("Customer dispute")
    ANOMALY = "anomaly", _("Consumption rise")


class ReinspectionQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def open(self):
        return self.filter(done_at__isnull=True)


class Reinspection(models.Model):
    """A re-inspection (*phúc tra*) of a reading for the unit: re-read, evidence, outcome."""

    reading = models.ForeignKey(
        MeterReading,
        on_delete=models.PROTECT,
        related_name="reinspections",
        db_constraint=False,
        verbose_name=_("meter reading"),
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("unit"),
    )
    dispute = models.ForeignKey(
        Dispute,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reinspections",
        verbose_name=_("dispute"),
    )
    reason = models.CharField(_("reason"), max_length=8, choices=ReinspectionReason.choices)
    rise_percent = models.IntegerField(_("rise over the previous period (%)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))
    reread_value = models.PositiveBigIntegerField(_("re-read register (kWh)"), null=True, blank=True)
    evidence = models.TextField(_("evidence"), blank=True, max_length=NOTE_MAX_CHARS)
    evidence_file = models.FileField(_("photo or record"), upload_to="reinspections/%Y/%m", blank=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=DisputeOutcome.choices, blank=True)
    inspector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("inspector"),
    )
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    objects = ReinspectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("re-inspection")
        verbose_name_plural = _("re-inspections")
        constraints = [
            models.CheckConstraint(
                condition=Q(done_at__isnull=True, outcome="") | Q(done_at__isnull=False) & ~Q(outcome=""),
                name="billing_reinspection_outcome_when_done",
            ),
            models.UniqueConstraint(
                fields=["reading"], condition=Q(reason="anomaly"), name="billing_reinspection_one_anomaly"
            ),
        ]
        indexes = [
            models.Index(
                fields=["unit", "-id"], condition=Q(done_at__isnull=True), name="billing_reinsp_open_idx"
            ),
            models.Index(fields=["unit", "-id"], name="billing_reinsp_unit_idx"),  # done ones too
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()}: {self.reading}"


class AdjustmentStatus(models.TextChoices):
    PROPOSED = "proposed", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class AdjustmentQuerySet(ScopedQuerySet):
    scope_path = "unit"


class Adjustment(models.Model):
    """The correction record (*biên bản*) of an issued invoice and the adjustment invoice it asks for.

    Proposed by one billing clerk, approved by another: the database refuses the same person in both roles.
    """

    original = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="corrections", db_constraint=False,
        verbose_name=_("original invoice"),
    )  # fmt: skip
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("unit")
    )
    dispute = models.ForeignKey(
        Dispute, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("dispute")
    )
    corrected_reading = models.ForeignKey(
        MeterReading,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        verbose_name=_("corrected reading"),
    )
    record = models.TextField(_("correction record"), max_length=DESCRIPTION_MAX_CHARS)
    kwh = models.IntegerField(_("corrected kWh"))
    delta_subtotal = models.BigIntegerField(_("difference before VAT"))
    delta_vat = models.BigIntegerField(_("difference in VAT"))
    delta_total = models.BigIntegerField(_("difference"))
    status = models.CharField(_("status"), max_length=8, choices=AdjustmentStatus.choices, default="proposed")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("proposed by")
    )
    proposed_at = models.DateTimeField(_("proposed at"))
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.TextField(_("decision note"), blank=True, max_length=NOTE_MAX_CHARS)
    invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="adjustment_record",
        db_constraint=False, verbose_name=_("adjustment invoice"),
    )  # fmt: skip

    objects = AdjustmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("adjustment")
        verbose_name_plural = _("adjustments")
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("proposed_by")),
                name="billing_adjustment_four_eyes",
            ),
            models.CheckConstraint(
                condition=Q(status="proposed", decided_by__isnull=True, invoice__isnull=True)
                | Q(status="approved", decided_by__isnull=False, invoice__isnull=False)
                | Q(status="rejected", decided_by__isnull=False, invoice__isnull=True),
                name="billing_adjustment_decision_complete",
            ),
            models.CheckConstraint(
                condition=Q(delta_total=F("delta_subtotal") + F("delta_vat")),
                name="billing_adjustment_adds_up",
            ),
            models.UniqueConstraint(
                fields=["original"], condition=Q(status="proposed"), name="billing_adjustment_one_pending"
            ),
        ]
        indexes = [models.Index(fields=["unit", "status", "-id"], name="billing_adjustment_unit_idx")]

    def __str__(self) -> str:
        from billing.money import money

        return f"{self.original.number} {'+' if self.delta_total > 0 else ''}{money(self.delta_total)}"


class RefundMethod(models.TextChoices):
    REFUND = "refund", _("Paid back to the customer")
    OFFSET = "offset", _("Offset on the next bill")


class RefundQuerySet(ScopedQuerySet):
    scope_path = "unit"


class Refund(models.Model):
    """Money owed back to a customer after a negative adjustment (*thoái hoàn*), and how it was settled."""

    adjustment = models.OneToOneField(
        Adjustment, on_delete=models.PROTECT, related_name="refund", verbose_name=_("adjustment")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("customer")
    )
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("unit")
    )
    amount = models.BigIntegerField(_("amount"))
    method = models.CharField(_("settled by"), max_length=8, choices=RefundMethod.choices, blank=True)
    offset_invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="offsets", db_constraint=False,
        verbose_name=_("offset on invoice"),
    )  # fmt: skip
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("settled by staff member"),
    )
    reference = models.CharField(_("payment reference"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"))

    objects = RefundQuerySet.as_manager()

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_refund_positive"),
            models.CheckConstraint(
                condition=Q(method="", settled_at__isnull=True)
                | Q(method="refund", settled_at__isnull=False)
                | Q(method="offset", settled_at__isnull=False, offset_invoice__isnull=False),
                name="billing_refund_settlement_complete",
            ),
        ]

    def __str__(self) -> str:
        from billing.money import money

        return f"{self.customer.code} {money(self.amount)}"


# Payments -----------------------------------------------------------------------------------------------


class PaymentSource(models.TextChoices):
    """How the money came in: the channel names who holds the transaction's reference."""

    BANK_TRANSFER = "bank_transfer", _("Bank transfer")
    AUTO_DEBIT = "auto_debit", _("Automatic bank debit")
    COUNTER = "counter", _("At the counter")
    APP = "app", _("Customer app or website")
    E_WALLET = "e_wallet", _("E-wallet")
    COLLECTION_PARTNER = "partner", _("Collection partner")


class PaymentQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def update(self, **kwargs):
        raise ValidationError(_("A recorded payment cannot be changed."))

    def delete(self):
        raise ValidationError(_("A recorded payment cannot be deleted."))


class Payment(models.Model):
    """Money received against an issued invoice: how much, when, through which channel and under which
    transaction reference (the bank's, the partner's, the counter's receipt number).

    Written by ``billing.services.payment_record`` only, never changed or deleted (the model layer, and the
    database's triggers: migration 0014). A channel's reference is recorded once: the same reference sent
    again (an integration's retry) finds the first payment. The invoice becomes paid when its payments cover
    its amount due."""

    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="payments", db_index=False, db_constraint=False,
        verbose_name=_("invoice"),
    )  # fmt: skip
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, related_name="+", db_index=False, verbose_name=_("unit")
    )
    amount = models.BigIntegerField(_("amount"))
    paid_at = models.DateTimeField(_("paid at"))
    source = models.CharField(_("paid through"), max_length=16, choices=PaymentSource.choices)
    reference = models.CharField(
        _("transaction reference"), max_length=100,
        help_text=_("The bank's or the partner's reference of the transaction, or the counter's receipt number."),
    )  # fmt: skip
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("recorded by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("recorded at"))

    objects = PaymentQuerySet.as_manager()

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_payment_amount_positive"),
            # Leading with the reference: the list finds a payment by its reference alone.
            models.UniqueConstraint(fields=["reference", "source"], name="billing_payment_reference_once"),
            models.CheckConstraint(
                condition=Q(source__in=PaymentSource.values), name="billing_payment_source"
            ),
            models.CheckConstraint(condition=~Q(reference=""), name="billing_payment_has_reference"),
        ]
        indexes = [
            # An invoice's payments; what the check of a deleted invoice reads (see core.integrity).
            models.Index(fields=["invoice"], name="billing_payment_invoice_idx"),
            models.Index(fields=["unit", "-id"], name="billing_payment_unit_idx"),
        ]

    def __str__(self) -> str:
        from billing.money import money

        return f"{self.invoice.number} {money(self.amount)} {self.reference}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(_("A recorded payment cannot be changed."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("A recorded payment cannot be deleted."))


# Rebate rounds ------------------------------------------------------------------------------------------


class RebateStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    APPLIED = "applied", _("Applied")
    REVERSED = "reversed", _("Reversed")


class RebateProgramme(models.Model):
    """A government-ordered bill reduction (*giảm tiền điện*): who is eligible, for which bills, how much."""

    name = models.CharField(_("name"), max_length=200)
    legal_basis = models.CharField(_("legal basis"), max_length=300)
    customer_types = models.JSONField(
        _("customer types"), default=list, help_text=_('Empty: every type. E.g. ["residential"].')
    )
    units = models.ManyToManyField(Unit, blank=True, related_name="+", help_text=_("Empty: every unit."))
    period_from = models.DateField(_("first billed month"))
    period_to = models.DateField(_("last billed month"))
    min_kwh = models.PositiveIntegerField(_("from kWh"), default=0)
    max_kwh = models.PositiveIntegerField(_("up to kWh"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=RebateStatus.choices, default="draft")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # When the round first ran: a bill issued before then was never within its reach, a bill issued after it
    # was (``billing.services`` puts it on such a bill corrected into its kWh range).
    applied_at = models.DateTimeField(_("first applied at"), null=True, blank=True)

    class Meta:
        verbose_name = _("rebate programme")
        verbose_name_plural = _("rebate programmes")
        # Running a round (applying it to the bills, taking it back) is the billing clerks' work, within their
        # units (``billing.services.rebate_check_reach``); changing what a programme is stays the
        # administrators' (``change_rebateprogramme``).
        permissions = [("apply_rebateprogramme", _("Can apply and reverse rebate programmes"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_to__gte=F("period_from")),
                name="billing_rebate_periods",
                violation_error_code="periods",
                violation_error_message=_("The last month comes after the first."),
            ),
            models.CheckConstraint(condition=Q(status__in=RebateStatus.values), name="billing_rebate_status"),
        ]

    def __str__(self) -> str:
        return self.name

    def percent_for(self, kwh: int) -> Decimal | None:
        """The reduction a bill of ``kwh`` gets, or None when its kWh is outside the programme: the first band
        (by ``from_kwh``) that holds it, within ``min_kwh``…``max_kwh``. A whole round applies the same rule in
        one statement (``billing.services._eligible_sql``); a bill computed again alone asks here."""
        if kwh < self.min_kwh or (self.max_kwh is not None and kwh > self.max_kwh):
            return None
        for band in self.bands.order_by("from_kwh"):
            if kwh >= band.from_kwh and (band.to_kwh is None or kwh < band.to_kwh):
                return band.percent
        return None

    def clean(self):
        unknown = set(self.customer_types or []) - set(CustomerType.values)
        if unknown:
            raise ValidationError(
                {"customer_types": _("Unknown customer types: %s") % ", ".join(sorted(unknown))}
            )


class RebateBand(models.Model):
    """The benefit for bills whose kWh falls from ``from_kwh`` up to (not including) ``to_kwh``."""

    programme = models.ForeignKey(
        RebateProgramme, on_delete=models.CASCADE, related_name="bands", verbose_name=_("rebate programme")
    )
    from_kwh = models.PositiveIntegerField(_("from kWh"), default=0)
    to_kwh = models.PositiveIntegerField(_("below kWh"), null=True, blank=True)
    percent = models.DecimalField(_("reduction %"), max_digits=5, decimal_places=2)

    class Meta:
        verbose_name = _("rebate band")
        verbose_name_plural = _("rebate bands")
        ordering = ["programme", "from_kwh"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percent__gt=0, percent__lte=100),
                name="billing_rebateband_percent",
                violation_error_code="percent",
                violation_error_message=_("A reduction is more than 0 %% and at most 100 %%."),
            ),
            models.CheckConstraint(
                condition=Q(to_kwh__isnull=True) | Q(to_kwh__gt=F("from_kwh")),
                name="billing_rebateband_range",
                violation_error_code="range",
                violation_error_message=_("A band ends above the kWh it starts from."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_kwh}–{self.to_kwh or '…'}: {self.percent}%"


class RebateApplicationQuerySet(ScopedQuerySet):
    scope_path = "invoice__unit"


class RebateApplication(models.Model):
    """What one programme took off one invoice. One per programme and invoice: applying twice changes nothing."""

    programme = models.ForeignKey(
        RebateProgramme,
        on_delete=models.PROTECT,
        related_name="applications",
        db_constraint=False,
        verbose_name=_("rebate programme"),
    )
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        related_name="rebates",
        db_constraint=False,
        verbose_name=_("invoice"),
    )
    percent = models.DecimalField(_("reduction %"), max_digits=5, decimal_places=2)
    base = models.BigIntegerField(_("amount before VAT"))
    amount = models.BigIntegerField(_("reduction before VAT"))
    vat = models.BigIntegerField(_("VAT on the reduction"))
    applied_at = models.DateTimeField(_("applied at"))

    objects = RebateApplicationQuerySet.as_manager()

    class Meta:
        verbose_name = _("rebate application")
        verbose_name_plural = _("rebate applications")
        constraints = [
            models.UniqueConstraint(fields=["programme", "invoice"], name="billing_rebate_once_per_invoice"),
            models.CheckConstraint(
                condition=Q(amount__gte=0, vat__gte=0), name="billing_rebate_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.programme.name} → {self.invoice.number}"


# Anomalies ---------------------------------------------------------------------------------------------


class AnomalyBandCount(models.Model):
    """The consumption-rise bands of one period for one unit, as counted by the anomaly job."""

    period = models.DateField(_("period"))
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="+", verbose_name=_("unit"))
    compared = models.PositiveIntegerField(_("customers compared"))
    below_30 = models.PositiveIntegerField(_("< 30%"))
    from_30 = models.PositiveIntegerField(_("30–50%"))
    from_50 = models.PositiveIntegerField(_("50–100%"))
    from_100 = models.PositiveIntegerField(_("100–300%"))
    from_300 = models.PositiveIntegerField(_("≥ 300%"))
    held = models.PositiveIntegerField(_("invoices held"))
    threshold = models.DecimalField(_("hold threshold (×)"), max_digits=4, decimal_places=2)
    computed_at = models.DateTimeField(_("computed at"))

    objects = ScopedQuerySet.as_manager()

    class Meta:
        verbose_name = _("consumption rise by band")
        verbose_name_plural = _("consumption rises by band")
        constraints = [models.UniqueConstraint(fields=["period", "unit"], name="billing_anomaly_once")]

    def __str__(self) -> str:
        return f"{self.period:%m/%Y} {self.unit.code}"


# Audit --------------------------------------------------------------------------------------------------


class AuditQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def update(self, **kwargs):
        raise ValidationError(_("Audit records cannot be changed."))

    def delete(self):
        raise ValidationError(_("Audit records cannot be deleted."))


class AuditRecord(models.Model):
    """Who changed what in billing, when, before and after, and why. Written by the services; never edited."""

    at = models.DateTimeField(_("at"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("by"),
    )  # fmt: skip
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("unit")
    )
    action = models.CharField(_("action"), max_length=40)
    object_type = models.CharField(_("record type"), max_length=40)
    object_id = models.BigIntegerField(_("record id"), null=True, blank=True)
    rows = models.PositiveIntegerField(_("rows affected"), default=1)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="billing_audit_object_idx"),
            models.Index(fields=["unit", "-id"], name="billing_audit_unit_idx"),
        ]

    def __str__(self) -> str:
        return f"{local_stamp(self.at)} {self.action} {self.object_type}#{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(_("Audit records cannot be changed."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("Audit records cannot be deleted."))


# Reading imports ----------------------------------------------------------------------------------------


class ReadingImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


# The source an import gives the lines that name none (a whole file is never declared an estimate; a line may
# say "estimated", ``billing.imports.RECORDED_SOURCES``).
IMPORTABLE_SOURCES = [
    (s.value, s.label) for s in (ReadingSource.REMOTE, ReadingSource.HANDHELD, ReadingSource.PHOTO)
]


class ReadingImportQuerySet(ScopedQuerySet):
    scope_path = "unit"


class ReadingImport(models.Model):
    """A file of meter readings uploaded by a billing clerk and imported by a background task
    (``billing.imports``): what it held, what went in, what was refused and why, and how far it has got.

    An import without a unit covers every unit of its importer (for those who see every unit)."""

    file = models.FileField(_("file"), upload_to="reading-imports/%Y/%m")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("uploaded by"),
    )  # fmt: skip
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False,
        verbose_name=_("unit"),
    )  # fmt: skip
    period = models.DateField(
        _("period"), null=True, blank=True, help_text=_("When given, lines of another month are refused.")
    )
    source = models.CharField(
        _("source"), max_length=12, choices=IMPORTABLE_SOURCES, blank=True,
        help_text=_("For lines without one. Empty: remote for remote-read meters, else handheld."),
    )  # fmt: skip
    status = models.CharField(
        _("status"), max_length=8, choices=ReadingImportStatus.choices, default=ReadingImportStatus.QUEUED
    )
    phase = models.CharField(_("phase"), max_length=20, blank=True)
    bytes_total = models.PositiveBigIntegerField(_("file size (bytes)"), default=0)
    bytes_read = models.PositiveBigIntegerField(_("bytes read"), default=0)
    rows_total = models.PositiveIntegerField(_("lines"), default=0)
    rows_inserted = models.PositiveIntegerField(_("readings inserted"), default=0)
    rows_flagged = models.PositiveIntegerField(_("of which flagged"), default=0)
    rows_unchanged = models.PositiveIntegerField(_("already read, same value"), default=0)
    rows_rejected = models.PositiveIntegerField(_("lines rejected"), default=0)
    rejects_file = models.FileField(_("rejected lines"), upload_to="reading-imports/%Y/%m", blank=True)
    dry_run = models.BooleanField(
        _("dry run"), default=False, help_text=_("Check and count only: nothing is written.")
    )
    skip_bad_lines = models.BooleanField(
        _("skip the bad lines"), default=True,
        help_text=_("Import the good lines and list the bad ones; otherwise one bad line writes nothing."),
    )  # fmt: skip
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("uploaded at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    progress_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ReadingImportQuerySet.as_manager()

    class Meta:
        verbose_name = _("reading import")
        verbose_name_plural = _("reading imports")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReadingImportStatus.values), name="billing_readingimport_status"
            ),
        ]
        indexes = [models.Index(fields=["unit", "-id"], name="billing_readingimport_unit_idx")]

    def __str__(self) -> str:
        name = self.file.name.rsplit("/", 1)[-1] if self.file and self.file.name else ""
        return f"{name} ({local_stamp(self.created_at)})" if self.created_at else name


# Long billing jobs --------------------------------------------------------------------------------------


class BillingJobKind(models.TextChoices):
    BILLING_RUN = "billing_run", _("Billing run")
    ANOMALY_SCAN = "anomaly_scan", _("Anomaly scan")
    REBATE_APPLY = "rebate_apply", _("Rebate apply")
    REBATE_REVERSE = "rebate_reverse", _("Rebate reverse")
    EXPORT = "export", _("Export")


class BillingJobQuerySet(ScopedQuerySet):
    scope_path = "unit"

    def running(self):
        return self.filter(status__in=[ReadingImportStatus.QUEUED, ReadingImportStatus.RUNNING])


class BillingJob(models.Model):
    """A long billing job (a billing run, an anomaly scan, applying or reversing a rebate) run by a background
    task (``billing.jobs``): what it was asked, how far it has got, what it made or why it failed.

    ``lock`` names what the job works on (the kind and the month, or the rebate programme): the database
    refuses a second queued or running job with the same lock. A job without a unit covers every unit of its
    starter (for the billing run and the scan) or is a rebate programme's (administrators')."""

    kind = models.CharField(_("job"), max_length=16, choices=BillingJobKind.choices)
    lock = models.CharField(_("works on"), max_length=60)
    unit = models.ForeignKey(
        Unit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False,
        verbose_name=_("unit"),
    )  # fmt: skip
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=8, choices=ReadingImportStatus.choices, default=ReadingImportStatus.QUEUED
    )
    steps_total = models.PositiveIntegerField(_("steps"), default=0)
    steps_done = models.PositiveIntegerField(_("steps done"), default=0)
    result = models.JSONField(_("result"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    file = models.FileField(_("file"), upload_to="billing-jobs/%Y/%m", blank=True)  # what an export wrote
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("started by"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("queued at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    progress_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = BillingJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("billing job")
        verbose_name_plural = _("billing jobs")
        constraints = [
            models.UniqueConstraint(
                fields=["lock"], condition=Q(status__in=["queued", "running"]), name="billing_job_one_running"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReadingImportStatus.values), name="billing_job_status"
            ),
            models.CheckConstraint(condition=Q(kind__in=BillingJobKind.values), name="billing_job_kind"),
        ]
        indexes = [models.Index(fields=["unit", "-id"], name="billing_job_unit_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.params.get('label', '')}".strip()
