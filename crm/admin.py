"""Admin of the organisation and the staff profiles."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _

from crm import admin_accounts, staff_access  # noqa: F401  (admin_accounts registers the user and task admins)
from crm.admin_base import ScopedAdmin
from crm.models import Company, Corporation, StaffProfile, Unit
from crm.services import role_group, staff_update

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
    list_filter = ["corporation", "valid_to"]
    search_fields = ["code__exact", "name", "province"]
    autocomplete_fields = ["corporation"]


@admin.register(Unit)
class UnitAdmin(DatedAdmin):
    list_display = ["code", "name", "district", "company", "valid_from", "valid_to", "successor"]
    list_select_related = ["company", "successor"]
    list_filter = ["company__corporation", "valid_to"]
    search_fields = ["code__exact", "name", "district"]
    autocomplete_fields = ["company", "successor"]


@admin.register(StaffProfile)
class StaffProfileAdmin(ScopedAdmin):
    list_display = ["badge_number", "user", "role"]
    list_select_related = ["user"]
    list_filter = ["role"]
    search_fields = ["badge_number__exact", "user__username", "user__last_name"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["units"]
    fields = ["user", "badge_number", "role", "units", "phone"]
    readonly_fields = ["user", "badge_number"]

    def has_add_permission(self, request):
        # Staff are created by the staff_create service (manage.py create_staff), which also sets the group.
        return False

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj.user))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        actor = request.user

        class StaffProfileForm(form):
            def clean_role(self):
                role = self.cleaned_data["role"]
                try:
                    staff_access.check_grant(actor, groups=[role_group(role)])
                except PermissionDenied as exc:
                    raise ValidationError(str(exc)) from exc
                return role

        return StaffProfileForm

    def save_model(self, request, obj, form, change):
        staff_update(
            actor=request.user,
            user=obj.user,
            role=form.cleaned_data["role"],
            units=form.cleaned_data["units"],
            phone=obj.phone,
        )

    def save_related(self, request, form, formsets, change):
        pass  # the units were set by staff_update
