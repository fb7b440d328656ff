"""Admin for billing: the reference data (prices, VAT, rebate programmes) for administrators; a unit's readings,
bills, disputes, re-inspections and corrections for its billing clerks, with queues and actions. Bills and
disputes export as CSV or XLSX (``core.exports.StreamingExportMixin``): the rows of the user's units that the
list shows with its filters, or the ones selected.

Nothing here saves a billing record itself: every change is a call to ``billing.services`` (which checks the
rules, writes the audit and keeps issued bills immutable). A rule a service refuses comes back as a message,
or on the form that asked for it with what was typed. The billing run, the anomaly scan, a rebate's apply and
reverse and the big invoice exports are background jobs (``billing.jobs``) followed on their status page.
Records are chosen by number or code (autocomplete), money is written by ``billing.money``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.exceptions import NotRegistered
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import imports, jobs, services
from billing.models import (
    IMPORTABLE_SOURCES,
    Adjustment,
    AdjustmentStatus,
    AnomalyBandCount,
    AuditRecord,
    BillingJob,
    BillingJobKind,
    BillingRun,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Invoice,
    InvoiceCounter,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    MeterReading,
    Payment,
    PaymentSource,
    PriceStep,
    PriceTable,
    ReadingImport,
    ReadingImportStatus,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    RebateStatus,
    Refund,
    RefundMethod,
    Reinspection,
    VatRate,
)
from billing.money import hold_reason_label, line_label, money
from billing.resources import DisputeResource, InvoiceResource
from billing.rules import LARGEST_REGISTER
from billing.tariff import vat_amount
from core.errors import renamed
from core.exports import StreamingExportMixin
from core.json_input import ADMIN_FORMFIELD_OVERRIDES
from core.months import MONTH_INPUT_FORMATS
from core.numbers import WholeNumberField
from core.text import NOTE_MAX_CHARS
from crm.admin_base import (
    ReadOnlyAdmin,
    RecordFieldsMixin,
    SafeListMixin,
    ScopedAdmin,
    ScopedChangeList,
    ScopedUnitFilter,
    ServiceErrorsMixin,
    add_service_errors,
    report_errors,
)
from crm.models import Unit
from crm.permissions import EverythingOnlyAdminMixin
from crm.scoping import scope_for
from customers.models import Contract, Customer, MeterAssignment
from customers.selectors import contract_numbered

BOTH = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]  # in the list and on the record's page


def _adopt(obj, saved) -> None:
    """The admin's unsaved instance becomes the row a service created (for the log entry and the redirect)."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def _for_each(request, items, call, label=str) -> int:
    """Call a service for each item; a refusal is a message naming the item and the others go on."""
    done = 0
    for item in items:
        try:
            call(item)
            done += 1
        except ValidationError as exc:
            messages.error(request, f"{label(item)}: {'; '.join(exc.messages)}")
    return done


def _offsets(invoice: Invoice) -> list[dict]:
    """The refunds offset on a bill, each named by the adjustment invoice that opened it, and its amount."""
    refunds = (
        invoice.offsets.select_related("adjustment__invoice", "adjustment__original")
        .exclude(adjustment__original_id=invoice.pk)  # a credit that came off what this bill owed: not an offset
        .order_by("settled_at", "pk")
    )
    return [{"label": services.offset_label(refund), "amount": refund.amount} for refund in refunds]


def _bases(lines) -> dict[int, int]:
    """The sum of the lines' amounts by VAT rate."""
    by_rate: dict[int, int] = {}
    for line in lines:
        by_rate[line.vat_percent] = by_rate.get(line.vat_percent, 0) + line.amount
    return by_rate


def _vat_by_rate(invoice: Invoice, bases: dict[int, int]) -> dict[int, int] | None:
    """Each rate's VAT on the printed page, with the bill's own rule (``tariff.vat_amount`` on the rate's base,
    rebates included). An adjustment invoice states per rate the VAT of the bill as corrected by it less the
    bill's before it (the original and the adjustments approved earlier). None when these do not add up to
    the invoice's stored VAT: then the invoice's VAT beside its one taxed rate, or (several) the bases and
    the total VAT only."""
    if invoice.kind == InvoiceKind.ADJUSTMENT:
        earlier = _bases(
            InvoiceLine.objects.filter(
                Q(invoice_id=invoice.adjusts_id)
                | Q(invoice__adjusts_id=invoice.adjusts_id, invoice__kind=InvoiceKind.ADJUSTMENT,
                    invoice_id__lt=invoice.pk)
            ).only("vat_percent", "amount")
        )  # fmt: skip
        vats = {
            rate: vat_amount(earlier.get(rate, 0) + base, rate) - vat_amount(earlier.get(rate, 0), rate)
            for rate, base in bases.items()
        }
    else:
        vats = {rate: vat_amount(base, rate) for rate, base in bases.items()}
    if sum(vats.values()) == invoice.vat:
        return vats
    taxed = [rate for rate in bases if rate]
    return {rate: invoice.vat if rate else 0 for rate in bases} if len(taxed) == 1 else None


def _months_back(count: int) -> list[dt.date]:
    month = timezone.localdate().replace(day=1)
    months = []
    for _i in range(count):
        months.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return months


if TYPE_CHECKING:  # the mixins below are mixed into model admins: checked as one
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


class BillingAdminMixin(ServiceErrorsMixin, _ModelAdmin):
    """What the billing admins share: permission checks for their actions and the intermediate action page."""

    def _has(self, request, codename: str) -> bool:
        return request.user.has_perm(f"billing.{codename}")

    def _action_page(self, request, *, action: str, title, objects, form, submit):
        """A small form between choosing an action and running it (the reason, the outcome, a reference)."""
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": opts,
            "objects": objects,
            "form": form,
            "action": action,
            "submit_label": submit,
            # The list as it was (its queue and filters): the form posts back there, and returns there.
            "changelist_url": request.get_full_path(),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/action_form.html", context)


# Filters ------------------------------------------------------------------------------------------------


