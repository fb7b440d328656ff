"""Authentication with the per-process cache of ``crm.scoping.process_cache``.

A busy API (thousands of requests a minute from the channels' integrations) would otherwise read the token,
the user, their groups' permissions and their units on every request. Each is kept for
``TONGDAI_AUTH_CACHE_SECONDS`` (30 by default; 0 turns the cache off): a revoked token, a deactivated user or
a changed role takes effect within that time, and at once in the process that made the change.
"""

from __future__ import annotations

import copy

from django.contrib.auth.backends import ModelBackend
from rest_framework.authentication import TokenAuthentication

from crm.scoping import process_cache


class CachedModelBackend(ModelBackend):
    def _get_permissions(self, user_obj, obj, from_name):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        key = ("perms", user_obj.pk, from_name)
        cached = process_cache.get(key)
        if cached is None:
            cached = frozenset(super()._get_permissions(user_obj, obj, from_name))
            process_cache.put(key, cached)
        return set(cached)


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        cached = process_cache.get(("token", key))
        if cached is None:
            user, token = super().authenticate_credentials(key)
            process_cache.put(("token", key), user)
            return user, token
        # Each request gets its own copy: per-request attributes (the scope, permission caches) stay apart.
        return copy.copy(cached), key
