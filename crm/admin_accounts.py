"""Admin of user accounts and of the task cluster, held to ``crm.staff_access`` and ``core.task_registry``.

- Users: a superuser changes anything. Anyone else with the user permissions changes only accounts that hold
  nothing beyond their own permissions (never a superuser, never their password), never ticks "superuser
  status", and is offered only the groups and permissions they hold themselves. Someone who does not see
  everything lists only the accounts they may change and those of the staff of the units they see. A username
  is unique whatever its case, renamed as when made.
- The task cluster (schedules, successful and failed tasks, the ORM queue): read-only for everyone but
  superusers, without the "resubmit" action; a schedule names one of tongdai's registered task functions.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, SetUnusablePasswordMixin, UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from core import task_registry
from crm import roles, staff_access
from crm.models import StaffProfile
from crm.scoping import scope_for

User = get_user_model()


class GroupFilter(admin.SimpleListFilter):
    """Users by group, the role groups by their role's name in the interface's language."""

    title = _("role")
    parameter_name = "group"

    def lookups(self, request, model_admin):
        return [(group.pk, roles.group_label(group.name)) for group in Group.objects.order_by("name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value not in {str(key) for key, _label in self.lookup_choices}:
            return queryset.none()  # no such group (``abc``, ``1.5``)
        return queryset.filter(groups=int(value))


class StaffUserChangeForm(UserChangeForm):
    """Django's user change form, whose username is unique whatever its case ("nv.lan" and "NV.Lan" are one
    person), as on the add forms."""

    def clean_username(self):
        username = self.cleaned_data.get("username")
        if username and User.objects.filter(username__iexact=username).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A user with this username already exists."), code="unique")
        return username


class StaffPasswordChangeForm(AdminPasswordChangeForm):
    """Django's password form of the user admin, its "password-based authentication" help in the reader's
    language: Django joins its translated help to an English warning when it is imported (a lazy text plus a
    plain one), so that no catalogue reaches the warning; here both parts stay lazy and are translated when
    the page is written."""

    usable_password_help_text = format_lazy(  # type: ignore[assignment]  # lazy, not Django's str
        '{}<ul id="id_unusable_warning" class="messagelist"><li class="warning">{}</li></ul>',
        SetUnusablePasswordMixin.usable_password_help_text,
        _("If disabled, the current password for this user will be lost."),
    )


class StaffUserAdmin(UserAdmin):
    """Django's user admin, without the ways up: see the module's docstring."""

    form = StaffUserChangeForm
    change_password_form = StaffPasswordChangeForm
    list_filter = ("is_staff", "is_superuser", "is_active", GroupFilter)

    def get_queryset(self, request):
        users = super().get_queryset(request)
        actor = request.user
        scope = scope_for(actor)
        if actor.is_superuser or scope.everything:
            return users
        serving = StaffProfile.objects.filter(units__in=sorted(scope.unit_ids)).values("user_id")
        return users.filter(Q(pk__in=staff_access.manageable_users(actor).values("pk")) | Q(pk__in=serving))

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        match = request.resolver_match
        source = (request.GET.get("app_label"), request.GET.get("model_name"), request.GET.get("field_name"))
        if match is not None and match.url_name == "autocomplete" and source == ("crm", "apitoken", "user"):
            # A token is made only for an account its maker may change: the others are not offered.
            queryset = queryset.filter(pk__in=staff_access.manageable_users(request.user).values("pk"))
        return queryset, may_have_duplicates

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj))

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly.append("is_superuser")
        return readonly

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        # Only what the person at the keyboard holds can be given; a forged choice is refused by the field.
        if db_field.name == "groups":
            kwargs["queryset"] = staff_access.grantable_groups(request.user)
        elif db_field.name == "user_permissions":
            kwargs["queryset"] = staff_access.grantable_permissions(request.user)
        field = super().formfield_for_manytomany(db_field, request=request, **kwargs)
        if db_field.name == "groups":
            field.label_from_instance = lambda group: roles.group_label(group.name)
        return field


class SuperuserWritesOnly:
    """The cluster's records are read-only unless the user is a superuser."""

    def has_add_permission(self, request, *args, **kwargs):
        return request.user.is_superuser and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=admin.ActionLocation.CHANGE_LIST):
        # django-q2's "resubmit" action carries no permission of its own: it would queue tasks for viewers.
        if not request.user.is_superuser:
            return {}
        return super().get_actions(request, action_location=action_location)


class RoleGroupAdmin(SuperuserWritesOnly, GroupAdmin):
    """Django's group admin; the role groups read by their role's name in the interface's language. Only a
    superuser writes groups: a group's permissions are every member's, in every corporation, so whoever else
    holds ``auth.change_group`` (given by hand: no role has it) could grant the members, themselves among them,
    what they do not hold. The roles' groups are set from ``crm/roles.py`` after every ``migrate``."""

    list_display = ("label", "name")

    @admin.display(description=_("role"), ordering="name")
    def label(self, group):
        return roles.group_label(group.name)

    def _is_role_group(self, group) -> bool:
        return group is not None and group.name in roles.ROLE_GROUP_NAMES.values()

    def get_fields(self, request, obj=None):
        # A role's group keeps its stored name (the key the roles are set up by); it reads by its role.
        return ["label", "permissions"] if self._is_role_group(obj) else super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "label"] if self._is_role_group(obj) else readonly

    def change_view(self, request, object_id, form_url="", extra_context=None):
        group = self.get_object(request, object_id)
        if self._is_role_group(group):
            extra_context = {**(extra_context or {}), "subtitle": roles.group_label(group.name)}
        return super().change_view(request, object_id, form_url, extra_context)


class ScheduleForm(forms.ModelForm):
    func = forms.CharField(
        label=_("Function"),
        max_length=256,
        widget=forms.Select(),
        help_text=_("One of tongdai's registered task functions."),
    )

    class Meta:
        model = Schedule
        fields = [
            "name", "func", "hook", "args", "kwargs", "schedule_type", "minutes", "repeats", "next_run", "cron",
            "cluster", "intended_date_kwarg",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["func"].widget.choices = [("", "---------")] + [
            (name, name) for name in sorted(task_registry.registered_functions())
        ]

    def clean_func(self):
        func = self.cleaned_data["func"].strip()
        task_registry.check_task_function(func)
        return func

    def clean_hook(self):
        hook = (self.cleaned_data.get("hook") or "").strip()
        if hook:
            task_registry.check_task_function(hook)
        return hook or None


class ScheduleAdmin(SuperuserWritesOnly, q_admin.ScheduleAdmin):
    form = ScheduleForm


class SuccessAdmin(SuperuserWritesOnly, q_admin.TaskAdmin):
    pass


class FailureAdmin(SuperuserWritesOnly, q_admin.FailAdmin):
    pass


class QueueAdmin(SuperuserWritesOnly, q_admin.QueueAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, RoleGroupAdmin)
for model, model_admin in ((Schedule, ScheduleAdmin), (Success, SuccessAdmin), (Failure, FailureAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
if admin.site.is_registered(OrmQ):
    admin.site.unregister(OrmQ)
    admin.site.register(OrmQ, QueueAdmin)
