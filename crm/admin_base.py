"""What every admin of a scoped model shares: the scope, a paginator that never counts a big table, and
a unit filter that lists only the units the staff member may see."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core import db
from core.json_input import ADMIN_FORMFIELD_OVERRIDES
from crm.models import Unit

# A row's id as a list page posts it for an action: a whole number (digits, a minus sign at most).
_ROW_ID = re.compile(r"-?[0-9]{1,19}")


class EstimatedCountPaginator(Paginator):
    """Counts exactly only what is cheap to count.

    On PostgreSQL an unfiltered table is counted from ``pg_class.reltuples`` and a filtered one from the
    planner's estimate; only when the estimate is small (under ``TONGDAI_EXACT_COUNT_LIMIT``) is a real
    ``COUNT(*)`` run. On SQLite (small, embedded) it counts exactly.
    """

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet) or not db.is_postgres():
            return super().count
        queryset = self.object_list
        limit = settings.TONGDAI_EXACT_COUNT_LIMIT
        if not queryset.query.where:
            estimate = db.estimated_row_count(queryset.model._meta.db_table)
        else:
            estimate = db.estimated_query_count(queryset)
        if estimate is None or estimate < limit:
            return super().count
        return estimate


class ScopedUnitFilter(admin.SimpleListFilter):
    """Filter by unit, offering only the units the user may see."""

    title = _("unit")
    parameter_name = "unit"
    unit_path = "unit"

    def lookups(self, request, model_admin):
        units = Unit.objects.for_user(request.user).only("id", "code", "name").order_by("code")
        return [(str(u.pk), f"{u.code} – {u.name}") for u in units]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value not in {key for key, _label in self.lookup_choices}:
            return queryset.none()  # a unit the user does not see, or no unit at all (``abc``, 10^20)
        return queryset.filter(**{self.unit_path: int(value)})


class SafeChangeList(ChangeList):
    """Django's list page, for which a filter's value too large for a date or a number (a year 10^20 in the
    date hierarchy) is an invalid filter, as Django treats one it cannot read (its "invalid filter" page),
    never a server error."""

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except OverflowError as exc:
            raise IncorrectLookupParameters(exc) from exc

    def get_queryset(self, request, exclude_parameters=None):
        """The list's queryset, its SQL compiled once here (no query is run): a filter's value that the
        database's adapter cannot convert (local midnight of 01/01/0001, which has no UTC value on SQLite) is
        an invalid filter here, before the list or an export of it (``core.exports``) runs it."""
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.sql_with_params()
        except EmptyResultSet:  # nothing can match (a scope without units): no SQL, nothing wrong
            pass
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class SafeListMixin:
    """A model admin whose list page is a ``SafeChangeList`` (``ScopedAdmin``'s is one already)."""

    def get_changelist(self, request, **kwargs):
        return SafeChangeList


class ScopedChangeList(SafeChangeList):
    """Django's list page, whose rows' links carry the list's filters (so that saving a record returns to the
    same filtered list) written once for the page: Django adds them to each row's link in turn, resolving the
    link's URL each time to learn that it is not the list's own (about a tenth of a 50-row page). The links are
    the same; a pop-up list keeps Django's own way."""

    def __init__(self, request, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.row_link_query = ""
        if self.preserved_filters and not self.is_popup:
            self.row_link_query, self.preserved_filters = self.preserved_filters, ""

    def url_for_result(self, result):
        url = super().url_for_result(result)
        return f"{url}?{self.row_link_query}" if self.row_link_query else url


def _prefillable(field, value) -> bool:
    """Whether a form field can show ``value`` taken from a link: a record it offers (checked as a choice would
    be), never text for a field of several inputs (a date and a time)."""
    if isinstance(field, forms.MultiValueField):
        return not isinstance(value, str)
    if isinstance(field, forms.ModelChoiceField):
        try:
            field.clean(value)
        except ValidationError:
            return False
    return True


class RelatedShown:
    """A read-only field holding one related record (a foreign key, a one-to-one) on a change page: a link to
    the record's admin page, as Django writes it, only when the person reading may open that page (the page's
    own check, ``has_view_or_change_permission``), else the record's name as plain text (also when its model
    has no admin here). Django links every such value: a supervisor reading a ticket was offered the
    assignee's account page, which refuses them (403).

    It stands in the page's fieldsets and read-only fields for the field's name, which it keeps as its
    ``__name__`` and its text (the row's ``field-<name>`` class, the inline's ``column-<name>``), with the
    field's label."""

    do_not_call_in_templates = True  # an inline's column header writes it by its name

    def __init__(self, name: str, field, model_admin, request):
        self.__name__ = name
        label = getattr(field, "verbose_name", None)  # a reverse one-to-one has none: its model's name
        self.short_description = label or field.related_model._meta.verbose_name
        self.related_model = field.related_model
        self.model_admin, self.request = model_admin, request

    def __str__(self) -> str:
        return self.__name__

    def __call__(self, obj):
        related = getattr(obj, self.__name__)
        if related is None:
            return self.model_admin.get_empty_value_display()
        site = self.model_admin.admin_site
        if site.is_registered(self.related_model):
            related_admin = site.get_model_admin(self.related_model)
            if related_admin.has_view_or_change_permission(self.request, related):
                opts = self.related_model._meta
                url = reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(related.pk)],
                    current_app=site.name,
                )  # fmt: skip
                return format_html('<a href="{}">{}</a>', url, related)
        return str(related)


