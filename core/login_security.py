"""Failed sign-ins (django-axes): what a locked-out person sees, and the administrator's unlock."""

from __future__ import annotations

import logging

from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.admin.models import DELETION, LogEntry
from django.db import transaction
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

log = logging.getLogger("tongdai.security")


def client_address(request) -> str | None:
    """The client's address, read as the API's throttles read it: ``REMOTE_ADDR``, or behind ``PROXY_COUNT``
    reverse proxies the address the nearest one saw (the right-most of ``X-Forwarded-For`` they vouch for)."""
    return BaseThrottle().get_ident(request) or None


def sign_in_name(request, credentials=None) -> str | None:
    """The username a sign-in's failures are counted under (``AXES_USERNAME_CALLABLE``): lower-cased, as a
    username names one person whatever its case, so ``NV.Lan`` and ``nv.lan`` share one count and one lockout."""
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")  # django-axes' setting, its default
    name = (credentials or getattr(request, "data", request.POST)).get(field)
    return name.lower() if isinstance(name, str) else name


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a sign-in from a locked-out username or address: 429 with the admin's look."""
    cooloff = settings.AXES_COOLOFF_TIME
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": int(cooloff.total_seconds() // 60) if cooloff else None,
        "site_header": None,
    }
    response = render(request, "admin/locked_out.html", context, status=429)
    if cooloff:
        response["Retry-After"] = str(int(cooloff.total_seconds()))
    return response


@transaction.atomic
def login_unlock(*, actor, attempts, within=None) -> int:
    """Unlock the usernames and client addresses of ``attempts`` (failed sign-ins): every failure counted
    against them is forgotten, so they may sign in again at once. ``within`` (a queryset of failed sign-ins;
    all of them when None, for the command line) is what ``actor`` may unlock: a selected attempt outside it
    is left, and unlocking an address forgets only the failures within it (those of an account the actor may
    not change stay counted). Returns how many records went."""
    within = AccessAttempt.objects.all() if within is None else within
    attempts = list(within.filter(pk__in=[a.pk for a in attempts]))
    usernames = {a.username for a in attempts if a.username}
    addresses = {a.ip_address for a in attempts if a.ip_address}
    if getattr(actor, "pk", None) and attempts:
        LogEntry.objects.log_actions(
            user_id=actor.pk, queryset=attempts, action_flag=DELETION, change_message="Unlocked"
        )
    removed = 0
    for username in sorted(usernames):
        removed += reset(username=username)
    from_addresses = within.filter(ip_address__in=sorted(addresses)).values("pk")
    removed += AccessAttempt.objects.filter(pk__in=from_addresses).delete()[0]
    removed += AccessAttempt.objects.filter(pk__in=[a.pk for a in attempts]).delete()[0]
    log.warning(
        "sign-in unlocked for users %s and addresses %s by %s",
        sorted(usernames),
        sorted(addresses),
        actor.get_username() if getattr(actor, "pk", None) else "a command",
    )
    return removed
