"""The one rule for writes: may this member of staff do this, to this unit's records?

Every state-changing service calls ``require`` first, so the admin, the API, the commands and the tasks
cannot differ. ``actor=None`` is the system itself (tasks, commands, seeds): always allowed. Views and the
admin still check early to hide buttons and answer 403, but the service is the rule.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from crm.scoping import scope_for


class NotAllowed(PermissionDenied):
    """A service's refusal of its actor. The API answers it 403 with its reason; in the admin it comes back
    as a message on the page the user acted from (``crm.middleware.service_refusals``), whereas the admin's
    own checks (a page the user may not open) stay a 403."""


def require(actor, perm: str, *, unit=None) -> None:
    """Raise ``NotAllowed`` when ``actor`` lacks the Django permission ``perm`` or, when ``unit`` is given,
    the unit is outside the actor's scope."""
    if actor is None:
        return
    if not actor.has_perm(perm):
        raise NotAllowed(_("You are not allowed to do this (%(perm)s).") % {"perm": perm})
    if unit is not None and not scope_for(actor).allows_unit(getattr(unit, "pk", unit)):
        raise NotAllowed(_("This record belongs to a unit you do not serve."))
