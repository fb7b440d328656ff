"""Admin of the organisation, the staff profiles, the outbox and the export log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# admin_accounts registers the user and task admins, admin_security the sign-in security and API tokens.
from crm import admin_accounts, admin_security, services, staff_access  # noqa: F401
from crm.admin_base import (
    EstimatedCountPaginator,
    MaskedLookupsMixin,
    ReadOnlyAdmin,
    RelatedLinksMixin,
    SafeListMixin,
    ScopedAdmin,
    ServiceErrorsMixin,
)
from crm.models import (
    Company,
    Corporation,
    ExportLog,
    OutboxMessage,
    OutboxRetry,
    OutboxRetrySource,
    OutboxStatus,
    StaffProfile,
    Unit,
)
from crm.outbox import outbox_retry
from crm.permissions import sees_everything
from crm.services import (
    role_group,
    staff_create,
    staff_delete,
    staff_password_check,
    staff_phone,
    staff_update,
)

admin.site.site_header = _("tongdai – customer-care centre")
admin.site.site_title = _("tongdai")
admin.site.index_title = _("Back office")


class DatedAdmin(ScopedAdmin):
    list_filter = ["valid_to"]


@admin.register(Corporation)
class CorporationAdmin(DatedAdmin):
    list_display = ["code", "name", "code_prefix", "valid_from", "valid_to"]
    search_fields = ["code__exact", "name"]


@admin.register(Company)
class CompanyAdmin(DatedAdmin):
    list_display = ["code", "name", "province", "corporation", "valid_from", "valid_to"]
    list_select_related = ["corporation"]
    # Offering only the corporations of the rows the user may see (Django's plain filter lists every one).
    list_filter = [("corporation", admin.RelatedOnlyFieldListFilter), "valid_to"]
    search_fields = ["code__exact", "name", "province"]
    autocomplete_fields = ["corporation"]


@admin.register(Unit)
class UnitAdmin(DatedAdmin):
    list_display = ["code", "name", "district", "company", "valid_from", "valid_to", "successor"]
    list_select_related = ["company", "successor"]
    list_filter = [("company__corporation", admin.RelatedOnlyFieldListFilter), "valid_to"]
    search_fields = ["code__exact", "name", "district"]
    autocomplete_fields = ["company", "successor"]


class StaffAddForm(forms.ModelForm):
    """A new member of staff: the account (name, password checked by the site's password rules) with the
    profile. The service creates both, gives the role's group and the units."""

    username = forms.CharField(label=_("username"), max_length=150)
    password1 = forms.CharField(label=_("password"), strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label=_("password (again)"), strip=False, widget=forms.PasswordInput)
    first_name = forms.CharField(label=_("first name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("email"), required=False)

    def clean_username(self):
        username = self.cleaned_data["username"]
        user_model = get_user_model()
        user_model.username_validator(username)
        if user_model.objects.filter(username__iexact=username).exists():  # as Django's own user form asks
            raise ValidationError(_("A user with this username already exists."))
        return username

    def clean(self):
        data = super().clean()
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first:
            user = get_user_model()(username=data.get("username", ""), email=data.get("email", ""),
                                    first_name=data.get("first_name", ""), last_name=data.get("last_name", ""))  # fmt: skip
            try:  # the service's rule (``staff_create`` asks it again), shown on the field
                staff_password_check(first, user)
            except ValidationError as exc:
                self.add_error("password1", exc.message_dict["password"])
        return data


@admin.register(StaffProfile)
class StaffProfileAdmin(ServiceErrorsMixin, ScopedAdmin):
    list_display = ["badge_number", "user", "role"]
    list_select_related = ["user"]
    list_filter = ["role"]
    search_fields = ["badge_number__exact", "user__username", "user__last_name"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["units"]
    fields = ["user", "badge_number", "role", "units", "phone", "assign_new_tickets"]
    readonly_fields = ["user", "badge_number"]

    add_fields = ["username", "password1", "password2", "first_name", "last_name", "email", "badge_number",
                  "role", "units", "phone"]  # fmt: skip

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.fields

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "units":  # only units the administrator serves can be given
            kwargs["queryset"] = Unit.objects.for_user(request.user).order_by("code")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj.user))

    def has_delete_permission(self, request, obj=None):
        # Deleting a profile takes the account's role and units away: held to the rule of changing them, on
        # the delete page and in the list's bulk action alike (Django asks for each selected profile).
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj.user))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:  # a new member of staff: their account too, made by staff_create
            kwargs["form"] = StaffAddForm
            kwargs["fields"] = [f for f in self.add_fields if f in ("badge_number", "role", "units", "phone")]
        form = super().get_form(request, obj, **kwargs)
        actor = request.user

        class StaffProfileForm(form):
            def clean(self):
                # The role with the units: what the role would show over them must be within the actor's own.
                data = super().clean()
                role = data.get("role")
                if role:
                    try:
                        staff_access.check_grant(
                            actor, groups=[role_group(role)], role=role, units=data.get("units") or []
                        )
                    except PermissionDenied as exc:
                        self.add_error("role", str(exc))
                return data

            def clean_phone(self):
                try:  # stored, and shown again, as +84…
                    return staff_phone(self.cleaned_data.get("phone", ""))
                except ValidationError as exc:
                    raise ValidationError(exc.messages) from exc

        typed = StaffProfileForm.base_fields.get("phone")
        if typed is not None:
            # A phone is typed as people write it ("+84 (28) 3822 1234") and stored in its short +84 form
            # (``clean_phone``): the typed text may be longer than the column.
            StaffProfileForm.base_fields["phone"] = forms.CharField(
                label=typed.label, max_length=30, required=False, help_text=typed.help_text
            )
        return StaffProfileForm

    def save_model(self, request, obj, form, change):
        if not change:
            data = form.cleaned_data
            user = staff_create(
                actor=request.user, username=data["username"], password=data["password1"], role=data["role"],
                badge_number=data["badge_number"], units=data["units"], first_name=data["first_name"],
                last_name=data["last_name"], email=data["email"], phone=data.get("phone", ""),
            )  # fmt: skip
            created = user.staff_profile
            for field in created._meta.concrete_fields:
                setattr(obj, field.attname, getattr(created, field.attname))
            obj._state.adding = False
            return
        staff_update(
            actor=request.user,
            user=obj.user,
            role=form.cleaned_data["role"],
            units=form.cleaned_data["units"],
            phone=obj.phone,
            assign_new_tickets=form.cleaned_data.get("assign_new_tickets"),
        )

    def save_related(self, request, form, formsets, change):
        pass  # the units were set by staff_update

    def delete_model(self, request, obj):
        staff_delete(actor=request.user, profile=obj)  # the role's group goes with the profile

    def delete_queryset(self, request, queryset):
        for profile in queryset:
            staff_delete(actor=request.user, profile=profile)