def related_shown(fieldsets, readonly_fields, model_admin, request):
    """The fieldsets and read-only fields of a change page (or of one of its inlines), each read-only related
    record's name replaced by its ``RelatedShown``."""
    shown = {}
    for name in readonly_fields:
        if not isinstance(name, str):
            continue
        try:
            field = model_admin.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        # as Django's read-only field links them: forward and reverse one-to-ones, foreign keys by their name
        # (not by their column's, ``assignee_id``); never a generic foreign key (no model of its own)
        one_record = field.is_relation and (field.many_to_one or field.one_to_one)
        if one_record and field.related_model is not None and field.name == name:
            shown[name] = RelatedShown(name, field, model_admin, request)
    if not shown:
        return fieldsets, readonly_fields

    def swap(entry):
        if isinstance(entry, str):
            return shown.get(entry, entry)
        if isinstance(entry, list | tuple):
            return tuple(swap(name) for name in entry)  # several fields on one line
        return entry

    fieldsets = [
        (title, {**options, "fields": [swap(entry) for entry in options.get("fields", ())]})
        for title, options in fieldsets
    ]
    return fieldsets, [swap(name) for name in readonly_fields]


class RelatedLinksMixin:
    """A change page links a read-only related record only for those who may open its page (``RelatedShown``),
    on the page's own fields and on its inlines'."""

    def render_change_form(self, request, context, *args, **kwargs):
        adminform = context.get("adminform")
        if adminform is not None:
            adminform.fieldsets, adminform.readonly_fields = related_shown(
                adminform.fieldsets, adminform.readonly_fields, self, request
            )
        for inline in context.get("inline_admin_formsets") or ():
            inline.fieldsets, inline.readonly_fields = related_shown(
                inline.fieldsets, inline.readonly_fields, inline.opts, request
            )
        return super().render_change_form(request, context, *args, **kwargs)


def _fits_key(key, value: str) -> bool:
    """Whether ``value`` can be held by the column ``key`` (a model field) that names a record: a whole number
    within the range of an integer column (as PostgreSQL, the production database, keeps it), or a readable
    value of any other column."""
    bounds = BaseDatabaseOperations.integer_field_ranges.get(key.get_internal_type())
    if bounds is not None:
        return bool(_ROW_ID.fullmatch(value)) and bounds[0] <= int(value) <= bounds[1]
    if "\x00" in value:
        return False
    try:
        key.to_python(value)
    except ValidationError:
        return False
    return True


def _names_a_choice(field, value) -> bool:
    """Whether ``value``, posted for the record field ``field`` (a ``ModelChoiceField``), can name one of its
    records (``_fits_key`` on the column it names them by); a value that is not text (a record) is left to
    the field."""
    if not isinstance(value, str):
        return True
    opts = field.queryset.model._meta
    return _fits_key(opts.get_field(field.to_field_name) if field.to_field_name else opts.pk, value)


class RecordChoiceField(forms.ModelChoiceField):
    """A record picked on a form (a foreign key), whose posted value is drawn again only when it can name a
    record: a value no record's id can be (``abc``, a unit's code, a NUL character, a number beyond the id
    column) leaves the field empty beside its refusal ("select a valid choice"). The admin's search box
    (autocomplete) looks the records up by the value it draws: by that one it would be a server error."""

    def bound_data(self, data, initial):
        data = super().bound_data(data, initial)
        if self.disabled or data in self.empty_values or _names_a_choice(self, data):
            return data
        return None


class RecordsChoiceField(forms.ModelMultipleChoiceField):
    """Several records picked on a form (a many-to-many), each value checked to name a record before the
    records are looked up: one beyond the id column (10^30) is refused as a value that is not a record's id,
    as ``abc`` is, where SQLite's adapter raises on it (a server error). Drawn again, as
    ``RecordChoiceField``, with the values that can name a record only."""

    def clean(self, value):
        value = self.prepare_value(value)
        if isinstance(value, list | tuple):
            for item in value:
                if not _names_a_choice(self, item):
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": item}
                    )
        return super().clean(value)

    def bound_data(self, data, initial):
        data = super().bound_data(data, initial)
        if self.disabled or not isinstance(data, list | tuple):
            return data
        return [item for item in data if _names_a_choice(self, item)]


