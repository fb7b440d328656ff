"""Two-factor sign-in to the admin for administrators, superusers and whoever manages accounts (django-otp, TOTP).

Who needs it, while ``TONGDAI_ADMIN_2FA`` is on (the default): superusers, staff of the administrator role, and
anyone holding a permission that manages accounts (``ACCOUNT_PERMISSIONS``), through a group or their own
whatever their profile's role: someone put in the administrators' group holds the administrators' rights.
They type the code their authenticator app shows on the admin's login form (``crm.admin_site``). Someone who
needs it and has no authenticator cannot sign in until a superuser enrols one for them: ``manage.py
otp_enroll USERNAME`` prints the secret, the provisioning URI and its QR code as text, to scan or type into
the app (a superuser can also add a TOTP device in the admin, which shows its QR code).
"""

from __future__ import annotations

import base64
import functools
import io
import logging

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import transaction
from django.db.models import Exists, Q
from django.utils.functional import SimpleLazyObject
from django_otp import devices_for_user, verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from crm import shared_cache
from crm.models import Role, StaffProfile

log = logging.getLogger("tongdai.security")


# The permissions that change who may do what (accounts, their groups and passwords, staff profiles, API
# tokens): whoever holds one of them needs the second factor, as an administrator does.
ACCOUNT_PERMISSIONS = (
    "auth.add_user",
    "auth.change_user",
    "auth.delete_user",
    "auth.add_group",
    "auth.change_group",
    "crm.add_staffprofile",
    "crm.change_staffprofile",
    "crm.add_apitoken",
)


def needs_second_factor(user) -> bool:
    """True, while two-factor sign-in is on, for a superuser, an administrator, or anyone who holds a permission
    of ``ACCOUNT_PERMISSIONS`` (through a group or their own). Kept in the shared cache until the staff's
    accounts, groups or profiles change (``crm.shared_cache.STAFF``): joining a group counts at once."""
    if not settings.TONGDAI_ADMIN_2FA or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return shared_cache.remember(
        f"second-factor:{user.pk}", (shared_cache.STAFF,), lambda: _manages_accounts(user.pk)
    )


def _manages_accounts(user_id: int) -> bool:
    """An administrator by their profile's role, or a holder of a permission that manages accounts: one query."""
    codenames = Q()
    for label in ACCOUNT_PERMISSIONS:
        app_label, codename = label.split(".", 1)
        codenames |= Q(content_type__app_label=app_label, codename=codename)
    administrator = StaffProfile.objects.filter(user_id=user_id, role=Role.ADMINISTRATOR)
    held = Permission.objects.filter(codenames).filter(Q(group__user=user_id) | Q(user=user_id))
    return get_user_model().objects.filter(pk=user_id).filter(Exists(administrator) | Exists(held)).exists()


def second_factor_middleware(get_response):
    """A session whose user must sign in with a second factor and has not given it in this session (raised to
    administrator since signing in, or signed in before two-factor sign-in was turned on) counts as signed out
    on every page, as the admin already treats it: the API's session, the field page and the tickets' files
    too. The admin's login form then asks for the code. After django-otp's middleware, which tells whether the
    session's device was verified; the user is still read only when a page asks for it."""

    def middleware(request):
        request.user = SimpleLazyObject(functools.partial(_signed_in_user, request.user))
        return get_response(request)

    return middleware


def _signed_in_user(user):
    if needs_second_factor(user):
        is_verified = getattr(user, "is_verified", None)  # set by django-otp's middleware
        if not (is_verified and is_verified()):
            return AnonymousUser()
    return user


def has_authenticator(user) -> bool:
    return any(True for _device in devices_for_user(user, confirmed=True))


def verified_device(user, code: str):
    """The user's authenticator that accepts ``code`` (each device counts its failures and slows down
    guessing), or None."""
    code = "".join(code.split())
    if not code:
        return None
    for device in devices_for_user(user, confirmed=True):
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


@transaction.atomic
def totp_enroll(*, actor, user, replace: bool = False) -> TOTPDevice:
    """Give ``user`` an authenticator (a TOTP secret), confirmed: the person scans or types it into their app.
    With ``replace`` their other authenticators are removed (a lost phone); otherwise an existing one is kept
    and returned."""
    existing = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if existing is not None and not replace:
        return existing
    TOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    log.info(
        "authenticator enrolled for %s by %s",
        user.get_username(),
        actor.get_username() if getattr(actor, "pk", None) else "a command",
    )
    return device


def secret_base32(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it when typed in."""
    return base64.b32encode(device.bin_key).decode()


def provisioning_text(device: TOTPDevice) -> str:
    """The secret, the otpauth:// URI and its QR code drawn with text, for a terminal."""
    qr = io.StringIO()
    segno.make(device.config_url, error="m").terminal(out=qr, compact=True)
    return (
        f"Secret (type it into the authenticator app): {secret_base32(device)}\n"
        f"Provisioning URI: {device.config_url}\n{qr.getvalue()}"
    )
