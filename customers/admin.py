"""Admin for customers, contracts and meters, with the agent's caller lookup and the customer card."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.widgets import AdminSplitDateTime, AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core import exports
from core.exports import ServiceImportMixin, StreamingExportMixin
from core.numbers import WholeNumberField
from crm.admin_base import (
    MaskedLookupsMixin,
    ReadOnlyAdmin,
    ScopedAdmin,
    ScopedUnitFilter,
    ServiceErrorsMixin,
    add_service_errors,
    report_errors,
)
from crm.models import Unit
from customers import privacy, rules, selectors, services
from customers.models import (
    Contract,
    ContractStatus,
    Customer,
    CustomerEvent,
    CustomerPhone,
    Meter,
    MeterAssignment,
    MeterStatus,
)
from customers.normalise import InvalidPhone, display_phone, normalise_code, normalise_phone, split_phones
from customers.resources import ContractResource, CustomerResource, MeterResource
from customers.selectors import MatchKind, contract_numbered


class CustomerSearchMixin:
    """The admin search box goes through the caller lookup (indexed, ranked, bounded), never a scan."""

    search_fields: list[str] | tuple[str, ...] = ("code",)  # shows the box; get_search_results below does the work

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        if exports.is_exporting(request):
            # "Export all matching customers": every match, not the best ones the page shows.
            try:
                matching = selectors.customers_matching(user=request.user, query=search_term)
            except selectors.InvalidQuery as exc:
                raise IncorrectLookupParameters(str(exc)) from exc
            return queryset.filter(pk__in=matching.values("pk")), False
        try:
            found = selectors.lookup_customers(user=request.user, query=search_term)
        except selectors.InvalidQuery as exc:
            messages.warning(request, str(exc))
            return queryset.none(), False
        if found.truncated:
            messages.info(
                request,
                _("More customers match; showing the best %(n)d. Add a word to narrow the search.")
                % {"n": len(found.customers)},
            )
        return queryset.filter(pk__in=[c.pk for c in found.customers]), False


class CustomerPhoneInline(admin.TabularInline):
    model = CustomerPhone
    fields = ("number", "is_primary", "label")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        return privacy.with_shown_fields(self.fields, CustomerPhone, {"number": privacy.PHONE}, request.user)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)


class CurrentUnitsView(AutocompleteJsonView):
    """The units offered to a new customer or meter: those of the user's scope in service today (a unit merged
    away keeps its old records but takes no new ones)."""

    def process_request(self, request):
        """Refused (403, as the admin's own autocomplete refuses a mismatched field) when the field named in the
        address does not choose a unit."""
        term, model_admin, source_field, to_field_name = super().process_request(request)
        if source_field.remote_field.model is not Unit:
            raise PermissionDenied
        return term, model_admin, source_field, to_field_name

    def get_queryset(self):
        return super().get_queryset().active()


class CurrentUnitSelect(AutocompleteSelect):
    url_name = "%s:customers_current_units"


class CurrentUnitMixin:
    """The unit of a new record is chosen among the units of today (``CurrentUnitsView``)."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "unit":
            kwargs["queryset"] = Unit.objects.for_user(request.user).active()
            kwargs["widget"] = CurrentUnitSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CustomerForm(forms.ModelForm):
    phones_text = forms.CharField(
        label=gettext_lazy("phone numbers"),
        required=False,
        help_text=gettext_lazy(
            "One or more, separated by commas, semicolons or new lines; any spelling (0903 123 456, +84903123456)."
        ),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    # The customer's ``updated_at`` when the page was built: a save over a change made since is refused
    # (``customer_update``), so that one clerk's save never undoes another's.
    seen_updated_at = forms.CharField(label="", required=False, widget=forms.HiddenInput)
    # A new customer's form carries a one-time token drawn with the page: the same form posted twice (a double
    # click, a resubmit) registers one customer (``customer_create``).
    submission_token = forms.CharField(label="", required=False, widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.updated_at:
            self.fields["seen_updated_at"].initial = self.instance.updated_at.isoformat()
        if not self.instance.pk:
            self.fields["submission_token"].initial = uuid.uuid4().hex

    def clean_code(self) -> str:
        # As ``customer_create`` and the import store it, before the model's validators see it.
        return normalise_code(self.cleaned_data.get("code"))

    def clean_phones_text(self) -> list[str]:
        """The phones typed, split as the import splits a cell (``split_phones``); a number that is not one is
        refused on the field, keeping what was typed."""
        phones = split_phones(self.cleaned_data.get("phones_text"))
        errors = []
        for raw in phones:
            try:
                normalise_phone(raw)
            except InvalidPhone as exc:
                errors.append(f"{raw}: {exc}")
        if errors:
            raise ValidationError(errors)
        return phones

    def clean(self):
        """A ward of the unit's reference list, checked on its field (keeping what was typed) by the services'
        own rule (``rules.unit_ward``), and stored as the list spells it."""
        cleaned = super().clean()
        unit, ward = cleaned.get("unit") or getattr(self.instance, "unit", None), cleaned.get("ward")
        kept = self.instance.ward if self.instance.pk else None
        if unit is not None and ward and (kept is None or {"ward", "unit"} & set(self.changed_data)):
            try:
                cleaned["ward"] = rules.unit_ward(unit, ward, kept=kept)
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned

    def clean_seen_updated_at(self) -> dt.datetime | None:
        if not self.instance.pk:
            return None
        try:
            seen = dt.datetime.fromisoformat(self.cleaned_data.get("seen_updated_at") or "")
        except ValueError:
            seen = None
        if seen is None or seen.tzinfo is None:
            raise ValidationError(_("This page is out of date; reload it and make your change again."))
        return seen

    class Meta:
        model = Customer
        fields = [
            "unit", "code", "full_name", "national_id", "email", "street", "ward", "district", "province",
            "customer_type", "households",
        ]  # fmt: skip


@admin.register(Customer)
class CustomerAdmin(
    MaskedLookupsMixin, ServiceImportMixin, StreamingExportMixin, ServiceErrorsMixin, CustomerSearchMixin,
    CurrentUnitMixin, ScopedAdmin,
):
    form = CustomerForm
    resource_classes = [CustomerResource]  # imports, through the services
    export_resource_class = CustomerResource  # streamed exports of the changelist
    actions = ["export_selected_csv", "export_selected_xlsx"]
    list_display = [
        "code",
        "full_name",
        "list_address",
        "unit_code",
        "customer_type",
        "is_nuisance",
    ]
    # One link a row, on the code: each link is one more cell for the admin to build (the filters it carries
    # are written once a page, crm.admin_base.ScopedChangeList).
    list_display_links = ["code"]
    list_select_related = ["unit"]
    list_filter = [ScopedUnitFilter, "customer_type", "is_nuisance"]
    masked_lookups = {"national_id": privacy.NATIONAL_ID}
    autocomplete_fields = ["unit"]
    inlines = [CustomerPhoneInline]
    readonly_fields = ["is_nuisance", "nuisance_reason", "nuisance_set_by", "nuisance_set_at", "created_at"]
    ordering = ["-id"]

    @admin.display(description=gettext_lazy("address"))
    def list_address(self, obj):
        """Street, ward and district in one column (two cells a row fewer for the admin to render)."""
        return obj.street_address

    @admin.display(description=gettext_lazy("unit"), ordering="unit__code")
    def unit_code(self, obj):
        return obj.unit.code

    def get_fields(self, request, obj=None):
        fields = list(CustomerForm.Meta.fields)
        if obj is None:
            fields += ["phones_text", "submission_token"]
        else:
            fields += self.readonly_fields
            fields = privacy.with_shown_fields(fields, Customer, self.masked_on_change(request), request.user)
            if self.has_change_permission(request, obj):
                fields.append("seen_updated_at")
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        masked = self.masked_on_change(request)
        shown = privacy.with_shown_fields(list(masked), Customer, masked, request.user)
        return [*self.readonly_fields, "unit", "code", *shown]

    def masked_on_change(self, request) -> dict[str, str]:
        """A national ID that the user may not see in full is shown masked and read-only, never as an input
        (and ``customer_update`` refuses its change by such a user)."""
        if privacy.visibility(request.user).full_national_id:
            return {}
        return {"national_id": privacy.NATIONAL_ID}

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            form.base_fields["code"].required = False
            form.base_fields["code"].help_text = _("Leave empty to take the unit's next code.")
            form.base_fields["district"].required = False
            form.base_fields["province"].required = False
        return form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        started = timezone.now()
        try:
            if change:
                changes = {f: data[f] for f in form.changed_data if f in services.EDITABLE_FIELDS}
                saved = services.customer_update(
                    actor=request.user, customer=obj, changes=changes, seen_updated_at=data["seen_updated_at"]
                )
            else:
                saved = services.customer_create(
                    actor=request.user,
                    unit=data["unit"],
                    code=data.get("code") or None,
                    full_name=data["full_name"],
                    national_id=data.get("national_id", ""),
                    email=data.get("email", ""),
                    street=data["street"],
                    ward=data["ward"],
                    district=data.get("district", ""),
                    province=data.get("province", ""),
                    customer_type=data["customer_type"],
                    households=data["households"],
                    phones=data.get("phones_text") or [],
                    token=data.get("submission_token") or None,
                )
                if saved.created_at < started:  # the same form posted again: its first customer
                    messages.warning(
                        request,
                        _("This form already registered customer %(code)s; no second customer was registered.")
                        % {"code": saved.code},
                    )
        except ValidationError as exc:
            # The form already validated the fields; what is left is a rule of the service (code, phones).
            raise ValidationError(exc.messages) from exc
        obj.pk = saved.pk
        obj.code = saved.code

    def save_related(self, request, form, formsets, change):
        pass  # phones are written by customer_create; the inline is read-only

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def construct_change_message(self, request, form, formsets, add=False):
        return super().construct_change_message(request, form, [], add)  # the inline saves nothing

    # Custom views: the caller lookup and the customer card ------------------------------------------

    def get_urls(self):
        urls = super().get_urls()
        view = self.admin_site.admin_view
        return [
            path("lookup/", view(self.lookup_view), name="customers_customer_lookup"),
            path("<int:pk>/card/", view(self.card_view), name="customers_customer_card"),
            path(
                "current-units/",
                view(CurrentUnitsView.as_view(admin_site=self.admin_site)),
                name="customers_current_units",
            ),
            *urls,
        ]

    def lookup_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        # ?phone=<caller id> is the softphone's screen pop: the same lookup, by the number that is calling.
        query = request.GET.get("q", "") or request.GET.get("phone", "")
        found, error, caller_phone = None, None, ""
        if query.strip():
            try:
                found = selectors.lookup_customers(user=request.user, query=query)
            except selectors.InvalidQuery as exc:
                error = str(exc)
            try:
                caller_phone = normalise_phone(query)
            except InvalidPhone:
                caller_phone = ""
        for candidate in found.customers if found else []:
            # A customer found by the number calling: their card knows the number (it says who calls, and its
            # "New ticket" carries the number calling), whether it is the only match or one of several.
            candidate.card_url = reverse("admin:customers_customer_card", args=[candidate.pk])
            if candidate.match == MatchKind.PHONE and caller_phone:
                candidate.card_url = f"{candidate.card_url}?{urlencode({'phone': caller_phone})}"
        exact = [c for c in (found.customers if found else []) if c.match in (MatchKind.CODE, MatchKind.PHONE,
                                                                                   MatchKind.SERIAL)]  # fmt: skip
        if found and len(found.customers) == 1 and exact and not found.truncated:
            # One exact match: the agent lands on the card.
            return HttpResponseRedirect(exact[0].card_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Caller lookup"),
            "opts": self.model._meta,
            "query": query,
            "found": found,
            "error": error,
            "caller_phone": caller_phone,
            "caller_phone_shown": display_phone(caller_phone) if caller_phone else "",
        }
        return TemplateResponse(request, "admin/customers/lookup.html", context, status=400 if error else 200)

    def card_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        card = selectors.customer_card(user=request.user, customer_id=pk)
        if card is None:
            raise Http404(_("No such customer in your units."))
        can_flag = request.user.has_perm("customers.flag_nuisance")
        if request.method == "POST":
            if not can_flag:
                raise PermissionDenied
            reason = request.POST.get("reason", "")
            try:
                if request.POST.get("action") == "flag":
                    services.customer_flag_nuisance(actor=request.user, customer=card.customer, reason=reason)
                    messages.success(request, _("The caller is flagged as a nuisance."))
                elif request.POST.get("action") == "clear":
                    services.customer_clear_nuisance(
                        actor=request.user, customer=card.customer, reason=reason
                    )
                    messages.success(request, _("The nuisance flag is cleared."))
            except ValidationError as exc:
                report_errors(request, exc)
            # A popped card keeps the number calling (as the outage click does): "Call from …", its "New ticket".
            card_url = reverse("admin:customers_customer_card", args=[pk])
            calling = self._caller_phone(request)
            return HttpResponseRedirect(f"{card_url}?{urlencode({'phone': calling})}" if calling else card_url)
        seen = privacy.visibility(request.user)
        caller_phone = self._caller_phone(request)
        if (
            caller_phone
        ):  # a call from a known number: new records carry the number calling, not the primary one
            for section in card.sections:
                section.actions = [
                    (
                        label,
                        _with_param(url, "caller_phone", caller_phone) if method == "get" else url,
                        method,
                    )
                    for label, url, method in section.actions
                ]
        context = {
            **self.admin_site.each_context(request),
            "caller_phone": seen.phone(display_phone(caller_phone)) if caller_phone else "",
            # The card's one-click POST actions (an outage call) carry the number calling as a hidden field.
            "calling": caller_phone,
            "title": card.customer.full_name,
            "opts": self.model._meta,
            "card": card,
            "national_id": seen.national_id(card.customer.national_id),
            "phones": [(p, seen.phone(display_phone(p.number))) for p in card.phones],
            "can_flag": can_flag,
            "can_change": self.has_change_permission(request, card.customer),
        }
        return TemplateResponse(request, "admin/customers/card.html", context)

    @staticmethod
    def _caller_phone(request) -> str:
        try:
            return normalise_phone(request.GET.get("phone", "")) if request.GET.get("phone") else ""
        except InvalidPhone:
            return ""


def _with_param(url: str, name: str, value: str) -> str:
    """``url`` with its query parameter ``name`` set to ``value`` (only when the url already takes it)."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    if name not in params:
        return url
    params[name] = value
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), parts.fragment))


class CustomerPhoneForm(forms.ModelForm):
    """A new number in any spelling, stored as +84… (the customer form, the import and the services take the
    same spellings)."""

    number = forms.CharField(
        label=gettext_lazy("phone number"),
        max_length=40,
        help_text=gettext_lazy("Any spelling (0903 123 456, +84903123456)."),
    )

    class Meta:
        model = CustomerPhone
        fields = ["customer", "number", "is_primary", "label"]

    def clean_number(self) -> str:
        try:
            return normalise_phone(self.cleaned_data["number"])
        except InvalidPhone as exc:
            raise ValidationError(str(exc)) from None

    def validate_constraints(self):
        """``customer_add_phone`` applies the phones' rules: a new primary number takes over from the old one,
        and a number the customer already has is refused with its message."""


@admin.register(CustomerPhone)
class CustomerPhoneAdmin(MaskedLookupsMixin, ServiceErrorsMixin, ScopedAdmin):
    form = CustomerPhoneForm
    masked_lookups = {"number": privacy.PHONE}
    list_display = ["number", "customer", "is_primary", "label"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer"]
    search_fields = ["number__exact"]
    fields = ["customer", "number", "is_primary", "label"]

    def get_search_results(self, request, queryset, search_term):
        from customers.normalise import InvalidPhone, normalise_phone

        if not search_term.strip():
            return queryset, False
        try:
            return queryset.filter(number=normalise_phone(search_term)), False
        except InvalidPhone as exc:
            messages.warning(request, str(exc))
            return queryset.none(), False

    def has_change_permission(self, request, obj=None):
        return False  # a wrong number is removed and the right one added, so the history says so

    def get_list_display(self, request):
        return privacy.with_shown_fields(
            self.list_display, CustomerPhone, {"number": privacy.PHONE}, request.user
        )

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields  # a new number is typed in full
        return privacy.with_shown_fields(self.fields, CustomerPhone, {"number": privacy.PHONE}, request.user)

    def save_model(self, request, obj, form, change):
        try:
            phone = services.customer_add_phone(
                actor=request.user,
                customer=obj.customer,
                number=form.cleaned_data["number"],
                primary=form.cleaned_data["is_primary"],
                label=form.cleaned_data["label"],
            )
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc
        obj.pk = phone.pk

    def delete_model(self, request, obj):
        services.customer_remove_phone(actor=request.user, phone=obj, reason=_("Removed in admin"))

    def delete_queryset(self, request, queryset):
        for phone in queryset:
            self.delete_model(request, phone)


# Meter moves: install, take off, replace ----------------------------------------------------------------


def _moment_field(label):
    return forms.SplitDateTimeField(label=label, widget=AdminSplitDateTime, initial=timezone.now)


def _register_field(label):
    return WholeNumberField(label=label, min_value=0, max_value=2_147_483_647)


REMOVAL_OUTCOMES = [
    ("stock", gettext_lazy("Back to stock: it can be installed again")),
    ("faulty", gettext_lazy("Faulty: it goes for repair or scrapping")),
]


def _outcome_field():
    return forms.TypedChoiceField(
        label=gettext_lazy("the meter goes"),
        choices=REMOVAL_OUTCOMES,
        coerce=lambda value: value == "faulty",
        initial="stock",
        widget=forms.RadioSelect,
    )


def _reason_field():
    return forms.CharField(
        label=gettext_lazy("reason"),
        max_length=MeterAssignment._meta.get_field("removal_reason").max_length,
        help_text=gettext_lazy("For example: moved out, burnt, replaced by a remote-read meter."),
    )


class MeterInstallForm(forms.Form):
    """Hang a meter from stock on a contract of the clerk's units (``meter_install``)."""

    contract = forms.CharField(label=gettext_lazy("contract number"), max_length=30)
    at = _moment_field(gettext_lazy("installed at"))
    reading = _register_field(gettext_lazy("register at install (kWh)"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_contract(self) -> Contract:
        return contract_numbered(user=self.user, number=self.cleaned_data["contract"])


class MeterRemoveForm(forms.Form):
    """Take a meter off its contract with its last register (``meter_remove``)."""

    at = _moment_field(gettext_lazy("removed at"))
    reading = _register_field(gettext_lazy("register at removal (kWh)"))
    reason = _reason_field()
    faulty = _outcome_field()


class MeterReplaceForm(forms.Form):
    """Take a contract's meter off and put a meter from stock on, in one go (``meter_replace``)."""

    at = _moment_field(gettext_lazy("replaced at"))
    removal_reading = _register_field(gettext_lazy("register of the old meter at removal (kWh)"))
    reason = _reason_field()
    faulty = _outcome_field()
    new_meter = forms.CharField(label=gettext_lazy("serial of the new meter"), max_length=20)
    install_reading = _register_field(gettext_lazy("register of the new meter at install (kWh)"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_new_meter(self) -> Meter:
        serial = normalise_code(self.cleaned_data["new_meter"])
        meter = Meter.objects.for_user(self.user).filter(serial=serial).first()
        if meter is None:
            raise ValidationError(_("No meter with serial %(s)s in your units.") % {"s": serial})
        return meter


def meter_move_page(model_admin, request, *, form, title: str, submit: str, back: str, facts, template=None):
    """The page of one meter move: what is on the contract now, the form, its errors (status 400 when any)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "form": form,
        "submit_label": submit,
        "back_url": back,
        "facts": facts,
    }
    return TemplateResponse(
        request,
        template or "admin/customers/meter_move.html",
        context,
        status=400 if form.errors else 200,
    )


def current_assignment(*, contract=None, meter=None) -> MeterAssignment | None:
    found = MeterAssignment.objects.filter(removed_at__isnull=True).select_related("meter", "contract")
    if contract is not None:
        found = found.filter(contract=contract)
    if meter is not None:
        found = found.filter(meter=meter)
    return found.first()


def _may_move_meters(user) -> bool:
    """Installing, taking off and replacing change both the meter and the contract (``meter_install``)."""
    return user.has_perm("customers.change_meter") and user.has_perm("customers.change_contract")


# A signed contract's and a registered meter's pages have nothing to edit: no Save buttons (only Close).
NOTHING_TO_SAVE = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}


class NothingToSaveMixin:
    """The page of a signed contract or a registered meter changes nothing (its status moves through the actions
    and the move pages): a Save sent anyway (a page left open from before, a hand-made request) writes nothing
    and says so, instead of the admin's "changed successfully"."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        posted = request.method == "POST" and object_id is not None
        # (another unit's record is left to the admin's own "does not exist")
        if posted and self.get_object(request, unquote(object_id)) is not None:
            messages.warning(request, _("Nothing is changed from this page: use its actions and buttons."))
            return HttpResponseRedirect(request.get_full_path())
        return super().changeform_view(request, object_id, form_url, extra_context)


class CustomerUnitFilter(ScopedUnitFilter):
    unit_path = "customer__unit"


class ContractForm(forms.ModelForm):
    """A new contract: its start date is one a contract can have (``customers.rules``), shown on the field;
    its number, if typed, as ``contract_create`` and the import store it (``normalise_code``)."""

    def clean_number(self) -> str:
        return normalise_code(self.cleaned_data.get("number"))

    def clean(self):
        cleaned = super().clean()
        start = cleaned.get("start_date")
        if start is not None and "start_date" in self.fields:
            try:
                rules.check_contract_day(start, "start_date")
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned


@admin.register(Contract)
class ContractAdmin(NothingToSaveMixin, ServiceImportMixin, ServiceErrorsMixin, ScopedAdmin):
    resource_classes = [ContractResource]
    list_display = ["number", "customer", "tariff_category", "purpose", "start_date", "end_date", "status"]
    list_select_related = ["customer"]
    list_filter = [CustomerUnitFilter, "status", "tariff_category"]
    autocomplete_fields = ["customer"]
    search_fields = ["number__exact", "customer__code__exact"]
    fields = ["customer", "number", "tariff_category", "purpose", "start_date", "end_date", "status"]
    actions = ["activate", "suspend", "terminate"]
    ordering = ["-id"]
    change_form_template = "admin/customers/contract/change_form.html"
    form = ContractForm

    def get_search_results(self, request, queryset, search_term):
        # A contract number or customer code in any case, as it is stored (``normalise_code``).
        return super().get_search_results(request, queryset, normalise_code(search_term))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/replace-meter/",
                view(self.replace_meter_view),
                name="customers_contract_replace_meter",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        contract = self.get_object(request, object_id)
        assignment = current_assignment(contract=contract) if contract is not None else None
        extra = {
            "current_meter": assignment.meter if assignment is not None else None,
            "can_replace_meter": assignment is not None and _may_move_meters(request.user),
            **NOTHING_TO_SAVE,
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def replace_meter_view(self, request, object_id):
        """Replace the contract's meter: the old one off with its final register, a meter from stock on."""
        if not _may_move_meters(request.user):
            raise PermissionDenied
        contract = self.get_object(request, unquote(object_id))  # None for an id no contract can have
        if contract is None:
            raise Http404(_("No such contract in your units."))
        back = reverse("admin:customers_contract_change", args=[contract.pk])
        assignment = current_assignment(contract=contract)
        if assignment is None:
            messages.error(
                request,
                _("Contract %(c)s has no meter installed; install one from the meter's page.")
                % {"c": contract.number},
            )
            return HttpResponseRedirect(back)
        form = MeterReplaceForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.meter_replace(
                    actor=request.user, contract=contract, at=data["at"], removal_reading=data["removal_reading"],
                    reason=data["reason"], faulty=data["faulty"], new_meter=data["new_meter"],
                    install_reading=data["install_reading"],
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Contract %(c)s: meter %(old)s taken off, meter %(new)s installed.")
                    % {"c": contract.number, "old": assignment.meter.serial, "new": data["new_meter"].serial},
                )
                return HttpResponseRedirect(back)
        facts = [
            (_("contract"), contract.number),
            (_("customer"), f"{contract.customer.code} – {contract.customer.full_name}"),
            (_("meter on it"), assignment.meter.serial),
            (_("installed at"), timezone.localtime(assignment.installed_at).strftime("%d/%m/%Y %H:%M")),
            (_("register at install (kWh)"), assignment.reading_at_install),
        ]
        return meter_move_page(
            self, request, form=form, title=_("Replace the meter of contract %(c)s") % {"c": contract.number},
            submit=_("Replace the meter"), back=back, facts=facts,
        )  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["end_date", "status"]
        return self.fields  # changed only through the actions below, which call the services

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and "number" in form.base_fields:
            form.base_fields["number"].required = False
            form.base_fields["number"].help_text = _("Leave empty to number it after the customer code.")
        return form

    def save_model(self, request, obj, form, change):
        if change:
            return  # a signed contract changes only through the actions and the meter moves
        data = form.cleaned_data
        contract = services.contract_create(
            actor=request.user,
            customer=data["customer"],
            number=data.get("number") or None,
            tariff_category=data["tariff_category"],
            purpose=data["purpose"],
            start_date=data["start_date"],
        )
        obj.pk = contract.pk

    def _move(self, request, queryset, status):
        done = 0
        for contract in queryset.select_related("customer"):
            try:
                services.contract_set_status(actor=request.user, contract=contract, status=status)
                done += 1
            except ValidationError as exc:
                messages.error(request, f"{contract.number}: {'; '.join(exc.messages)}")
        if done:
            messages.success(request, _("%(n)d contract(s) updated.") % {"n": done})

    @admin.action(description=gettext_lazy("Activate"), permissions=["change"])
    def activate(self, request, queryset):
        self._move(request, queryset, ContractStatus.ACTIVE)

    @admin.action(description=gettext_lazy("Suspend"), permissions=["change"])
    def suspend(self, request, queryset):
        self._move(request, queryset, ContractStatus.SUSPENDED)

    @admin.action(description=gettext_lazy("Terminate"), permissions=["change"])
    def terminate(self, request, queryset):
        self._move(request, queryset, ContractStatus.TERMINATED)


class MeterForm(forms.ModelForm):
    """A meter from stock: its serial as ``meter_register`` and the import store it, before the model's
    validators see it."""

    def clean_serial(self) -> str:
        return normalise_code(self.cleaned_data.get("serial"))


@admin.register(Meter)
class MeterAdmin(NothingToSaveMixin, ServiceImportMixin, ServiceErrorsMixin, CurrentUnitMixin, ScopedAdmin):
    resource_classes = [MeterResource]
    list_display = ["serial", "kind", "phases", "status", "unit", "manufacturer"]
    list_select_related = ["unit"]
    list_filter = [ScopedUnitFilter, "kind", "status", "phases"]
    autocomplete_fields = ["unit"]
    search_fields = ["serial__exact"]
    fields = ["serial", "unit", "kind", "phases", "manufacturer", "status"]
    ordering = ["-id"]

    change_form_template = "admin/customers/meter/change_form.html"
    form = MeterForm

    def get_search_results(self, request, queryset, search_term):
        term = normalise_code(search_term)
        return (queryset.filter(serial=term), False) if term else (queryset, False)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/install/", view(self.install_view), name="customers_meter_install"),
            path("<path:object_id>/take-off/", view(self.remove_view), name="customers_meter_remove"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        meter = self.get_object(request, object_id)
        assignment = current_assignment(meter=meter) if meter is not None else None
        extra = {
            "current_contract": assignment.contract if assignment is not None else None,
            "can_install": meter is not None and meter.status == MeterStatus.IN_STOCK
            and _may_move_meters(request.user),
            "can_remove": assignment is not None and request.user.has_perm("customers.change_meter"),
            **NOTHING_TO_SAVE,
        }  # fmt: skip
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _meter(self, request, object_id) -> Meter:
        meter = self.get_object(request, unquote(object_id))  # None for an id no meter can have
        if meter is None:
            raise Http404(_("No such meter in your units."))
        return meter

    def install_view(self, request, object_id):
        """Install a meter from stock on a contract: the contract by its number, the moment, the register."""
        if not _may_move_meters(request.user):
            raise PermissionDenied
        meter = self._meter(request, object_id)
        back = reverse("admin:customers_meter_change", args=[meter.pk])
        if meter.status != MeterStatus.IN_STOCK:
            messages.error(
                request,
                _("Meter %(s)s is not in stock (it is %(st)s).")
                % {"s": meter.serial, "st": MeterStatus(meter.status).label},
            )
            return HttpResponseRedirect(back)
        form = MeterInstallForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.meter_install(
                    actor=request.user,
                    meter=meter,
                    contract=data["contract"],
                    at=data["at"],
                    reading=data["reading"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Meter %(s)s is installed on contract %(c)s.")
                    % {"s": meter.serial, "c": data["contract"].number},
                )
                return HttpResponseRedirect(back)
        facts = [
            (_("meter"), meter.serial),
            (_("unit"), meter.unit.code),
            (_("status"), meter.get_status_display()),
        ]
        return meter_move_page(
            self, request, form=form, title=_("Install meter %(s)s on a contract") % {"s": meter.serial},
            submit=_("Install"), back=back, facts=facts,
        )  # fmt: skip

    def remove_view(self, request, object_id):
        """Take an installed meter off its contract with its last register; back to stock, or faulty."""
        if not request.user.has_perm("customers.change_meter"):
            raise PermissionDenied
        meter = self._meter(request, object_id)
        back = reverse("admin:customers_meter_change", args=[meter.pk])
        assignment = current_assignment(meter=meter)
        if assignment is None:
            messages.error(request, _("Meter %(s)s is not installed.") % {"s": meter.serial})
            return HttpResponseRedirect(back)
        form = MeterRemoveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.meter_remove(
                    actor=request.user, meter=meter, at=data["at"], reading=data["reading"], reason=data["reason"],
                    faulty=data["faulty"],
                )  # fmt: skip
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    _("Meter %(s)s is taken off contract %(c)s.")
                    % {"s": meter.serial, "c": assignment.contract.number},
                )
                return HttpResponseRedirect(back)
        facts = [
            (_("meter"), meter.serial),
            (_("contract"), assignment.contract.number),
            (_("installed at"), timezone.localtime(assignment.installed_at).strftime("%d/%m/%Y %H:%M")),
            (_("register at install (kWh)"), assignment.reading_at_install),
        ]
        return meter_move_page(
            self, request, form=form, title=_("Take meter %(s)s off its contract") % {"s": meter.serial},
            submit=_("Take off"), back=back, facts=facts,
        )  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return ["status"] if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        if change:
            return  # a registered meter changes only through its moves
        data = form.cleaned_data
        meter = services.meter_register(
            actor=request.user,
            unit=data["unit"],
            serial=data["serial"],
            kind=data["kind"],
            phases=data["phases"],
            manufacturer=data.get("manufacturer", ""),
        )
        obj.pk = meter.pk


class AssignmentUnitFilter(ScopedUnitFilter):
    unit_path = "contract__customer__unit"


@admin.register(MeterAssignment)
class MeterAssignmentAdmin(ReadOnlyAdmin):
    list_display = [
        "meter",
        "contract",
        "installed_at",
        "reading_at_install",
        "removed_at",
        "reading_at_removal",
    ]
    list_select_related = ["meter", "contract"]
    list_filter = [AssignmentUnitFilter]
    search_fields = ["meter__serial__exact", "contract__number__exact"]
    ordering = ["-id"]

    def get_search_results(self, request, queryset, search_term):
        # A serial or contract number in any case, as it is stored (``normalise_code``).
        return super().get_search_results(request, queryset, normalise_code(search_term))


@admin.register(CustomerEvent)
class CustomerEventAdmin(MaskedLookupsMixin, ReadOnlyAdmin):
    masked_lookups = {"before": privacy.RECORD, "after": privacy.RECORD}
    list_display = ["at", "customer", "kind", "actor", "reason"]
    list_select_related = ["customer", "actor"]
    list_filter = ["kind"]
    search_fields = ["customer__code__exact"]
    fields = ["customer", "kind", "actor", "at", "before", "after", "reason"]
    ordering = ["-id"]

    def get_fields(self, request, obj=None):
        # The snapshots hold national IDs and phone numbers: shown as the user may see them.
        masked = {"before": privacy.RECORD, "after": privacy.RECORD}
        return privacy.with_shown_fields(self.fields, CustomerEvent, masked, request.user)