class RecordFieldsMixin:
    """A model admin whose record fields (foreign keys, many-to-many) refuse a value that cannot name a record
    on the field and draw the page again, whatever their widget (a search box, a list): ``RecordChoiceField``,
    ``RecordsChoiceField``."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", RecordChoiceField)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", RecordsChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class ScopedAdmin(RecordFieldsMixin, RelatedLinksMixin, admin.ModelAdmin):
    """Admin of a model whose manager is a ``ScopedQuerySet``: every list, form and lookup is scoped."""

    paginator = EstimatedCountPaginator
    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES  # JSON typed in a form has its nesting bounded
    show_full_result_count = False
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def get_changelist(self, request, **kwargs):
        return ScopedChangeList

    def get_changeform_initial_data(self, request):
        """The values a link fills an add form with (``?customer=<id>`` from the card), each kept only when its
        form field can read it: a link edited by hand (``?customer=abc``, ``?started_at=abc``, a record outside
        the user's units) opens the form without that value, never a server error."""
        initial = super().get_changeform_initial_data(request)
        if not initial:
            return initial
        fields = self.get_form(request).base_fields
        for name, value in list(initial.items()):
            field = fields.get(name)
            if field is not None and not _prefillable(field, value):
                del initial[name]
        return initial

    def action_checkbox(self, obj):
        """The row's checkbox for the list actions: the same HTML as Django's (its ``CheckboxInput``), written
        directly. Rendered through the form template engine it cost about a fifth of a 50-row changelist."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME, obj.pk, label,
        )  # fmt: skip

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        manager = related._default_manager
        if hasattr(manager, "for_user") and "queryset" not in kwargs:
            kwargs["queryset"] = manager.for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def response_action(self, request, queryset, *args, **kwargs):
        """An action on the rows ticked: a selection that no list page posts (a value that is not a record's
        id, ``abc`` or a number beyond the id column) is refused with a message and nothing done, before
        Django filters by it (which would be a server error)."""
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(_names_a_record(self.model, value) for value in selected):
            self.message_user(
                request,
                gettext("The rows chosen for the action were not read: nothing was done. Tick them again."),
                messages.ERROR,
            )
            return None  # Django's list answers with a redirect to itself, where the message shows
        return super().response_action(request, queryset, *args, **kwargs)


def _names_a_record(model, value: str) -> bool:
    """Whether ``value`` (posted for a row) can be one of ``model``'s ids: a whole number within the range of
    its id column (as PostgreSQL, the production database, keeps it), or a readable value of any other id."""
    return _fits_key(model._meta.pk, value)


class ReadOnlyAdmin(ScopedAdmin):
    """Records nobody edits by hand (events, history): list and view only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The permissions that show customers' identifiers whole, by the kind of value a column holds: a phone, a
# national ID, or a record (a snapshot, an export's filters) that may hold both. The kinds are the names
# ``customers.privacy`` gives them; the permissions are its ``FULL_PHONE`` and ``FULL_NATIONAL_ID``.
WHOLE_VALUE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "phone": ("customers.view_full_phone",),
    "national_id": ("customers.view_national_id",),
    "record": ("customers.view_full_phone", "customers.view_national_id"),
}


class MaskedLookupsMixin:
    """A list page refuses a filter typed into its URL on a field its user sees masked (``masked_lookups``:
    field → kind of value, a key of ``WHOLE_VALUE_PERMISSIONS``): the rows matching
    ``?national_id__startswith=0791`` would tell the hidden value digit by digit. Django answers such a URL
    with 400; the lists' own filters and search are unchanged."""

    masked_lookups: dict[str, str] = {}

    def lookup_allowed(self, lookup, value, request):
        kind = self.masked_lookups.get(lookup.split("__", 1)[0])
        if kind is not None and not request.user.has_perms(WHOLE_VALUE_PERMISSIONS[kind]):
            return False
        return super().lookup_allowed(lookup, value, request)


def add_service_errors(form, exc: ValidationError) -> None:
    """A service's refusal shown on the form that asked for it: on its field when it names one the form has, else
    on top (``core.errors.renamed`` first where the service names the field otherwise)."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
    else:
        for message in exc.messages:
            form.add_error(None, message)


def report_errors(request, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


class ServiceErrorsMixin:
    """A rule of a service that the form could not check (a taken code, a bad phone) comes back as a message;
    the service's transaction has rolled back, so nothing was written."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            report_errors(request, exc)
            return HttpResponseRedirect(request.get_full_path())
