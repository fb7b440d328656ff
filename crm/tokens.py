"""API tokens: made by an administrator for a user (a member of staff, or the account of an integration), named
after what uses them, with an expiry; the secret is returned once and only its digest is stored. Revoking
deletes the token, and it is refused from the next request on, in every process."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import staff_access
from crm.models import ApiToken

log = logging.getLogger("tongdai.security")

MAX_DAYS = settings.API_TOKEN_MAX_DAYS  # the settings refuse a TONGDAI_API_TOKEN_DAYS above it at start


def api_token_check(*, actor, user, name: str, days: int) -> None:
    """Refuse a token that could not be made (a ValidationError naming the field): the service and the admin's
    form ask the same. A token acts as its user, so ``actor`` (None for the command line) must be allowed to
    change that user's account (``crm.staff_access``): nobody mints a token for someone who holds more, or who
    serves units the actor does not see."""
    if not staff_access.may_manage_user(actor, user):
        if staff_access.serves_beyond_scope(actor, user):
            refusal = _("You may not make a token for %(user)s: they serve units you do not serve.")
        elif staff_access.sees_beyond_scope(actor, user):
            refusal = _("You may not make a token for %(user)s: they see units you do not see.")
        else:
            refusal = _(
                "You may not make a token for %(user)s: the account holds permissions you do not have."
            )
        raise ValidationError({"user": refusal % {"user": user.get_username()}})
    if not (name or "").strip():
        raise ValidationError({"name": _("Name the token after what will use it.")})
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError({"days": _("A token lasts from 1 to %(max)s days.") % {"max": MAX_DAYS}})
    if not user.is_active:
        raise ValidationError({"user": _("This user is deactivated: a token of theirs would not work.")})


@transaction.atomic
def api_token_create(*, actor, user, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token of ``user`` named ``name`` that expires in ``days`` (``TONGDAI_API_TOKEN_DAYS`` by default).
    Returns the token and its secret: the secret is stored nowhere, show it once."""
    days = settings.TONGDAI_API_TOKEN_DAYS if days is None else days
    api_token_check(actor=actor, user=user, name=name, days=days)
    name = name.strip()
    actor = actor if getattr(actor, "pk", None) else None
    token, secret = ApiToken.objects.create(
        user=user, expiry=dt.timedelta(days=days), name=name, created_by=actor
    )
    _audit(actor, token, ADDITION, f"API token created for {user.get_username()}, expires {token.expiry:%Y-%m-%d}")
    return token, secret


@transaction.atomic
def api_token_revoke(*, actor, token: ApiToken) -> None:
    """Revoke ``token``: it is deleted, so the next request that sends it is refused. ``actor`` (None for the
    command line and the jobs) must be allowed to change the token's user's account, as for making one
    (``crm.staff_access``): nobody cuts off the integration of staff they do not administer, or of a superuser."""
    staff_access.check_manage_user(actor, token.user)
    actor = actor if getattr(actor, "pk", None) else None
    _audit(actor, token, DELETION, f"API token revoked ({token.user.get_username()})")
    token.delete()


def _audit(actor, token: ApiToken, flag: int, message: str) -> None:
    """The admin's history (who, when, which token) when a person acted, and the security log always."""
    if actor is not None:
        LogEntry.objects.log_actions(
            user_id=actor.pk, queryset=[token], action_flag=flag, change_message=message, single_object=True
        )
    log.info(
        "%s: token %s… %r by %s",
        message,
        token.token_key,
        token.name,
        actor.get_username() if actor else "a command",
    )


def api_tokens_delete_expired(*, at: dt.datetime | None = None) -> int:
    """Delete the tokens that expired before ``at`` (now); they are already refused. A daily job; safe to rerun."""
    at = at or timezone.now()
    deleted, _by_model = ApiToken.objects.filter(expiry__lte=at).delete()
    if deleted:
        log.info("%d expired API tokens deleted", deleted)
    return deleted
