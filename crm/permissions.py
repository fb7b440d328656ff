"""The one rule for writes: may this member of staff do this, to this unit's records?

Every state-changing service calls ``require`` first, so the admin, the API, the commands and the tasks
cannot differ. ``actor=None`` is the system itself (tasks, commands, seeds): always allowed. Views and the
admin still check early to hide buttons and answer 403, but the service is the rule.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from core.errors import NotAllowed
from crm.scoping import scope_for

__all__ = ["EverythingOnlyAdminMixin", "NotAllowed", "require", "require_everything", "sees_everything"]


def require(actor, perm: str, *, unit=None) -> None:
    """Raise ``NotAllowed`` when ``actor`` lacks the Django permission ``perm`` or, when ``unit`` is given,
    the unit is outside the actor's scope."""
    if actor is None:
        return
    if not actor.has_perm(perm):
        raise NotAllowed(_("You are not allowed to do this (%(perm)s).") % {"perm": perm})
    if unit is not None and not scope_for(actor).allows_unit(getattr(unit, "pk", unit)):
        raise NotAllowed(_("This record belongs to a unit you do not serve."))


def sees_everything(user) -> bool:
    """True for staff who see every unit (administrators and superusers, ``crm.scoping``): only they read what
    belongs to the whole country (the outbox, with customers' phones and addresses) and change the national
    reference data (categories, SLA policies, holidays, prices, VAT rates). A company's local administrator,
    or an account whose staff profile was removed, does not."""
    return scope_for(user).everything


def require_everything(actor, perm: str) -> None:
    """``require`` for a write to national reference data: the permission, and a view of every unit."""
    require(actor, perm)
    if actor is not None and not sees_everything(actor):
        raise NotAllowed(_("Only staff who see every unit may change this."))


class EverythingOnlyAdminMixin:
    """A model admin of national reference data: read by whoever holds its view permission, added to, changed
    and deleted only by staff who see everything (``sees_everything``, asked only of those who hold the
    permission: the pages of everyone else do not compute their scope for it)."""

    def has_add_permission(self, request, *args, **kwargs):
        return super().has_add_permission(request, *args, **kwargs) and sees_everything(request.user)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and sees_everything(request.user)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and sees_everything(request.user)
