"""The admin site: administrators and superusers sign in with a code from their authenticator app as well as
their password (``crm.two_factor``), and their pages need a session that was signed in that way."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from crm import shared_cache, two_factor


class TwoFactorAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form with the authenticator's code, asked of those who need a second factor."""

    otp_token = forms.CharField(
        label=_("Authenticator code"),
        required=False,
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_("Administrators: the six digits your authenticator app shows now."),
    )
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "otp_not_enrolled": _(
            "Your account needs an authenticator app to sign in, and none is set up yet. Ask a superuser to "
            "enrol one for you (manage.py otp_enroll %(username)s)."
        ),
        "otp_required": _("Type the code your authenticator app shows."),
        "otp_invalid": _("This code is wrong or has expired: type the one your authenticator app shows now."),
    }

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not two_factor.needs_second_factor(user):
            return
        if not two_factor.has_authenticator(user):
            raise ValidationError(
                self.error_messages["otp_not_enrolled"],
                code="otp_not_enrolled",
                params={"username": user.get_username()},
            )
        code = self.cleaned_data.get("otp_token") or ""
        if not code.strip():
            raise ValidationError(self.error_messages["otp_required"], code="otp_required")
        device = two_factor.verified_device(user, code)
        if device is None:
            # A failed sign-in like a wrong password: django-axes logs it (the login security pages) and counts it
            # towards the username's and the address's lockout, so a stolen password does not give endless
            # guesses at the code.
            user_login_failed.send(
                sender=__name__,
                credentials={"username": self.cleaned_data.get("username")},
                request=self.request,
            )
            raise ValidationError(self.error_messages["otp_invalid"], code="otp_invalid")
        user.otp_device = device  # django-otp keeps it in the session when the login completes


class TongdaiAdminSite(admin.AdminSite):
    login_form = TwoFactorAuthenticationForm
    login_template = "admin/login_two_factor.html"

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        if not two_factor.needs_second_factor(request.user):
            return True
        is_verified = getattr(request.user, "is_verified", None)  # set by django-otp's middleware
        return bool(is_verified and is_verified())

    def get_app_list(self, request, app_label=None):
        """The apps and models the user may reach (the side bar and the index), kept per user and language in
        the shared cache until the staff's permissions change: every admin page shows it, and Django builds it
        by asking each model's admin for the user's permissions and reversing its URLs (a tenth of a list's
        page)."""
        user = request.user

        def build():
            apps = super(TongdaiAdminSite, self).get_app_list(request, app_label)
            for app in apps:  # the names in this language, kept as text
                app["name"] = str(app["name"])
                for model in app["models"]:
                    model["name"] = str(model["name"])
            return apps

        return shared_cache.remember(
            f"admin-apps:{self.name}:{user.pk}:{user.is_superuser}:{get_language()}:{app_label or ''}",
            (shared_cache.STAFF,),
            build,
        )
