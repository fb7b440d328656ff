"""The one rule for writes: may this member of staff do this, to this unit's records?

Every state-changing service calls ``require`` first, so the admin, the API, the commands and the tasks
cannot differ. ``actor=None`` is the system itself (tasks, commands, seeds): always allowed. Views and the
admin still check early to hide buttons and answer 403, but the service is the rule.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from core.errors import NotAllowed
from crm.scoping import scope_for

__all__ = ["NotAllowed", "require"]


def require(actor, perm: str, *, unit=None) -> None:
    """Raise ``NotAllowed`` when ``actor`` lacks the Django permission ``perm`` or, when ``unit`` is given,
    the unit is outside the actor's scope."""
    if actor is None:
        return
    if not actor.has_perm(perm):
        raise NotAllowed(_("You are not allowed to do this (%(perm)s).") % {"perm": perm})
    if unit is not None and not scope_for(actor).allows_unit(getattr(unit, "pk", unit)):
        raise NotAllowed(_("This record belongs to a unit you do not serve."))
