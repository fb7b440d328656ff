"""Organisation changes in tests: a unit merged into another on a given day."""

from __future__ import annotations

from crm import shared_cache
from crm.models import Unit


def merge(unit, into, valid_to):
    """``unit`` merged into ``into``, its last day ``valid_to`` (the merge takes effect the day after)."""
    Unit.objects.filter(pk=unit.pk).update(valid_to=valid_to, successor=into)
    shared_cache.changed(shared_cache.ORGANISATION)
    unit.refresh_from_db()
