"""How a moment is named in a record's title (its ``__str__``: page titles, breadcrumbs, inline rows, the admin's
recent actions): in the centre's local time (``TIME_ZONE``), day first, as the card and the queue write it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def local_stamp(at: dt.datetime | None, *, seconds: bool = False) -> str:
    """``dd/mm/YYYY HH:MM`` (``:SS`` too with ``seconds``) in local time; an empty string before the moment is
    set (a record not saved yet)."""
    if at is None:
        return ""
    if timezone.is_aware(at):
        at = timezone.localtime(at)
    return at.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")
