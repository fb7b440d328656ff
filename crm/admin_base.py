"""What every admin of a scoped model shares: the scope, a paginator that never counts a big table, and
a unit filter that lists only the units the staff member may see."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core import db
from core.json_input import ADMIN_FORMFIELD_OVERRIDES
from crm.models import Unit


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


class ScopedAdmin(admin.ModelAdmin):
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