class PeriodFilter(admin.SimpleListFilter):
    """The billed month: the last 18 offered (no query); any first-of-month date works in the URL."""

    title = gettext_lazy("period")
    parameter_name = "period"

    def lookups(self, request, model_admin):
        return [(m.isoformat(), m.strftime("%m/%Y")) for m in _months_back(18)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return queryset.filter(period=dt.date.fromisoformat(self.value()))
        except ValueError:
            return queryset.none()


class InvoiceUnitFilter(ScopedUnitFilter):
    unit_path = "invoice__unit"


class DisputeQueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("open", _("Open disputes")), ("resolved", _("Resolved disputes"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(status=DisputeStatus.OPEN)
        if self.value() == "resolved":
            return queryset.filter(status=DisputeStatus.RESOLVED)
        return queryset


class ReinspectionQueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("open", _("To re-inspect")), ("done", _("Recorded"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(done_at__isnull=True)
        if self.value() == "done":
            return queryset.filter(done_at__isnull=False)
        return queryset


class AdjustmentQueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [
            ("awaiting", _("Awaiting approval")),
            ("for_me", _("Awaiting my decision (proposed by others)")),
            ("decided", _("Decided")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "awaiting":
            return queryset.filter(status=AdjustmentStatus.PROPOSED)
        if self.value() == "for_me":
            return queryset.filter(status=AdjustmentStatus.PROPOSED).exclude(proposed_by=request.user)
        if self.value() == "decided":
            return queryset.exclude(status=AdjustmentStatus.PROPOSED)
        return queryset


class RefundQueueFilter(admin.SimpleListFilter):
    title = gettext_lazy("queue")
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [("open", _("To settle")), ("settled", _("Settled"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(method="")
        if self.value() == "settled":
            return queryset.exclude(method="")
        return queryset


class AuditObjectFilter(admin.SimpleListFilter):
    """The kinds of record the services audit (a fixed list: no DISTINCT over the audit table)."""

    title = gettext_lazy("record type")
    parameter_name = "object_type"
    TYPES = [
        "meterreading", "invoice", "billingrun", "dispute", "reinspection", "adjustment", "refund",
        "rebateprogramme", "pricetable", "billingjob",
    ]  # fmt: skip

    def lookups(self, request, model_admin):
        from django.apps import apps

        return [(t, apps.get_model("billing", t)._meta.verbose_name) for t in self.TYPES]

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


# Read-only inlines ---------------------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MoneyDisplays:
    """Amounts as the interface writes money (``1.369.721 ₫``), invoice lines' labels in its language."""

    @admin.display(description=gettext_lazy("amount before VAT"))
    def subtotal_vnd(self, obj):
        return money(obj.subtotal)

    @admin.display(description=gettext_lazy("VAT"))
    def vat_vnd(self, obj):
        return money(obj.vat)

    @admin.display(description=gettext_lazy("total"), ordering="total")
    def total_vnd(self, obj):
        return money(obj.total)

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_vnd(self, obj):
        return money(obj.amount)

    @admin.display(description=gettext_lazy("refund offsets"))
    def refund_offset_vnd(self, obj):
        return money(obj.refund_offset)

    @admin.display(description=gettext_lazy("amount due"))
    def amount_due_vnd(self, obj):
        return money(obj.amount_due)

    @admin.display(description=gettext_lazy("price"))
    def price_vnd(self, obj):
        return money(obj.price) if obj.price else ""

    @admin.display(description=gettext_lazy("label"))
    def label_shown(self, obj):
        return line_label(obj.label)

    @admin.display(description=gettext_lazy("difference"), ordering="delta_total")
    def delta_total_vnd(self, obj):
        return money(obj.delta_total)

    @admin.display(description=gettext_lazy("difference before VAT"))
    def delta_subtotal_vnd(self, obj):
        return money(obj.delta_subtotal)

    @admin.display(description=gettext_lazy("difference in VAT"))
    def delta_vat_vnd(self, obj):
        return money(obj.delta_vat)


class InvoiceLineInline(MoneyDisplays, ReadOnlyInline):
    model = InvoiceLine
    fields = (
        "position",
        "label_shown",
        "segment_start",
        "tier",
        "kwh",
        "price_vnd",
        "amount_vnd",
        "vat_percent",
    )
    readonly_fields = fields
    ordering = ["position"]


class RebateApplicationInline(MoneyDisplays, ReadOnlyInline):
    model = RebateApplication
    fields = ("programme", "percent", "base_vnd", "amount_vnd", "vat_vnd", "applied_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("programme")

    @admin.display(description=gettext_lazy("amount before VAT"))
    def base_vnd(self, obj):
        return money(obj.base)


class AdjustmentInvoiceInline(MoneyDisplays, ReadOnlyInline):
    """The adjustment invoices issued against this bill (the chain of what it finally came to)."""

    model = Invoice
    fk_name = "adjusts"
    verbose_name = gettext_lazy("adjustment invoice")
    verbose_name_plural = gettext_lazy("adjustment invoices")
    fields = ("number", "status", "kwh", "subtotal_vnd", "vat_vnd", "total_vnd", "issued_at")
    readonly_fields = fields
    show_change_link = True
    ordering = ["id"]


class CorrectionInline(MoneyDisplays, ReadOnlyInline):
    """The correction records (proposed, approved or rejected) of this bill."""

    model = Adjustment
    fk_name = "original"
    verbose_name = gettext_lazy("correction record")
    verbose_name_plural = gettext_lazy("correction records")
    fields = (
        "status", "kwh", "delta_total_vnd", "proposed_by", "proposed_at", "decided_by", "decided_at",
        "decision_note", "invoice",
    )  # fmt: skip
    readonly_fields = fields
    show_change_link = True
    ordering = ["id"]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("proposed_by", "decided_by", "invoice", "original")
        )


class PaymentInline(MoneyDisplays, ReadOnlyInline):
    """The payments recorded against this bill, in the order they were made."""

    model = Payment
    fk_name = "invoice"
    fields = ("amount_vnd", "paid_at", "source", "reference", "recorded_by", "created_at")
    readonly_fields = fields
    ordering = ["paid_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")


# Readings and invoices -----------------------------------------------------------------------------------


@admin.register(MeterReading)
class MeterReadingAdmin(ReadOnlyAdmin):
    list_display = [
        "contract", "period_month", "value", "previous_value", "kwh", "source", "status", "flag_reason", "unit",
        "taken_at",
    ]  # fmt: skip
    list_select_related = ["contract", "unit"]
    list_filter = [PeriodFilter, ScopedUnitFilter, "status", "source"]
    search_fields = ["contract__number__exact", "meter__serial__exact"]
    ordering = ["-id"]
    change_list_template = "admin/billing/readingimport/meterreading_change_list.html"  # + "Import a file"

    @admin.display(description=gettext_lazy("period"), ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%m/%Y")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("estimate/", view(self.estimate_view), name="billing_meterreading_estimate"),
            path("<path:object_id>/correct/", view(self.correct_view), name="billing_meterreading_correct"),
            *super().get_urls(),
        ]

    def has_correct_permission(self, request) -> bool:
        """Who may correct a reading: the permission ``reading_correct`` requires (it checks the unit too)."""
        return request.user.has_perm("billing.change_meterreading")

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return [*shown, "correct_link"] if self.has_correct_permission(request) else shown

    @admin.display(description=gettext_lazy("correction"))
    def correct_link(self, obj):
        from django.utils.html import format_html

        from billing.models import ReadingStatus

        if obj.status == ReadingStatus.SUPERSEDED:
            return ""
        url = reverse("admin:billing_meterreading_correct", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Correct this reading…"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_correct": self.has_correct_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def correct_view(self, request, object_id):
        """A mistyped register corrected (``reading_correct``): a new reading, the old one kept, superseded; the
        bill not yet issued is recomputed, an issued one gets its adjustment. Only a reading of the clerk's
        units (others are not found); the service's refusals come back beside the fields, with what was typed."""
        from django.http import Http404

        if not self.has_correct_permission(request):
            raise PermissionDenied
        reading = self.get_object(request, object_id)  # among the user's units; a bad id is not found either
        if reading is None:
            raise Http404
        form = ReadingCorrectForm(request.POST or None, initial={"value": reading.value})
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    new = services.reading_correct(actor=request.user, reading=reading, **form.cleaned_data)
                except ValidationError as exc:
                    add_service_errors(form, renamed(exc, form.SERVICE_FIELDS))
                else:
                    messages.success(request, self._corrected(reading, new))
                    return redirect("admin:billing_meterreading_change", new.pk)
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "title": _("Correct the reading of %(m)s of contract %(c)s") % {
                "m": f"{reading.period:%m/%Y}", "c": reading.contract.number,
            },
            "opts": self.model._meta,
            "original": reading,
            "form": form,
        }  # fmt: skip
        return TemplateResponse(request, "admin/billing/meterreading/correct.html", context, status=status)

    @staticmethod
    def _corrected(old: MeterReading, new: MeterReading) -> str:
        """What the correction did: the register and consumption, and what became of the month's bill."""
        done = _("Reading of %(m)s of contract %(c)s corrected: register %(o)s → %(v)s, %(k)s kWh.") % {
            "m": f"{old.period:%m/%Y}", "c": old.contract.number, "o": old.value, "v": new.value, "k": new.kwh,
        }  # fmt: skip
        return " ".join(filter(None, [done, correction_followed(old, new)]))

    def estimate_view(self, request):
        """A stopped meter's month estimated from its last three real cycles (``reading_estimate``): the
        contract by its number (in the clerk's units) and the month. The next real reading trues it up."""
        if not request.user.has_perm("billing.add_meterreading"):
            raise PermissionDenied
        form = EstimateForm(request.POST or None, user=request.user)
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    reading = services.reading_estimate(actor=request.user, **form.cleaned_data)
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    messages.success(request, _("%(m)s of contract %(c)s estimated: %(k)s kWh, register %(v)s.") % {
                        "m": f"{reading.period:%m/%Y}", "c": reading.contract.number, "k": reading.kwh,
                        "v": reading.value,
                    })  # fmt: skip
                    return redirect("admin:billing_meterreading_change", reading.pk)
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "title": _("Estimate a stopped meter's month"),
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/meterreading/estimate.html", context, status=status)


def correction_followed(old: MeterReading, new: MeterReading) -> str:
    """What became of the month's bill once ``old`` was corrected to ``new`` ('' without a bill): recomputed
    before issue; after issue, the adjustment proposed for ``new`` with its amount, or why none was."""
    bill = Invoice.objects.filter(contract_id=old.contract_id, period=old.period, kind=InvoiceKind.REGULAR).first()
    if bill is None:
        return ""
    if bill.status in (InvoiceStatus.DRAFT, InvoiceStatus.HELD):
        return _("Its bill is recomputed: %(k)s kWh, %(t)s.") % {"k": bill.kwh, "t": money(bill.total)}
    proposed = Adjustment.objects.filter(corrected_reading=new, original=bill).order_by("-pk").first()
    if proposed is not None:
        return _(
            "Its bill %(n)s was issued: adjustment proposed, %(d)s, awaiting another billing clerk's approval "
            "(see Adjustments)."
        ) % {"n": bill.number, "d": money(proposed.delta_total)}  # fmt: skip
    pending = Adjustment.objects.filter(original=bill, status=AdjustmentStatus.PROPOSED).order_by("pk").first()
    if pending is not None:
        return _(
            "Its bill %(n)s was issued, and no adjustment was proposed for this reading: the adjustment to %(k)s "
            "kWh (%(d)s) already awaits approval. Reject it and propose one for this reading."
        ) % {"n": bill.number, "k": pending.kwh, "d": money(pending.delta_total)}  # fmt: skip
    dispute = (
        Dispute.objects.open()
        .filter(
            Q(reading__contract_id=old.contract_id, reading__period=old.period)
            | Q(invoice__contract_id=old.contract_id, invoice__period=old.period)
        )
        .select_related("ticket")
        .first()
    )
    if dispute is not None:
        return _(
            "Its bill %(n)s was issued and is disputed (ticket %(t)s): no adjustment was proposed; the dispute's "
            "clerk proposes the one that closes it."
        ) % {"n": bill.number, "t": getattr(dispute.ticket, "number", "—")}  # fmt: skip
    return _(
        "Its bill %(n)s was issued, and no adjustment could be proposed now (the same amount, or no right to "
        "propose one): the audit log asks for it (adjustment needed)."
    ) % {"n": bill.number}  # fmt: skip


class EstimateForm(forms.Form):
    contract = forms.CharField(
        label=gettext_lazy("contract number"), max_length=40, help_text=gettext_lazy("A contract of your units.")
    )
    period = forms.DateField(
        label=gettext_lazy("period"),
        input_formats=list(MONTH_INPUT_FORMATS),
        widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        help_text=gettext_lazy("The month the meter did not count: estimated from its last three real cycles."),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_contract(self):
        return contract_numbered(user=self.user, number=self.cleaned_data["contract"])

    def clean_period(self):
        return self.cleaned_data["period"].replace(day=1)


class ReadingCorrectForm(forms.Form):
    value = WholeNumberField(
        label=gettext_lazy("corrected register"), min_value=0,
        # The browser stops at the most a meter reads; above it ``reading_correct`` refuses the register in the
        # reading rules' words (``billing.rules.register_refusal``).
        widget=forms.NumberInput(attrs={"max": LARGEST_REGISTER}),
        help_text=gettext_lazy("The register as the meter shows it. The old reading is kept, superseded."),
    )  # fmt: skip
    reason = forms.CharField(
        label=gettext_lazy("reason"), max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Why the reading is corrected (kept in the audit record)."),
    )  # fmt: skip

    # The service's names for what it refuses → this form's fields (the register's consumption is the register's).
    SERVICE_FIELDS = {"value": "value", "kwh": "value", "reading": "value", "reason": "reason", "record": "reason"}


class BillingRunForm(forms.Form):
    period = forms.DateField(
        label=gettext_lazy("period"),
        input_formats=list(MONTH_INPUT_FORMATS),
        widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        help_text=gettext_lazy("The billed month."),
    )
    unit = forms.ModelChoiceField(queryset=Unit.objects.none(), required=False, label=gettext_lazy("unit"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = Unit.objects.for_user(user).order_by("code")
        self.fields["unit"].empty_label = _("All my units")

    def clean_period(self):
        return self.cleaned_data["period"].replace(day=1)


class AnomalyScanForm(BillingRunForm):
    threshold = forms.DecimalField(
        label=gettext_lazy("hold threshold (×)"),
        required=False,
        max_digits=4,
        decimal_places=2,
        help_text=gettext_lazy("Empty: the configured threshold."),
    )


class PaymentForm(forms.Form):
    """A payment received against the invoice: the amount (what is still owed, to begin with), when it was
    made, how it came in and the transaction's reference."""

    amount = WholeNumberField(label=gettext_lazy("amount (đồng)"), min_value=1)
    paid_at = forms.DateTimeField(
        label=gettext_lazy("paid at"),
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                       "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
    )
    source = forms.ChoiceField(label=gettext_lazy("paid through"), choices=PaymentSource.choices)
    reference = forms.CharField(
        label=gettext_lazy("transaction reference"), max_length=100,
        help_text=gettext_lazy("The bank's or the partner's reference of the transaction, or the counter's receipt "
                               "number."),
    )  # fmt: skip


@admin.register(Invoice)
class InvoiceAdmin(MoneyDisplays, StreamingExportMixin, BillingAdminMixin, ReadOnlyAdmin):
    list_display = [
        "number", "kind", "customer", "contract", "unit", "period_month", "kwh", "total_vnd", "status",
        "issued_at",
    ]  # fmt: skip
    list_select_related = ["customer", "contract", "unit"]
    list_filter = [PeriodFilter, "status", "kind", ScopedUnitFilter]
    # The bill's number, the customer's code, the contract's number or the serial of the meter it was read on.
    search_fields = [
        "number__exact", "customer__code__exact", "contract__number__exact", "reading__meter__serial__exact",
    ]  # fmt: skip
    fields = [
        "number", "kind", "status", "hold_kind", "hold_reason_shown", "customer", "contract", "unit", "period",
        "period_start", "period_end", "reading", "kwh", "households", "subtotal_vnd", "vat_vnd", "total_vnd",
        "offsets_shown", "refund_offset_vnd", "amount_due_vnd", "owed_vnd", "adjusts", "run", "created_at",
        "issued_at", "paid_at",
    ]  # fmt: skip
    readonly_fields = [
        "hold_reason_shown",
        "subtotal_vnd",
        "vat_vnd",
        "total_vnd",
        "offsets_shown",
        "refund_offset_vnd",
        "amount_due_vnd",
        "owed_vnd",
    ]
    # "Print", "Open a dispute" and "Record a payment"
    change_form_template = "admin/billing/invoice/change_form.html"
    inlines = [
        InvoiceLineInline, RebateApplicationInline, PaymentInline, AdjustmentInvoiceInline, CorrectionInline,
    ]  # fmt: skip
    actions = ["issue", "hold", "release", "export_selected_csv", "export_selected_xlsx"]
    ordering = ["-id"]
    export_resource_class = InvoiceResource  # streamed exports of the changelist
    # "Billing run" and "Anomaly scan" next to "Export (all matching rows)" (extends the mixin's template)
    change_list_template = "admin/billing/invoice/change_list.html"

    @admin.display(description=gettext_lazy("period"), ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%m/%Y")

    @admin.display(description=Invoice._meta.get_field("hold_reason").verbose_name)
    def hold_reason_shown(self, obj):
        """Why the bill is held, in the interface's language (``money.hold_reason_label``)."""
        return hold_reason_label(obj.hold_reason) or "—"

    @admin.display(description=gettext_lazy("refunds offset on this bill"))
    def offsets_shown(self, obj):
        return "; ".join(f"{row['label']}: {money(row['amount'])}" for row in _offsets(obj)) or "—"

    @admin.display(description=gettext_lazy("still owed"))
    def owed_vnd(self, obj):
        """The amount due (after the credits of its approved adjustments) less the payments recorded, once the
        bill is issued."""
        if obj.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            return "—"
        return money(services.payment_owed(obj))

    def get_search_results(self, request, queryset, search_term):
        """One exact term: an invoice number, a customer code, a contract number or a meter serial (the bills
        of every contract the meter has served). Each is an indexed lookup of its own table."""
        match = request.resolver_match
        source = (request.GET.get("app_label"), request.GET.get("model_name"), request.GET.get("field_name"))
        if match is not None and match.url_name == "autocomplete" and source == ("billing", "adjustment", "original"):
            # An adjustment is proposed on a bill, never on an adjustment invoice (``adjustment_propose`` refuses
            # one naming its bill): only the regular bills are offered.
            queryset = queryset.filter(kind=InvoiceKind.REGULAR)
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(
            Q(number=term)
            | Q(customer_id__in=Customer.objects.filter(code=term).values("pk"))
            | Q(contract_id__in=Contract.objects.filter(number=term).values("pk"))
            | Q(contract_id__in=MeterAssignment.objects.filter(meter__serial=term).values("contract_id"))
        ), False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_open_dispute": self._has(request, "add_dispute"),
            "can_record_payment": self._has(request, "add_payment"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def pay_view(self, request, pk):
        """Record a payment received against the bill. Scoped like the list: an invoice of another unit is not
        found. A refusal of the service comes back beside its field with what the clerk typed."""
        if not self._has(request, "add_payment"):
            raise PermissionDenied
        invoice = get_object_or_404(self.get_queryset(request).select_related("customer", "unit"), pk=pk)
        owed = services.payment_owed(invoice)
        now = timezone.localtime().replace(microsecond=0)
        form = PaymentForm(request.POST or None, initial={"amount": owed if owed > 0 else None, "paid_at": now})
        if request.method == "POST" and form.is_valid():
            try:
                recorded = services.payment_record(actor=request.user, invoice=invoice, **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                self._report_payment(request, recorded)
                return redirect("admin:billing_invoice_change", invoice.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record a payment on invoice %(n)s") % {"n": invoice.number},
            "opts": self.model._meta,
            "invoice": invoice,
            "owed": owed,
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/invoice/pay.html", context)

    @staticmethod
    def _report_payment(request, recorded: services.PaymentRecorded) -> None:
        payment = recorded.payment
        said = {"a": money(payment.amount), "n": payment.invoice.number, "r": payment.reference}
        if not recorded.created:
            messages.warning(request, _("Transaction %(r)s was already recorded: %(a)s on invoice %(n)s.") % said)
            return
        messages.success(request, _("Payment of %(a)s recorded on invoice %(n)s.") % said)
        if payment.invoice.status == InvoiceStatus.PAID:
            messages.success(request, _("Invoice %(n)s is paid.") % said)

    def export_job_view(self, request):
        """Export every matching bill (the list's filters and search) to a file written by a background job:
        for the big lists, which would take a minute or more to stream."""
        from core.exports import ExportFormatForm

        if not self.has_streaming_export_permission(request):
            raise PermissionDenied
        form = ExportFormatForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            try:
                job = jobs.job_start_export(
                    actor=request.user, model_admin=self, filters=request.GET.urlencode(),
                    file_format=form.cleaned_data["file_format"],
                )  # fmt: skip
            except ValidationError as exc:
                report_errors(request, exc)
            else:
                messages.success(request, _("%(job)s is queued.") % {"job": job})
                return redirect("admin:billing_billingjob_status", pk=job.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Export all matching invoices in the background"),
            "opts": self.model._meta,
            "form": form,
            "filters": list(request.GET.items()),
        }
        return TemplateResponse(request, "admin/billing/invoice/export_job.html", context)

    def print_view(self, request, pk):
        """The bill as the customer receives it: its lines, VAT by rate, the totals, the customer's code and
        address. Scoped like the list: an invoice of another unit is not found."""
        invoice = get_object_or_404(
            self.get_queryset(request).select_related("customer", "contract", "unit", "adjusts"), pk=pk
        )
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        lines = list(invoice.lines.order_by("position"))
        by_rate = _bases(lines)
        vats = _vat_by_rate(invoice, by_rate)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Invoice %(n)s") % {"n": invoice.number},
            "opts": self.model._meta,
            "invoice": invoice,
            "lines": [{"line": line, "label": line_label(line.label)} for line in lines],
            # The base and VAT of each rate (a change of rate within the month gives several); they add up to
            # the bill's VAT below them.
            "rates": [
                {"percent": rate, "base": base, "vat": None if vats is None else vats[rate]}
                for rate, base in sorted(by_rate.items())
            ],
            # Refunds offset on the bill: taken off the total, the customer pays the amount due.
            "offsets": _offsets(invoice),
        }
        return TemplateResponse(request, "admin/billing/invoice/print.html", context)

    # Actions ------------------------------------------------------------------------------------------

    def has_issue_permission(self, request):
        return self._has(request, "issue_invoice")

    def has_hold_permission(self, request):
        return self._has(request, "change_invoice")

    @admin.action(description=gettext_lazy("Issue"), permissions=["issue"], location=BOTH)
    def issue(self, request, queryset):
        done = _for_each(
            request, queryset.order_by("pk"), lambda i: services.invoice_issue(actor=request.user, invoice=i)
        )
        if done:
            messages.success(request, _("%(n)d invoice(s) issued.") % {"n": done})

    @admin.action(description=gettext_lazy("Hold for review"), permissions=["hold"], location=BOTH)
    def hold(self, request, queryset):
        reason = _("Held by a billing clerk")
        done = _for_each(
            request,
            queryset.order_by("pk"),
            lambda i: services.invoice_hold(actor=request.user, invoice=i, reason=reason),
        )
        if done:
            messages.success(request, _("%(n)d invoice(s) held.") % {"n": done})

    @admin.action(description=gettext_lazy("Release (back to draft)"), permissions=["hold"], location=BOTH)
    def release(self, request, queryset):
        done = _for_each(
            request,
            queryset.order_by("pk"),
            lambda i: services.invoice_release(actor=request.user, invoice=i),
        )
        if done:
            messages.success(request, _("%(n)d invoice(s) released.") % {"n": done})

    # The billing run and the anomaly scan -------------------------------------------------------------

    def has_run_permission(self, request):
        return self._has(request, "add_billingrun")

    def has_scan_permission(self, request):
        return self._has(request, "add_anomalybandcount")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("run/", view(self.run_view), name="billing_invoice_run"),
            path("anomaly-scan/", view(self.anomaly_scan_view), name="billing_invoice_anomaly_scan"),
            path("<int:pk>/print/", view(self.print_view), name="billing_invoice_print"),
            path("<int:pk>/pay/", view(self.pay_view), name="billing_invoice_pay"),
            path("export-background/", view(self.export_job_view), name="billing_invoice_export_job"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_run": self.has_run_permission(request),
            "can_scan": self.has_scan_permission(request),
        }
        return super().changelist_view(request, extra_context)

    @staticmethod
    def _units(request, unit) -> list:
        """The units a run covers: the one chosen, else every unit of the user's (one run over the whole
        country only for those who see everything)."""
        if unit is not None:
            return [unit]
        if scope_for(request.user).everything:
            return [None]
        return list(Unit.objects.for_user(request.user).order_by("code"))

    def _run_page(self, request, *, title, form, mode):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "form": form,
            "mode": mode,
        }
        return TemplateResponse(request, "admin/billing/invoice/run.html", context)

    def run_view(self, request):
        """Bill a month: one invoice per active contract with a reading and no bill yet (safe to run again).
        The run is a background job; the next page follows it."""
        if not self.has_run_permission(request):
            raise PermissionDenied
        form = BillingRunForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                job = jobs.job_start_billing_run(
                    actor=request.user, period=form.cleaned_data["period"],
                    units=self._units(request, form.cleaned_data["unit"]),
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)  # beside the month or the unit it concerns, what was typed kept
            else:
                messages.success(request, _("%(job)s is queued.") % {"job": job})
                return redirect("admin:billing_billingjob_status", pk=job.pk)
        return self._run_page(request, title=_("Billing run"), form=form, mode="run")

    def anomaly_scan_view(self, request):
        """Compare a month's consumption with the previous one: band counts, re-inspections, bills held.
        The scan is a background job; the next page follows it."""
        if not self.has_scan_permission(request):
            raise PermissionDenied
        form = AnomalyScanForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                job = jobs.job_start_anomaly_scan(
                    actor=request.user, period=form.cleaned_data["period"],
                    units=self._units(request, form.cleaned_data["unit"]),
                    threshold=form.cleaned_data.get("threshold"),
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)  # the threshold's range beside the threshold
            else:
                messages.success(request, _("%(job)s is queued.") % {"job": job})
                return redirect("admin:billing_billingjob_status", pk=job.pk)
        return self._run_page(request, title=_("Anomaly scan"), form=form, mode="scan")


INVOICE_LINE_COLUMNS = (
    "invoice", "position", "label_shown", "segment_start", "kwh", "price_vnd", "amount_vnd", "vat_percent",
)  # fmt: skip


@admin.register(InvoiceLine)
class InvoiceLineAdmin(MoneyDisplays, ReadOnlyAdmin):
    list_display = fields = readonly_fields = INVOICE_LINE_COLUMNS
    list_select_related = ["invoice"]
    list_filter = [InvoiceUnitFilter]
    search_fields = ["invoice__number__exact"]
    ordering = ["-id"]


@admin.register(Payment)
class PaymentAdmin(MoneyDisplays, ReadOnlyAdmin):
    """The payments of the user's units, as recorded (``payment_record``): read only, never changed or
    deleted. Found by the transaction's reference or the invoice's number."""

    list_display = [
        "invoice", "amount_vnd", "paid_at", "source", "reference", "unit", "recorded_by", "created_at",
    ]  # fmt: skip
    list_select_related = ["invoice", "unit", "recorded_by"]
    list_filter = ["source", ("paid_at", admin.DateFieldListFilter), ScopedUnitFilter]
    search_fields = ["reference__exact", "invoice__number__exact"]
    fields = readonly_fields = (
        "invoice", "unit", "amount_vnd", "paid_at", "source", "reference", "recorded_by", "created_at",
    )  # fmt: skip
    ordering = ["-id"]

    def get_search_results(self, request, queryset, search_term):
        """One exact term: a transaction's reference or an invoice's number, each an indexed lookup."""
        term = search_term.strip()
        if not term:
            return queryset, False
        invoices = Invoice.objects.filter(number=term).values("pk")
        return queryset.filter(Q(reference=term) | Q(invoice_id__in=invoices)), False


@admin.register(BillingRun)
class BillingRunAdmin(ReadOnlyAdmin):
    """A run has no scoped manager: scoped here by its unit. A run over every unit is the administrators'."""

    list_display = ["period_month", "unit", "started_at", "finished_at", "started_by", "invoices", "held",
                    "without_reading"]  # fmt: skip
    list_select_related = ["unit", "started_by"]
    list_filter = [PeriodFilter, ScopedUnitFilter]
    ordering = ["-id"]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        scope = scope_for(request.user)
        if scope.everything:
            return queryset
        return queryset.filter(unit_id__in=sorted(scope.unit_ids))

    @admin.display(description=gettext_lazy("period"), ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%m/%Y")


# Disputes, re-inspections, adjustments, refunds ----------------------------------------------------------


class RefusalKeepsInputMixin(_ModelAdmin):
    """An add form whose service refuses what was typed (a rule the form could not check) comes back with
    the clerk's input and the refusal next to its field, instead of an empty form and a message. The
    service's transaction has rolled back: nothing was written."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None or request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            return admin.ModelAdmin.changeform_view(self, request, object_id, form_url, extra_context)
        except ValidationError as exc:
            return self._refused(request, exc, form_url, extra_context)

    def _refused(self, request, exc: ValidationError, form_url, extra_context):
        form = self.get_form(request, None, change=False)(request.POST, request.FILES)
        form.is_valid()
        add_service_errors(form, exc)
        # The stubs type AdminForm's fieldsets narrower than the admin's own get_fieldsets() result.
        fieldsets: Any = list(self.get_fieldsets(request, None))
        admin_form = admin.helpers.AdminForm(
            form, fieldsets, self.get_prepopulated_fields(request, None), self.get_readonly_fields(request, None),
            model_admin=self,
        )  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add %s") % self.model._meta.verbose_name,
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": admin.helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(request, context, add=True, change=False, obj=None, form_url=form_url)


class DisputeForm(forms.ModelForm):
    class Meta:
        model = Dispute
        fields = ["ticket", "invoice", "reading", "claim"]


@admin.register(Dispute)
class DisputeAdmin(RefusalKeepsInputMixin, StreamingExportMixin, BillingAdminMixin, ScopedAdmin):
    """A dispute is opened from the customer's billing complaint ticket (``dispute_open``), then resolved by
    its re-inspection or its adjustment; a withdrawal is recorded by an action."""

    form = DisputeForm
    list_display = ["ticket", "customer", "unit", "invoice", "reading", "status", "outcome", "opened_at"]
    list_display_links = ["ticket", "customer"]
    list_select_related = ["customer", "unit", "invoice", "reading__contract", "ticket"]
    list_filter = [DisputeQueueFilter, ScopedUnitFilter, "outcome"]
    search_fields = ["customer__code__exact", "invoice__number__exact", "ticket__number__exact"]
    autocomplete_fields = ["ticket", "invoice", "reading"]  # by number or code, never a database id
    actions = ["withdraw", "export_selected_csv", "export_selected_xlsx"]
    ordering = ["-id"]
    export_resource_class = DisputeResource  # streamed exports of the changelist

    def get_fields(self, request, obj=None):
        if obj is None:
            return DisputeForm.Meta.fields
        return [
            "ticket", "customer", "unit", "invoice", "reading", "claim", "status", "outcome", "opened_at",
            "opened_by", "resolved_at",
        ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request):
        """The add form opened from an invoice (``?invoice=<number>``), a ticket (``?ticket=<number>``) or the
        customer's card (``?customer=<code>``): the invoice, and the customer's latest open billing or meter
        complaint ticket, filled in (within the clerk's units; the clerk may change either)."""
        from tickets.models import Ticket

        user, asked = request.user, request.GET
        invoice = ticket = customer = None
        if asked.get("invoice"):
            invoice = Invoice.objects.for_user(user).filter(number=asked["invoice"]).first()
        if asked.get("ticket"):
            ticket = Ticket.objects.for_user(user).filter(number=asked["ticket"]).first()
        if asked.get("customer"):
            customer = Customer.objects.for_user(user).filter(code=asked["customer"]).first()
        customer_id = (
            getattr(customer, "pk", None)
            or getattr(invoice, "customer_id", None)
            or getattr(ticket, "customer_id", None)
        )
        if customer_id and ticket is None:
            ticket = (
                Ticket.objects.for_user(user).open()
                .filter(customer_id=customer_id, category__code__in=settings.TONGDAI_DISPUTE_CATEGORIES)
                .order_by("-id").first()
            )  # fmt: skip
        if customer_id and invoice is None:
            invoice = (
                Invoice.objects.for_user(user)
                .filter(customer_id=customer_id, kind=InvoiceKind.REGULAR).order_by("-period", "-id").first()
            )  # fmt: skip
        initial = {"ticket": getattr(ticket, "pk", None), "invoice": getattr(invoice, "pk", None)}
        return {key: value for key, value in initial.items() if value is not None}

    def has_change_permission(self, request, obj=None):
        return False  # moved only by the services (re-inspection, adjustment, the action below)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        named = data.get("invoice")
        dispute = services.dispute_open(
            actor=request.user, ticket=data.get("ticket"), claim=data.get("claim", ""),
            invoice=named, reading=data.get("reading"),
        )  # fmt: skip
        _adopt(obj, dispute)
        if named is not None and dispute.invoice is not None and dispute.invoice_id != named.pk:
            # An adjustment invoice contested: the dispute is about the bill it adjusts (``disputed_bill``).
            messages.info(request, _(
                "Adjustment invoice %(a)s adjusts bill %(b)s: the dispute is about bill %(b)s as adjusted."
            ) % {"a": named.number, "b": dispute.invoice.number})  # fmt: skip

    def save_related(self, request, form, formsets, change):
        pass

    def has_resolve_permission(self, request):
        return self._has(request, "change_dispute")

    @admin.action(
        description=gettext_lazy("Withdrawn by the customer"), permissions=["resolve"], location=BOTH
    )
    def withdraw(self, request, queryset):
        done = _for_each(
            request,
            queryset.order_by("pk"),
            lambda d: services.dispute_resolve(
                actor=request.user, dispute=d, outcome=DisputeOutcome.WITHDRAWN
            ),
        )
        if done:
            messages.success(request, _("%(n)d dispute(s) closed as withdrawn.") % {"n": done})


class ReinspectionForm(forms.Form):
    outcome = forms.ChoiceField(
        label=gettext_lazy("outcome"),
        choices=[
            (c.value, c.label)
            for c in (DisputeOutcome.CONFIRMED, DisputeOutcome.CORRECTED, DisputeOutcome.METER_FAULT)
        ],
    )
    reread_value = WholeNumberField(
        label=gettext_lazy("re-read register (kWh)"),
        required=False,
        min_value=0,
        help_text=gettext_lazy("The register read on site (not needed for a meter fault)."),
    )
    evidence = forms.CharField(
        label=gettext_lazy("evidence"),
        max_length=NOTE_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Photo, seal, witness."),
    )


@admin.register(Reinspection)
class ReinspectionAdmin(BillingAdminMixin, ReadOnlyAdmin):
    list_display = [
        "reading", "unit", "reason", "rise_percent", "created_at", "outcome", "reread_value", "done_at",
        "inspector",
    ]  # fmt: skip
    list_display_links = ["reading"]
    list_select_related = ["reading__contract", "unit", "inspector"]
    list_filter = [ReinspectionQueueFilter, ScopedUnitFilter, "reason", "outcome"]
    search_fields = ["reading__contract__number__exact"]
    actions = ["record_outcome"]
    ordering = ["-id"]

    def has_record_permission(self, request):
        return self._has(request, "change_reinspection")

    @admin.action(description=gettext_lazy("Record the outcome…"), permissions=["record"], location=BOTH)
    def record_outcome(self, request, queryset):
        """One re-inspection at a time: the register read on site belongs to one meter."""
        items = list(queryset.select_related("reading__contract")[:2])
        if len(items) != 1:
            messages.warning(request, _("Record one re-inspection at a time."))
            return None
        item = items[0]
        form = ReinspectionForm(request.POST if "_confirmed" in request.POST else None)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            month = {"contract_id": item.reading.contract_id, "period": item.reading.period}
            before = MeterReading.objects.current().filter(**month).select_related("contract").first()
            try:
                services.reinspection_record(
                    actor=request.user, item=item, outcome=data["outcome"], reread_value=data["reread_value"],
                    evidence=data["evidence"],
                )  # fmt: skip
            except ValidationError as exc:
                # Back to the form with what the clerk typed and the reason beside its field.
                add_service_errors(form, exc)
            else:
                messages.success(request, self._recorded(before, MeterReading.objects.current().filter(**month)))
                return None
        return self._action_page(
            request, action="record_outcome", title=_("Record the re-inspection outcome"), objects=items,
            form=form, submit=_("Record"),
        )  # fmt: skip


    @staticmethod
    def _recorded(before: MeterReading | None, current) -> str:
        """The re-inspection recorded, named by the month's reading in force now (the corrected one, when the
        register read on site corrected it), and what became of the month's bill then."""
        now = current.select_related("contract").first() or before
        done = _("Re-inspection of %(r)s recorded.") % {"r": now}
        if before is None or now is None or now.pk == before.pk:
            return done
        return " ".join(filter(None, [done, correction_followed(before, now)]))


class RejectForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("why rejected"), max_length=NOTE_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3})
    )


class AdjustmentForm(forms.ModelForm):
    """The clerk's proposal; ``adjustment_propose`` checks that the dispute and the reading are this bill's,
    and its refusal comes back beside the field (``RefusalKeepsInputMixin``)."""

    class Meta:
        model = Adjustment
        fields = ["original", "dispute", "corrected_reading", "kwh", "record"]


@admin.register(Adjustment)
class AdjustmentAdmin(RefusalKeepsInputMixin, MoneyDisplays, BillingAdminMixin, ScopedAdmin):
    """Proposed by one billing clerk (``adjustment_propose``), approved or rejected by another
    (``adjustment_decide``): the proposer's own decision is refused with a message."""

    form = AdjustmentForm
    list_display = [
        "original", "unit", "kwh", "delta_total_vnd", "status", "proposed_by", "proposed_at", "decided_by",
        "invoice",
    ]  # fmt: skip
    list_display_links = ["original"]
    list_select_related = ["original", "unit", "proposed_by", "decided_by", "invoice"]
    list_filter = [AdjustmentQueueFilter, ScopedUnitFilter, "status"]
    search_fields = ["original__number__exact"]
    autocomplete_fields = ["original", "dispute", "corrected_reading"]  # by number or code, never an id
    actions = ["approve", "reject"]
    ordering = ["-id"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return AdjustmentForm.Meta.fields
        return [
            "original", "unit", "dispute", "corrected_reading", "record", "kwh", "delta_subtotal_vnd",
            "delta_vat_vnd", "delta_total_vnd", "status", "proposed_by", "proposed_at", "decided_by", "decided_at", "decision_note",
            "invoice",
        ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "kwh" in form.base_fields:
            form.base_fields["kwh"].required = False
            form.base_fields["kwh"].help_text = _("Or choose the corrected reading: its kWh is used.")
        if obj is None and "dispute" in form.base_fields:
            form.base_fields["dispute"].help_text = _(
                "Left empty: the bill's open dispute, if any. The approved adjustment closes it as corrected."
            )
        return form

    def has_add_permission(self, request):
        return self._has(request, "propose_adjustment")

    def has_change_permission(self, request, obj=None):
        return False  # decided only through the actions below

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        adjustment = services.adjustment_propose(
            actor=request.user, invoice=data["original"], record=data.get("record", ""),
            reading=data.get("corrected_reading"), kwh=data.get("kwh"), dispute=data.get("dispute"),
        )  # fmt: skip
        _adopt(obj, adjustment)

    def save_related(self, request, form, formsets, change):
        pass

    def has_approve_permission(self, request):
        return self._has(request, "approve_adjustment")

    @admin.action(description=gettext_lazy("Approve (issue the adjustment invoice)"), permissions=["approve"],
                  location=BOTH)  # fmt: skip
    def approve(self, request, queryset):
        done = _for_each(
            request,
            queryset.order_by("pk"),
            lambda a: services.adjustment_decide(actor=request.user, adjustment=a, approve=True),
            label=lambda a: a.original.number,
        )
        if done:
            messages.success(request, _("%(n)d adjustment(s) approved and invoiced.") % {"n": done})

    @admin.action(description=gettext_lazy("Reject…"), permissions=["approve"], location=BOTH)
    def reject(self, request, queryset):
        items = list(queryset.select_related("original").order_by("pk"))
        form = RejectForm(request.POST if "_confirmed" in request.POST else None)
        if form.is_bound and form.is_valid():
            note = form.cleaned_data["note"]
            done = _for_each(
                request,
                items,
                lambda a: services.adjustment_decide(
                    actor=request.user, adjustment=a, approve=False, note=note
                ),
                label=lambda a: a.original.number,
            )
            if done:
                messages.success(request, _("%(n)d adjustment(s) rejected.") % {"n": done})
            return None
        return self._action_page(
            request, action="reject", title=_("Reject adjustments"), objects=items, form=form,
            submit=_("Reject"),
        )  # fmt: skip


class RefundForm(forms.Form):
    reference = forms.CharField(label=gettext_lazy("payment reference"), max_length=100)


class OffsetForm(forms.Form):
    """The customer's bill not yet issued that takes the offset, chosen by its number."""

    invoice = forms.ChoiceField(label=gettext_lazy("next bill"))

    def __init__(self, *args, refund: Refund, user, **kwargs):
        super().__init__(*args, **kwargs)
        bills = (
            Invoice.objects.for_user(user)
            .filter(customer_id=refund.customer_id, kind=InvoiceKind.REGULAR,
                    status__in=[InvoiceStatus.DRAFT, InvoiceStatus.HELD])
            .order_by("period", "number")
        )  # fmt: skip
        invoice_field = self.fields["invoice"]
        assert isinstance(invoice_field, forms.ChoiceField)
        invoice_field.choices = [
            (bill.number, _("%(n)s, %(m)s: amount due %(d)s")
             % {"n": bill.number, "m": bill.period.strftime("%m/%Y"), "d": money(bill.amount_due)})
            for bill in bills
        ]  # fmt: skip
        self.fields["invoice"].help_text = _("The customer's bills not yet issued, by number.")


@admin.register(Refund)
class RefundAdmin(MoneyDisplays, BillingAdminMixin, ReadOnlyAdmin):
    list_display = ["customer", "unit", "amount_vnd", "settled_how", "reference", "settled_at", "adjustment"]
    list_display_links = ["customer"]
    fields = (
        "adjustment", "customer", "unit", "amount_vnd", "settled_how", "offset_invoice", "reference", "settled_at",
        "settled_by", "created_at",
    )  # fmt: skip

    @admin.display(description=gettext_lazy("settled by"), ordering="method")
    def settled_how(self, obj):
        """How the refund was settled; a credit that came off what its own bill still owed says so."""
        if obj.method == RefundMethod.OFFSET and obj.offset_invoice_id == obj.adjustment.original_id:
            return _("Came off what bill %(n)s still owed") % {"n": obj.adjustment.original.number}
        return obj.get_method_display() or "—"

    readonly_fields = fields
    list_select_related = ["customer", "unit", "adjustment__original"]
    list_filter = [RefundQueueFilter, ScopedUnitFilter, "method"]
    search_fields = ["customer__code__exact"]
    actions = ["settle_by_refund", "offset_on_next_bill"]
    ordering = ["-id"]

    def has_settle_permission(self, request):
        return self._has(request, "change_refund")

    @admin.action(description=gettext_lazy("Offset on the next bill…"), permissions=["settle"], location=BOTH)
    def offset_on_next_bill(self, request, queryset):
        items = list(queryset.select_related("customer").order_by("pk")[:2])
        if len(items) != 1:
            messages.error(
                request, _("Choose one refund at a time: it is offset on its customer's next bill.")
            )
            return None
        refund = items[0]
        if refund.method:
            messages.error(request, _("%(r)s: this refund is already settled.") % {"r": refund})
            return None
        form = OffsetForm(
            request.POST if "_confirmed" in request.POST else None, refund=refund, user=request.user
        )
        if not form.fields["invoice"].choices:
            messages.error(
                request, _("%(r)s: the customer has no bill not yet issued to offset it on.") % {"r": refund}
            )
            return None
        if form.is_bound and form.is_valid():
            invoice = Invoice.objects.for_user(request.user).get(
                number=form.cleaned_data["invoice"], customer_id=refund.customer_id
            )
            try:
                services.refund_settle(actor=request.user, refund=refund, method=RefundMethod.OFFSET,
                                       offset_invoice=invoice)  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                invoice.refresh_from_db()
                messages.success(request, _("%(r)s offset on bill %(n)s: amount due %(d)s.")
                                 % {"r": money(refund.amount), "n": invoice.number, "d": money(invoice.amount_due)})  # fmt: skip
                return None
        return self._action_page(
            request, action="offset_on_next_bill", title=_("Settle a refund: offset on the next bill"),
            objects=items, form=form, submit=_("Offset on this bill"),
        )  # fmt: skip

    @admin.action(
        description=gettext_lazy("Paid back to the customer…"), permissions=["settle"], location=BOTH
    )
    def settle_by_refund(self, request, queryset):
        items = list(queryset.select_related("customer").order_by("pk"))
        form = RefundForm(request.POST if "_confirmed" in request.POST else None)
        if form.is_bound and form.is_valid():
            reference = form.cleaned_data["reference"]
            done = _for_each(
                request,
                items,
                lambda r: services.refund_settle(
                    actor=request.user, refund=r, method=RefundMethod.REFUND, reference=reference
                ),
                label=lambda r: str(r),
            )
            if done:
                messages.success(request, _("%(n)d refund(s) settled.") % {"n": done})
            return None
        return self._action_page(
            request, action="settle_by_refund", title=_("Settle refunds: paid back"), objects=items, form=form,
            submit=_("Record the payment"),
        )  # fmt: skip


# Rebates, anomalies, audit -------------------------------------------------------------------------------


REBATE_APPLICATION_COLUMNS = (
    "programme",
    "invoice",
    "percent",
    "base_vnd",
    "amount_vnd",
    "vat_vnd",
    "applied_at",
)


@admin.register(RebateApplication)
class RebateApplicationAdmin(MoneyDisplays, ReadOnlyAdmin):
    list_display = fields = readonly_fields = REBATE_APPLICATION_COLUMNS
    list_select_related = ["programme", "invoice"]
    list_filter = [InvoiceUnitFilter, "programme"]
    search_fields = ["invoice__number__exact"]
    ordering = ["-id"]

    @admin.display(description=gettext_lazy("amount before VAT"))
    def base_vnd(self, obj):
        return money(obj.base)


@admin.register(AnomalyBandCount)
class AnomalyBandCountAdmin(ReadOnlyAdmin):
    list_display = [
        "period_month", "unit", "compared", "below_30", "from_30", "from_50", "from_100", "from_300", "held",
        "threshold", "computed_at",
    ]  # fmt: skip
    list_select_related = ["unit"]
    list_filter = [PeriodFilter, ScopedUnitFilter]
    ordering = ["-id"]

    @admin.display(description=gettext_lazy("period"), ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%m/%Y")


class AuditChangeList(ScopedChangeList):
    """The audit list's page, its records' objects read by their names (``audit_record_names``)."""

    def get_results(self, request):
        super().get_results(request)
        audit_record_names(self.result_list)


# What each kind of audited record's name reads besides its own row (its __str__), joined in its one query.
AUDITED_NAMES_READ = {
    "meterreading": ["contract"], "dispute": ["ticket", "invoice", "customer"], "adjustment": ["original"],
    "refund": ["customer"], "reinspection": ["reading__contract"], "billingrun": ["unit"],
    "rebateapplication": ["programme", "invoice"], "anomalybandcount": ["unit"], "pricestep": ["table"],
    "payment": ["invoice"],
}  # fmt: skip


def audit_record_names(records) -> None:
    """Set ``record_name`` on each audit record: its object read by its number or code (an invoice's number,
    a reading's contract and month, a dispute's ticket…), one query per kind of record on the page; a record
    no longer there (or of no billing model) keeps its kind and id."""
    wanted: dict[str, set[int]] = {}
    for record in records:
        if record.object_id is not None:
            wanted.setdefault(record.object_type, set()).add(record.object_id)
    found: dict[tuple[str, int], str] = {}
    for kind, ids in wanted.items():
        try:
            model = apps.get_model("billing", kind)
        except LookupError:
            continue
        queryset = model._default_manager.all()
        if kind in AUDITED_NAMES_READ:
            queryset = queryset.select_related(*AUDITED_NAMES_READ[kind])
        rows = queryset.in_bulk(ids)
        found.update({(kind, pk): str(obj) for pk, obj in rows.items()})
    for record in records:
        record.record_name = found.get((record.object_type, record.object_id)) or (
            f"{record.object_type} {record.object_id}" if record.object_id is not None else record.object_type
        )


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "unit", "action", "record", "rows", "reason"]
    list_select_related = ["actor", "unit"]
    list_filter = [AuditObjectFilter, ScopedUnitFilter]
    search_fields = ["action"]
    ordering = ["-id"]

    def get_changelist(self, request, **kwargs):
        return AuditChangeList

    @admin.display(description=gettext_lazy("record"))
    def record(self, obj):
        if not hasattr(obj, "record_name"):  # a page of one record (its change form)
            audit_record_names([obj])
        return obj.record_name

    def get_search_results(self, request, queryset, search_term):
        """A number is a record id; anything else an action name (e.g. invoice.issue). Both exact."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(object_id=int(term)), False
        return queryset.filter(action=term), False


# Reference data (administrators) -------------------------------------------------------------------------


class PriceStepInline(ReadOnlyInline):
    model = PriceStep
    fields = ("position", "upper_kwh", "register", "price")
    readonly_fields = fields
    ordering = ["position"]


def _whole(text: str, line: str) -> int:
    try:
        value = int(text.replace(".", "").replace(",", "").replace(" ", ""))
    except ValueError:
        raise forms.ValidationError(_("Not a whole number in the line “%(l)s”.") % {"l": line}) from None
    if value <= 0:
        raise forms.ValidationError(_("Numbers must be positive in the line “%(l)s”.") % {"l": line})
    return value


class PriceTableForm(forms.ModelForm):
    """A new table: its tiers (or flat price) and time-of-use registers as lines of text."""

    tiers = forms.CharField(
        label=gettext_lazy("tiers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 7, "cols": 30}),
        help_text=gettext_lazy(
            "One tier a line: its upper kWh and its price, e.g. “50 1984”; the last tier only its price "
            "(“3460”). A flat price is one line with the price."
        ),
    )
    tou_prices = forms.CharField(
        label=gettext_lazy("time-of-use prices"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 30}),
        help_text=gettext_lazy("One register a line: its name and price, e.g. “peak 5422”."),
    )

    class Meta:
        model = PriceTable
        fields = ["tariff_category", "kind", "valid_from", "legal_basis"]

    def clean_tiers(self):
        tiers = []
        for line in (self.cleaned_data.get("tiers") or "").splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 1:
                tiers.append((None, _whole(parts[0], line)))
            elif len(parts) == 2:
                upper = None if parts[0] in {"-", "…", "..."} else _whole(parts[0], line)
                tiers.append((upper, _whole(parts[1], line)))
            else:
                raise forms.ValidationError(_("Two numbers a line at most: “%(l)s”.") % {"l": line})
        return tiers

    def clean_tou_prices(self):
        registers = []
        for line in (self.cleaned_data.get("tou_prices") or "").splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise forms.ValidationError(_("A register name and a price: “%(l)s”.") % {"l": line})
            registers.append((parts[0], _whole(parts[1], line)))
        return registers


@admin.register(PriceTable)
class PriceTableAdmin(EverythingOnlyAdminMixin, ServiceErrorsMixin, admin.ModelAdmin):
    """Prices are history: a table once stored is never changed, a new price is a new table from a date."""

    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES  # whole numbers typed with digits only
    form = PriceTableForm
    list_display = ["tariff_category", "kind", "valid_from", "legal_basis"]
    list_filter = ["tariff_category", "kind"]
    ordering = ["tariff_category", "-valid_from"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*PriceTableForm.Meta.fields, "tiers", "tou_prices"]
        return PriceTableForm.Meta.fields

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return super().get_fieldsets(request, obj)
        if services.price_table_in_use(obj):
            why = _(
                "Issued bills used this price table: it is kept as they were computed, and their adjustments "
                "are computed from it again. A correction is a new table from a date."
            )
        else:
            why = _("A stored price table is never changed: a new price is a new table from a date.")
        return [(None, {"fields": self.get_fields(request, obj), "description": why})]

    def get_inlines(self, request, obj):
        return [PriceStepInline] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        table = services.price_table_create(
            actor=request.user, tariff_category=data["tariff_category"], kind=data["kind"],
            valid_from=data["valid_from"], tiers=data["tiers"], tou_prices=data["tou_prices"],
            legal_basis=data.get("legal_basis", ""),
        )  # fmt: skip
        _adopt(obj, table)

    def save_related(self, request, form, formsets, change):
        pass


@admin.register(VatRate)
class VatRateAdmin(EverythingOnlyAdminMixin, ServiceErrorsMixin, admin.ModelAdmin):
    """VAT rates are history: a rate issued bills used is shown read-only (the database refuses to change it);
    a correction is a new rate from a date. Through the services, audited."""

    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES  # whole numbers typed with digits only
    list_display = ["valid_from", "percent", "legal_basis"]
    ordering = ["-valid_from"]
    fields = ["valid_from", "percent", "legal_basis"]

    def get_readonly_fields(self, request, obj=None):
        return ["valid_from"] if obj is not None else []

    def get_fieldsets(self, request, obj=None):
        if obj is None or not services.vat_rate_in_use(obj):
            return super().get_fieldsets(request, obj)
        why = _(
            "Issued bills used this VAT rate: it is kept as they were computed, and their adjustments are "
            "computed from it again. A correction is a new rate from a date."
        )
        return [(None, {"fields": self.fields, "description": why})]

    def has_change_permission(self, request, obj=None):
        if obj is not None and services.vat_rate_in_use(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.vat_rate_change(
                actor=request.user, rate=obj, percent=data["percent"], legal_basis=data.get("legal_basis", "")
            )
            return
        rate = services.vat_rate_create(
            actor=request.user, valid_from=data["valid_from"], percent=data["percent"],
            legal_basis=data.get("legal_basis", ""),
        )  # fmt: skip
        _adopt(obj, rate)


@admin.register(InvoiceCounter)
class InvoiceCounterAdmin(admin.ModelAdmin):
    """The last invoice number of each year, advanced by the services only: shown, never edited."""

    list_display = ["year", "last"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RebateBandInline(admin.TabularInline):
    model = RebateBand
    fields = ["from_kwh", "to_kwh", "percent"]
    extra = 1

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == RebateStatus.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


class RebateProgrammeForm(forms.ModelForm):
    """A programme's first and last billed months are typed as months (as the billing run's), and stored as
    their first day: a day typed inside a month names that month, which its bills' period is."""

    MONTH_FIELDS = ("period_from", "period_to")

    class Meta:
        model = RebateProgramme
        fields = ["name", "legal_basis", "customer_types", "units", "period_from", "period_to", "min_kwh", "max_kwh"]
        widgets = {name: forms.DateInput(attrs={"type": "month"}, format="%Y-%m")
                   for name in ("period_from", "period_to")}  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.MONTH_FIELDS:
            if name in self.fields:
                self.fields[name].input_formats = list(MONTH_INPUT_FORMATS)

    def clean_period_from(self):
        month = self.cleaned_data.get("period_from")
        return month.replace(day=1) if month else month

    def clean_period_to(self):
        month = self.cleaned_data.get("period_to")
        return month.replace(day=1) if month else month


@admin.register(RebateProgramme)
class RebateProgrammeAdmin(RecordFieldsMixin, SafeListMixin, BillingAdminMixin, admin.ModelAdmin):
    """A programme is edited while a draft; once applied it is what the bills say, changed only by reversing."""

    list_display = ["name", "period_from", "period_to", "min_kwh", "max_kwh", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    filter_horizontal = ["units"]
    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES  # the customer types: JSON with its nesting bounded
    inlines = [RebateBandInline]
    form = RebateProgrammeForm
    fields = [
        "name", "legal_basis", "customer_types", "units", "period_from", "period_to", "min_kwh", "max_kwh",
        "status", "created_at",
    ]  # fmt: skip
    actions = ["dry_run", "apply_programme", "reverse_programme"]
    ordering = ["-id"]

    readonly_fields = ["status", "created_at"]

    def has_apply_permission(self, request):
        """Apply and Reverse: the billing clerks and administrators (``billing.apply_rebateprogramme``); which
        programmes, the services decide (those of the units one serves, ``rebate_check_reach``)."""
        return request.user.has_perm("billing.apply_rebateprogramme")

    def has_change_permission(self, request, obj=None):
        return (obj is None or obj.status == RebateStatus.DRAFT) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return (obj is None or obj.status == RebateStatus.DRAFT) and super().has_delete_permission(
            request, obj
        )

    @admin.action(description=gettext_lazy("Dry run: who would get how much"), permissions=["view"],
                  location=BOTH)  # fmt: skip
    def dry_run(self, request, queryset):
        scope = scope_for(request.user)
        visible = (
            None
            if scope.everything
            else set(Unit.objects.for_user(request.user).values_list("code", flat=True))
        )
        results = []
        for programme in queryset.order_by("pk"):
            try:
                outcome = services.rebate_dry_run(programme=programme, user=request.user)
            except ValidationError as exc:
                messages.error(request, f"{programme}: {'; '.join(exc.messages)}")
                continue
            lines = [line for line in outcome["lines"] if visible is None or line["unit"] in visible]
            by_unit: dict = {}
            for line in lines:
                row = by_unit.setdefault(
                    line["unit"], {"unit": line["unit"], "invoices": 0, "amount": 0, "base": 0}
                )
                row["invoices"] += line["invoices"]
                row["amount"] += line["amount"]
                row["base"] += line["base"]
            results.append(
                {
                    "programme": programme,
                    "lines": lines,
                    "by_unit": list(by_unit.values()),
                    "invoices": sum(line["invoices"] for line in lines),
                    "amount": sum(line["amount"] for line in lines),
                    "base": sum(line["base"] for line in lines),
                }
            )
        if not results:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rebate dry run"),
            "opts": self.model._meta,
            "results": results,
            "partial": visible is not None,
        }
        return TemplateResponse(request, "admin/billing/rebateprogramme/dry_run.html", context)

    @admin.action(description=gettext_lazy("Apply to the bills not yet issued"), permissions=["apply"],
                  location=BOTH)  # fmt: skip
    def apply_programme(self, request, queryset):
        return self._start_jobs(request, queryset, reverse=False)

    def _start_jobs(self, request, queryset, *, reverse: bool):
        """Each programme's apply (or reverse) becomes a background job; one job is followed on its page."""
        started = []
        for programme in queryset.order_by("pk"):
            try:
                started.append(
                    jobs.job_start_rebate(actor=request.user, programme=programme, reverse=reverse)
                )
            except ValidationError as exc:
                messages.error(request, f"{programme}: {'; '.join(exc.messages)}")
        for job in started:
            messages.success(request, _("%(job)s is queued.") % {"job": job})
        if len(started) == 1:
            return redirect("admin:billing_billingjob_status", pk=started[0].pk)
        return None

    @admin.action(description=gettext_lazy("Reverse on the bills not yet issued"), permissions=["apply"],
                  location=BOTH)  # fmt: skip
    def reverse_programme(self, request, queryset):
        return self._start_jobs(request, queryset, reverse=True)


# Reading imports (the fast path for big files) ------------------------------------------------------------


def _can_import(request) -> bool:
    """Billing clerks import readings: whoever may add readings (or reading imports)."""
    return request.user.has_perm("billing.add_readingimport") or request.user.has_perm(
        "billing.add_meterreading"
    )


def _can_follow_imports(request) -> bool:
    return (
        _can_import(request)
        or request.user.has_perm("billing.view_readingimport")
        or request.user.has_perm("billing.view_meterreading")
    )


class ReadingImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV or XLSX file"),
        help_text=gettext_lazy(
            "A header line, then one reading a line: meter_serial (or contract_number), period (YYYY-MM), value; "
            "optionally taken_at (ISO date and time) and source (remote, handheld, photo)."
        ),
    )
    unit = forms.ModelChoiceField(queryset=Unit.objects.none(), required=False, label=gettext_lazy("unit"))
    period = forms.DateField(
        label=gettext_lazy("period"),
        required=False,
        input_formats=list(MONTH_INPUT_FORMATS),
        widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        help_text=gettext_lazy("For lines without a period; lines of another month are refused."),
    )
    source = forms.ChoiceField(
        label=gettext_lazy("source"),
        required=False,
        choices=[("", gettext_lazy("As each line says, else by the meter's kind")), *IMPORTABLE_SOURCES],
    )
    dry_run = forms.BooleanField(
        label=gettext_lazy("Dry run"), required=False,
        help_text=gettext_lazy("Check every line and count what would be written, without writing anything."),
    )  # fmt: skip
    skip_bad_lines = forms.BooleanField(
        label=gettext_lazy("Skip the bad lines"), required=False,
        help_text=gettext_lazy(
            "Import the good lines and list the bad ones. Unticked, a file with one bad line writes nothing."
        ),
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["unit"].queryset = Unit.objects.for_user(user).order_by("code")
        if scope_for(user).everything:
            self.fields["unit"].empty_label = _("Every unit")
        else:
            self.fields["unit"].required = True

    def clean_period(self):
        period = self.cleaned_data.get("period")
        return period.replace(day=1) if period else None


@admin.register(ReadingImport)
class ReadingImportAdmin(ReadOnlyAdmin):
    """Uploaded reading files: the upload page, and each import's progress, counts and refused lines.

    The upload and status pages are for whoever may add readings (billing clerks); the list and the record
    pages follow the model's own permissions. Every page is scoped by the import's unit."""

    list_display = [
        "file_name", "unit", "period_month", "status", "phase", "rows_total", "rows_inserted",
        "rows_flagged", "rows_unchanged", "rows_rejected", "uploaded_by", "created_at", "finished_at",
    ]  # fmt: skip
    list_display_links = ["file_name"]
    list_select_related = ["unit", "uploaded_by"]
    list_filter = ["status", ScopedUnitFilter]
    ordering = ["-id"]
    fields = [
        "file", "unit", "period", "source", "uploaded_by", "created_at", "status", "progress", "rows_total",
        "rows_inserted", "rows_flagged", "rows_unchanged", "rows_rejected", "rejects_file", "error",
        "started_at", "finished_at", "status_page",
    ]  # fmt: skip
    readonly_fields = ["progress", "status_page"]

    @admin.display(description=gettext_lazy("file"))
    def file_name(self, obj):
        return obj.file.name.rsplit("/", 1)[-1] if obj.file else ""

    @admin.display(description=gettext_lazy("period"), ordering="period")
    def period_month(self, obj):
        return obj.period.strftime("%m/%Y") if obj.period else ""

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, obj):
        return _progress_text(obj)

    @admin.display(description=gettext_lazy("status page"))
    def status_page(self, obj):
        from django.utils.html import format_html

        url = reverse("admin:billing_readingimport_status", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Progress and refused lines"))

    def has_add_permission(self, request):
        return _can_import(request)

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:billing_readingimport_upload")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="billing_readingimport_upload"),
            path("<int:pk>/status/", view(self.status_view), name="billing_readingimport_status"),
            path("<int:pk>/rejects/", view(self.rejects_view), name="billing_readingimport_rejects"),
            *super().get_urls(),
        ]

    def _page(self, request, template, context):
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, **context}
        return TemplateResponse(request, f"admin/billing/readingimport/{template}", context)

    def upload_view(self, request):
        """Save the file and hand it to a background task; the next page follows its progress."""
        if not _can_import(request):
            raise PermissionDenied
        form = ReadingImportForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    item = imports.reading_import_create(
                        actor=request.user, upload=form.cleaned_data["file"], unit=form.cleaned_data["unit"],
                        period=form.cleaned_data["period"], source=form.cleaned_data["source"],
                        dry_run=form.cleaned_data["dry_run"], skip_bad_lines=form.cleaned_data["skip_bad_lines"],
                    )  # fmt: skip
                    imports.reading_import_enqueue(item)
            except ValidationError as exc:
                report_errors(request, exc)
            else:
                messages.success(request, _("The file is queued for import."))
                return redirect("admin:billing_readingimport_status", pk=item.pk)
        recent = (
            ReadingImport.objects.for_user(request.user).select_related("unit", "uploaded_by").order_by("-id")
        )
        return self._page(request, "upload.html", {"title": _("Import readings from a file"), "form": form,
                                                   "recent": recent[:20]})  # fmt: skip

    def _item(self, request, pk) -> ReadingImport:
        if not _can_follow_imports(request):
            raise PermissionDenied
        return get_object_or_404(
            ReadingImport.objects.for_user(request.user).select_related("unit", "uploaded_by"), pk=pk
        )

    def status_view(self, request, pk):
        """Where an import stands: its phase and counts, and its first refused lines."""
        item = self._item(request, pk)
        rejects, more = [], False
        if item.rejects_file:
            import csv
            import io

            with item.rejects_file.open("rb") as handle:
                reader = csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
                next(reader, None)
                for row in reader:
                    if len(rejects) >= 50:
                        more = True
                        break
                    rejects.append(row)
        running = item.status in (ReadingImportStatus.QUEUED, ReadingImportStatus.RUNNING)
        return self._page(request, "status.html", {
            "title": _("Reading import %(f)s") % {"f": item}, "item": item, "progress": _progress_text(item),
            "running": running, "rejects": rejects, "more_rejects": more,
            "can_view_list": self.has_view_permission(request),
        })  # fmt: skip

    def rejects_view(self, request, pk):
        item = self._item(request, pk)
        if not item.rejects_file:
            raise PermissionDenied
        name = item.rejects_file.name.rsplit("/", 1)[-1]
        return FileResponse(item.rejects_file.open("rb"), as_attachment=True, filename=name)


def _progress_text(item: ReadingImport) -> str:
    """What can honestly be said of an import's progress. PostgreSQL imports report their phase (reading
    the file, checking, inserting) from a second connection while they run; on SQLite the import is seen
    only as queued, running, then done."""
    if item.status == ReadingImportStatus.QUEUED:
        return _("Waiting for a worker.")
    if item.status == ReadingImportStatus.DONE:
        return _("Done: %(n)s lines read.") % {"n": item.rows_total}
    if item.status == ReadingImportStatus.FAILED:
        return _("Failed: nothing was written.")
    if item.phase == "copy" and item.bytes_total:
        percent = min(100, round(100 * item.bytes_read / item.bytes_total))
        return _("Reading the file: %(p)s%% (%(b)s of %(t)s bytes).") % {
            "p": percent, "b": item.bytes_read, "t": item.bytes_total,
        }  # fmt: skip
    if item.phase == "validate":
        return _("Checking %(n)s lines.") % {"n": item.rows_total}
    if item.phase == "compute":
        return _("Computing the consumption of %(n)s lines.") % {"n": item.rows_total}
    if item.phase == "insert":
        return _("Inserting the readings (%(n)s lines).") % {"n": item.rows_total}
    return _("Running (the counts appear when it is done).")


# Long billing jobs (run by background tasks) --------------------------------------------------------------


@admin.register(BillingJob)
class BillingJobAdmin(ReadOnlyAdmin):
    """The billing runs, anomaly scans and rebate rounds run in the background: each one's progress and
    result. A member of staff sees the jobs of their units and those they started."""

    list_display = ["__str__", "status", "steps", "started_by", "created_at", "finished_at", "status_page"]
    list_select_related = ["started_by"]
    list_filter = ["kind", "status"]
    ordering = ["-id"]
    fields = [
        "kind", "status", "steps", "unit", "started_by", "created_at", "started_at", "finished_at", "error",
        "status_page",
    ]  # fmt: skip
    readonly_fields = ["steps", "status_page"]

    def get_queryset(self, request):
        return jobs.visible_jobs(request.user).select_related("unit", "started_by")

    @admin.display(description=gettext_lazy("progress"))
    def steps(self, obj):
        return _job_progress(obj)

    @admin.display(description=gettext_lazy("status page"))
    def status_page(self, obj):
        from django.utils.html import format_html

        url = reverse("admin:billing_billingjob_status", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Progress and result"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/status/", view(self.status_view), name="billing_billingjob_status"),
            path("<int:pk>/download/", view(self.download_view), name="billing_billingjob_download"),
            *super().get_urls(),
        ]

    def download_view(self, request, pk):
        """The file an export job wrote (its starter's, or a job of the viewer's units)."""
        return _job_download(self, request, pk)

    def status_view(self, request, pk):
        """Where a job stands; the page refreshes itself while it is queued or running. Shown to those who may
        read the billing jobs (the billing roles), as the jobs' list is."""
        job = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        running = job.status in (ReadingImportStatus.QUEUED, ReadingImportStatus.RUNNING)
        period = job.params.get("period")
        per_unit = job.kind in (BillingJobKind.BILLING_RUN, BillingJobKind.ANOMALY_SCAN)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": str(job),
            "job": job,
            "running": running,
            "progress": _job_progress(job),
            "rows": (job.result or {}).get("rows", []) if per_unit else [],
            "totals": (job.result or {}).get("totals") if per_unit else None,
            "outcome": _job_outcome(job),
            "is_run": job.kind == BillingJobKind.BILLING_RUN,
            "is_scan": job.kind == BillingJobKind.ANOMALY_SCAN,
            "period": period,
        }
        return TemplateResponse(request, "admin/billing/billingjob/status.html", context)


def _job_download(model_admin, request, pk):
    """An export's file, to whom may still read what it lists: refused (403, with the reason) once the user
    may no longer see the exported list, or no longer sees every unit the file covers."""
    job = get_object_or_404(model_admin.get_queryset(request), pk=pk)
    if not job.file or job.status != ReadingImportStatus.DONE:
        raise PermissionDenied
    refusal = _export_view_refusal(model_admin.admin_site, request, job) or jobs.export_download_refusal(
        job, request.user
    )
    if refusal:
        context = {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "job": job,
                   "title": _("The file is not downloaded"), "reason": refusal}  # fmt: skip
        return TemplateResponse(request, "admin/billing/billingjob/download_refused.html", context, status=403)
    name = job.file.name.rsplit("/", 1)[-1]
    return FileResponse(job.file.open("rb"), as_attachment=True, filename=name)


def _export_view_refusal(site, request, job: BillingJob) -> str:
    """Why the user may no longer read the list an export job wrote ('' when they may)."""
    try:
        exported = site.get_model_admin(apps.get_model(job.params.get("model", "")))
    except (LookupError, ValueError, NotRegistered):
        exported = None
    if exported is None or not exported.has_view_permission(request):
        return _("You may no longer see the list this file was exported from: it is not downloaded.")
    return ""


def _job_outcome(job: BillingJob) -> list[tuple[str, str, str]]:
    """A rebate round's counts and amounts, or an export's count of rows, labelled (the runs and scans keep
    their per-unit table under ``rows``: it has its own table on the page)."""
    if job.kind == BillingJobKind.EXPORT:
        labels: dict[str, tuple[str, Callable[[Any], str]]] = {"rows": (_("rows exported"), str)}
    elif job.kind in (BillingJobKind.REBATE_APPLY, BillingJobKind.REBATE_REVERSE):
        labels = {
            "invoices": (_("invoices reduced"), str), "amount": (_("reduction before VAT"), money),
            "vat": (_("VAT on the reduction"), money), "reversed": (_("invoices taken off"), str),
            "kept_on_issued": (_("issued invoices that keep it"), str),
        }  # fmt: skip
    else:
        labels = {}
    return [
        (key, labels[key][0], labels[key][1](value))
        for key, value in (job.result or {}).items()
        if key in labels
    ]


def _job_progress(job: BillingJob) -> str:
    if job.status == ReadingImportStatus.QUEUED:
        return _("Waiting for a worker.")
    if job.status == ReadingImportStatus.RUNNING:
        return _("Running: %(d)s of %(t)s done.") % {"d": job.steps_done, "t": job.steps_total}
    if job.status == ReadingImportStatus.DONE:
        return _("Done.")
    return _("Failed.")
