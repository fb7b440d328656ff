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

from django.contrib.auth.backends import ModelBackend
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from core.api.throttling import FailedTokenThrottle
from crm import shared_cache
from crm.models import ApiToken

_PERMISSIONS_ATTR = "tongdai_permissions"


class CachedModelBackend(ModelBackend):
    """Django's model backend; a user's permissions come from the shared cache (once per request object)."""

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
        candidates = ApiToken.objects.select_related("user").filter(
            Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), token_key=text[: CONSTANTS.TOKEN_KEY_LENGTH]
        )
        for auth_token in candidates:
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise refused


class TokenScheme(KnoxTokenScheme):
    """How the API schema describes the token (``Authorization: Token <secret>``)."""

    target_class = "crm.auth.TokenAuthentication"
    name = "tokenAuth"