class OutboxRetryInline(admin.TabularInline):
    """Who gave the message back to the delivery sweep, and what it had failed with."""

    model = OutboxRetry
    extra = 0
    can_delete = False
    fields = ("at", "actor", "source", "previous_attempts", "previous_error")
    readonly_fields = fields
    ordering = ["at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(SafeListMixin, RelatedLinksMixin, admin.ModelAdmin):
    """The messages the system sent or tries to send, for staff who see everything only (``sees_everything``):
    they belong to every unit and carry customers' phones and addresses. Read-only; a failed message is given
    back to the delivery sweep with the "Retry" action (``crm.outbox.outbox_retry``, as ``manage.py
    outbox_retry`` does)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    list_display = ["id", "created_at", "channel", "recipient", "subject", "status", "attempts",
                    "next_attempt_at", "sent_at", "error"]  # fmt: skip
    list_filter = ["status", "channel"]
    search_fields = ["recipient__exact", "subject__exact"]
    ordering = ["-id"]
    fields = ("channel", "recipient", "staff", "subject", "body", "status", "attempts", "next_attempt_at",
              "last_error", "created_at", "sent_at", "dedupe_key", "attachment_name")  # fmt: skip
    readonly_fields = fields
    inlines = [OutboxRetryInline]
    actions = ["retry"]

    @admin.display(description=_("last error"))
    def error(self, message):
        return Truncator(message.last_error).chars(80)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # The permission first: the pages of staff without it do not compute their scope for the menu.
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and sees_everything(request.user)

    def has_module_permission(self, request):
        return super().has_module_permission(request) and self.has_view_permission(request)

    def has_retry_permission(self, request):
        return request.user.has_perm("crm.retry_outboxmessage") and sees_everything(request.user)

    @admin.action(
        description=_("Retry (give failed messages back to the delivery sweep)"), permissions=["retry"]
    )
    def retry(self, request, queryset):
        # Only the failed ones' ids are read: "select all" over a big table must not load every message.
        failed = list(queryset.filter(status=OutboxStatus.FAILED).values_list("pk", flat=True))
        retried = outbox_retry(actor=request.user, source=OutboxRetrySource.ADMIN, message_ids=failed)
        if retried:
            messages.success(
                request, gettext("%(n)d message(s) given back to the delivery sweep.") % {"n": len(retried)}
            )
        if queryset.exclude(pk__in=retried).exists():
            messages.warning(request, gettext("Messages that had not failed were left alone."))


@admin.register(ExportLog)
class ExportLogAdmin(MaskedLookupsMixin, ReadOnlyAdmin):
    """Who exported what, when, with which filters, and how many rows: read-only for managers (exports by
    the staff of their units) and administrators (all); the database keeps it append-only. The filters may
    hold a phone or a national ID, shown masked to whoever sees them masked, and a filter typed into the
    list's URL on them is refused (400) to the same users."""

    masked_lookups = {"filters": "record"}

    list_display = ["started_at", "user", "kind", "source", "file_format", "row_count", "status", "filters"]
    list_select_related = ["user"]
    list_filter = ["kind", "status", "file_format"]
    search_fields = ["user__username__exact", "source__exact"]
    ordering = ["-id"]

    def get_fields(self, request, obj=None):
        return ["user", "started_at", "finished_at", "kind", "source", self.filters_shown(request), "file_format",
                "row_count", "status"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_list_display(self, request):
        return [*self.list_display[:-1], self.filters_shown(request)]

    @staticmethod
    def filters_shown(request):
        """The filters column as this user may read it: a phone or a national ID typed by a clerk who sees them
        whole is masked for a manager who does not (``crm.services.export_filters_shown``)."""
        user = request.user

        @admin.display(description=_("filters"))
        def filters(log):
            return services.export_filters_shown(user, log.filters)

        return filters
