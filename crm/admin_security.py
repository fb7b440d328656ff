"""The admin of sign-in security: failed sign-ins and lockouts with the administrator's unlock (django-axes), and
API tokens (made and revoked here by administrators, the secret shown once; every user sees their own)."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation, helpers
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.login_security import login_unlock
from core.numbers import WholeNumberField
from crm import staff_access
from crm.admin_base import RecordFieldsMixin, RelatedLinksMixin, SafeListMixin
from crm.models import ApiToken
from crm.scoping import scope_for
from crm.tokens import MAX_DAYS, api_token_check, api_token_create, api_token_revoke


class WithinReachMixin:
    """The sign-in records of the accounts the user may change, and those of usernames that name no account to
    staff who see everything (``crm.staff_access.sign_in_records_within_reach``)."""

    def get_queryset(self, request):
        return staff_access.sign_in_records_within_reach(request.user, super().get_queryset(request))


@admin.register(AccessAttempt)
class LoginAttemptAdmin(WithinReachMixin, SafeListMixin, AccessAttemptAdmin):
    """Failed sign-ins per username and address; "Unlock" lets them sign in again at once. Unlocking a username
    is held to the rule of changing its account, as revoking its API tokens is: the list shows, and the unlock
    takes, only the failed sign-ins within the user's reach."""

    actions = ["unlock"]

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # unlocking is what deleting means here
        return actions

    @admin.action(description=_("Unlock the selected users and addresses"), permissions=["delete"])
    def unlock(self, request, queryset):
        within = self.get_queryset(request)
        chosen = list(queryset)
        removed = login_unlock(actor=request.user, attempts=chosen, within=within)
        self.message_user(
            request,
            ngettext(
                "Unlocked: %(n)d record of failed sign-ins removed.",
                "Unlocked: %(n)d records of failed sign-ins removed.",
                removed,
            )
            % {"n": removed},
        )
        posted = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if request.POST.get("select_across") != "1" and posted:
            left = AccessAttempt.objects.filter(pk__in=posted).exclude(pk__in=[a.pk for a in chosen]).count()
            if left:
                self.message_user(
                    request,
                    ngettext(
                        "%(n)d failed sign-in was left locked: it is of an account you may not change.",
                        "%(n)d failed sign-ins were left locked: they are of accounts you may not change.",
                        left,
                    )
                    % {"n": left},
                    messages.WARNING,
                )

    def delete_model(self, request, obj):
        login_unlock(actor=request.user, attempts=[obj], within=self.get_queryset(request))

    def delete_queryset(self, request, queryset):
        login_unlock(actor=request.user, attempts=queryset, within=self.get_queryset(request))

    def log_deletions(self, request, queryset):
        pass  # login_unlock writes the history


@admin.register(AccessFailureLog)
class LoginFailureAdmin(WithinReachMixin, SafeListMixin, AccessFailureLogAdmin):
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccessLog)
class LoginLogAdmin(WithinReachMixin, SafeListMixin, AccessLogAdmin):
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ApiTokenForm(forms.ModelForm):
    days = WholeNumberField(
        label=_("valid for (days)"),
        min_value=1,
        max_value=MAX_DAYS,
        initial=lambda: settings.TONGDAI_API_TOKEN_DAYS,
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name"]

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                api_token_check(actor=self.actor, user=data["user"], name=data["name"], days=data["days"])
            except ValidationError as error:
                self.add_error(None, error)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(RecordFieldsMixin, SafeListMixin, RelatedLinksMixin, admin.ModelAdmin):
    """Administrators make tokens (the secret is shown once, on the page that follows) and revoke them; every
    other user sees only their own tokens. Tokens are never edited: revoke one and make another.

    A token acts as its user, so revoking one is held to the rule of changing that user's account
    (``crm.staff_access``), as making one is; the list shows a local administrator (who does not see
    everything) only the tokens of the accounts they may change, and their own."""

    list_display = ["name", "user", "token_key", "created", "expiry", "created_by"]
    list_select_related = ["user", "created_by"]
    list_filter = ["expiry"]
    search_fields = ["name", "user__username"]
    autocomplete_fields = ["user"]
    form = ApiTokenForm
    actions = ["revoke"]

    def manages_tokens(self, request) -> bool:
        return request.user.has_perm("crm.add_apitoken")

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        actor = request.user
        if not self.manages_tokens(request):
            return tokens.filter(user=actor)
        if actor.is_superuser or scope_for(actor).everything:
            return tokens
        return tokens.filter(Q(user__in=staff_access.manageable_users(actor).values("pk")) | Q(user=actor))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.actor = request.user  # the form's check asks whether this user may act for the token's user
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "days"]
        return ["name", "user", "token_key", "created", "expiry", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or staff_access.may_manage_user(request.user, obj.user))

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # "Revoke" says what deleting a token means
        return actions

    @admin.action(description=_("Revoke the selected tokens"), permissions=["delete"])
    def revoke(self, request, queryset):
        selected = list(queryset.select_related("user"))
        tokens = [token for token in selected if staff_access.may_manage_user(request.user, token.user)]
        for token in tokens:
            api_token_revoke(actor=request.user, token=token)
        self.message_user(
            request,
            ngettext("%(n)d token revoked.", "%(n)d tokens revoked.", len(tokens)) % {"n": len(tokens)},
        )
        if len(tokens) < len(selected):
            left = len(selected) - len(tokens)
            self.message_user(
                request,
                ngettext(
                    "%(n)d token was left: it belongs to an account you may not change.",
                    "%(n)d tokens were left: they belong to accounts you may not change.",
                    left,
                )
                % {"n": left},
                messages.WARNING,
            )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        request.tongdai_new_token = api_token_create(
            actor=request.user, user=data["user"], name=data["name"], days=data["days"]
        )

    def save_related(self, request, form, formsets, change):
        pass  # a token has no related rows

    def log_addition(self, request, obj, message):
        pass  # api_token_create writes the history

    def delete_model(self, request, obj):
        api_token_revoke(actor=request.user, token=obj)

    def delete_queryset(self, request, queryset):
        for token in queryset.select_related("user"):
            api_token_revoke(actor=request.user, token=token)

    def log_deletions(self, request, queryset):
        pass  # api_token_revoke writes the history

    def response_add(self, request, obj, post_url_continue=None):
        token, secret = request.tongdai_new_token
        response = TemplateResponse(
            request,
            "admin/crm/apitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": _("API token created"),
                "token": token,
                "secret": secret,
            },
        )
        patch_cache_control(response, private=True, no_store=True)
        return response
