"""The dates a customer record can carry, checked the same way for the admin, the API and the imports.

A contract's dates (its start, and an end date given when it is terminated) fall between ``EARLIEST_DAY`` and a
year from today: a date outside is a typing slip (``2205`` for ``2025``), never a real agreement (an agreement
signed decades ago is carried over from the older systems with its date). A meter move (an install or a removal)
happens between the start of ``EARLIEST_MOVE_DAY`` and now: a move is recorded once done, and a meter in service
has been installed or checked again since (meters are verified every few years).
The checks run before the date reaches the database, so no date Python can hold (year 1 to 9999, in any time
zone) is stored or makes a server error.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from core.clock import CLOCK_SKEW
from core.text import name_key
from crm.reference_data import wards

EARLIEST_DAY = dt.date(1900, 1, 1)
EARLIEST_MOVE_DAY = dt.date(1990, 1, 1)


def day_text(day: dt.date) -> str:
    """dd/mm/yyyy for any date Python holds (``strftime`` leaves years before 1000 unpadded)."""
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def moment_text(at: dt.datetime) -> str:
    """dd/mm/yyyy HH:MM in local time; a moment at the edge of the calendar that local time cannot hold is
    written as it was given."""
    with contextlib.suppress(OverflowError, ValueError):
        at = timezone.localtime(at)
    return f"{day_text(at.date())} {at:%H:%M}"


def latest_contract_day() -> dt.date:
    """A year from today (28 February for a 29 February)."""
    today = timezone.localdate()
    try:
        return today.replace(year=today.year + 1)
    except ValueError:
        return today.replace(year=today.year + 1, day=28)


def check_contract_day(day: dt.date, field: str) -> None:
    """Refuse, on ``field``, a contract date before 01/01/1900 or more than a year from today."""
    latest = latest_contract_day()
    if EARLIEST_DAY <= day <= latest:
        return
    raise ValidationError(
        {
            field: _("%(day)s is not a date a contract can have: give a date from %(first)s to %(last)s.")
            % {"day": day_text(day), "first": day_text(EARLIEST_DAY), "last": day_text(latest)}
        }
    )


def check_move_moment(at: dt.datetime, field: str = "at") -> None:
    """Refuse, on ``field``, a meter move before 01/01/1990 or in the future (beyond the clocks' skew)."""
    earliest = timezone.make_aware(dt.datetime.combine(EARLIEST_MOVE_DAY, dt.time()))
    if at < earliest:
        raise ValidationError(
            {
                field: _("A meter move is dated from %(first)s on: %(at)s is too early.")
                % {"first": day_text(EARLIEST_MOVE_DAY), "at": moment_text(at)}
            }
        )
    if at > timezone.now() + CLOCK_SKEW:
        raise ValidationError(
            {
                field: _("A meter move is recorded once done: %(at)s is in the future.")
                % {"at": moment_text(at)}
            }
        )


def unit_ward(unit, ward: str, *, field: str = "ward", kept: str | None = None) -> str:
    """``ward`` as the unit's reference list of wards (``crm.reference_data.wards``) spells it, matched by
    ``core.text.name_key`` (case, spaces, decomposed accents): what an outage of the unit names
    (``tickets.models.Incident.covers``). A ward the list does not hold is refused on ``field``: a customer
    there would be in no outage of their unit. A unit without a list takes any ward; a blank one is left to the
    model's own check. ``kept``: the customer's ward recorded so far, taken again when given unchanged (a
    record older than this rule is still saved when its other fields change)."""
    listed = wards().get(unit.code)
    if not listed or not ward:
        return ward
    key = name_key(ward)
    for name in listed:
        if name_key(name) == key:
            return name
    if kept is not None and name_key(kept) == key:
        return kept
    raise ValidationError(
        {
            field: _("%(ward)s is not a ward of unit %(unit)s. Choose one of its wards: %(wards)s.")
            % {"ward": ward, "unit": unit.code, "wards": ", ".join(listed)}
        }
    )
