"""Authentication: the permissions kept in the shared cache, and the API's hashed tokens with failures throttled.

A busy API (thousands of requests a minute from the channels' integrations) would otherwise read the user's
groups' permissions on every request: they are kept in the cache every process shares (``crm.shared_cache``),
and a change of the user, their groups or their role reaches every process at once.

API tokens are django-rest-knox tokens (``crm.ApiToken``): only their SHA-512 digest is stored, each has an
expiry and a name, and the token and its user are read from the database on every request (one query), so a
revoked token, an expired one or a deactivated user is refused at once. Expired tokens are deleted by a daily
job (``crm.tasks.delete_expired_tokens``), not by each request: knox's own check reads all of the user's
tokens on every request to delete the expired ones, a second query on the busiest path of the API. A client address that sends too many bad tokens is answered
429 with Retry-After for a while, whatever token it sends then (``FailedTokenThrottle``).
"""

from __future__ import annotations

import binascii
from hmac import compare_digest

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.authentication import SessionScheme as SpectacularSessionScheme
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS, knox_settings
from rest_framework import authentication, exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from crm import shared_cache
from crm.models import ApiToken

_PERMISSIONS_ATTR = "tongdai_permissions"


class CachedModelBackend(ModelBackend):
    """Django's model backend; a user's permissions come from the shared cache (once per request object). A
    username is read in any case (``nv.lan`` and ``NV.Lan`` are one person: the database holds usernames unique
    whatever their case, ``crm/migrations/0013``): the account's stored spelling is looked up, then Django's
    own check of the password runs on it."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if isinstance(username, str) and username:
            stored = (
                get_user_model()
                ._default_manager.filter(username__iexact=username)
                .values_list("username", flat=True)
                .first()
            )  # fmt: skip
            username = stored or username
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        permissions = getattr(user_obj, _PERMISSIONS_ATTR, None)
        if permissions is None:
            permissions = shared_cache.remember(
                f"permissions:{user_obj.pk}:{user_obj.is_superuser}",
                (shared_cache.STAFF,),
                lambda: frozenset(super(CachedModelBackend, self).get_all_permissions(user_obj)),
            )
            setattr(user_obj, _PERMISSIONS_ATTR, permissions)
        return permissions


class FailedTokenThrottle(SimpleRateThrottle):
    """Failed token authentications per client address: ``DEFAULT_THROTTLE_RATES["failed_token"]``. Only
    failures are recorded (``record_failure``); ``blocks`` tells whether the address is over its rate."""

    scope = "failed_token"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view=None):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocks(self, request) -> bool:
        """True while the address's failures within the window reach the rate (nothing is recorded)."""
        if self.rate is None:
            return False
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        num_requests, duration = self.parse_rate(self.rate)
        # Read with the request's generations (``crm.shared_cache.read``): every API request asks it.
        recorded = shared_cache.read(self.key, [])
        self.history = [t for t in recorded if t > self.now - (duration or 0)]
        # An address with no failure recorded is never blocked, whatever the rate.
        return bool(self.history) and len(self.history) >= (num_requests or 0)

    def record_failure(self, request) -> None:
        if self.rate is not None:
            # Records the attempt while under the rate; the throttle reads no view.
            self.allow_request(request, None)  # type: ignore[arg-type]


class TokenAuthentication(KnoxTokenAuthentication):
    """``Authorization: Token <secret>``. Bad tokens are counted per client address: past the rate of
    ``failed_token`` the address gets 429 for every token until the window has passed."""

    def authenticate(self, request):
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != self.authenticate_header(request).lower().encode():
            return None  # no token: another authentication may apply
        throttle = FailedTokenThrottle()
        if throttle.blocks(request):
            raise exceptions.Throttled(wait=throttle.wait())
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def authenticate_credentials(self, token: bytes):
        """The unexpired token whose digest matches, with its user, in one query (knox compares the same way)."""
        refused = exceptions.AuthenticationFailed(_("Invalid token."))
        text = token.decode("utf-8", errors="replace")
        try:
            digest = hash_token(text)
        except (TypeError, binascii.Error):
            raise refused from None
        now = timezone.now()  # every token has an expiry, compared here: the query stays the simplest to build
        for auth_token in ApiToken.objects.select_related("user").filter(token_key=text[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if auth_token.expiry > now and compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise refused


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication, whose refusal of a request without its CSRF token is said in the caller's
    language (DRF's own is English: "CSRF Failed: ...")."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied:
            raise exceptions.PermissionDenied(
                _("The request lacks its CSRF token: reload the page and try again.")
            ) from None


class TokenScheme(KnoxTokenScheme):
    """How the API schema describes the token (``Authorization: Token <secret>``)."""

    target_class = "crm.auth.TokenAuthentication"
    name = "tokenAuth"


class SessionScheme(SpectacularSessionScheme):
    """How the API schema describes the session (the admin's session cookie), as for DRF's own class."""

    target_class = "crm.auth.SessionAuthentication"
