"""The rules a meter reading must meet, written once.

``billing.services`` (``reading_record``, ``reading_estimate``, ``reading_correct``, and through them the API and
the admin) calls these functions; the readings import (``billing.imports``) words its set-based refusals with
the same messages and sends a line for a month before one already read through ``reading_record`` itself, so a
late reading is placed among its neighbours by this module whichever way it comes in.

- a contract is read while it is in force: not while pending or suspended (a month not read is not billed;
  a month read before a suspension is billed by its run), and a terminated contract only for the months up to
  its end (its final month is read and billed);
- a month after the current one is not read yet (nor estimated);
- a month that ended before the meter was installed is not read on that meter, nor a register taken before
  it was;
- a month is read on the meter that served the contract then: the one on it now, or, when that one came later
  (or none is on it), the last one taken off during or after the month, whose removal register is the most it
  reads (the final month of a customer who moved out is read after the meter came off, and billed);
- a register is never above the register of a later month on the same meter (nor below the previous one,
  unless the meter rolled over: ``billing.services._consumption``), so a reading entered late for an earlier
  month sits in register order among its neighbours, and the later reading's advance is re-based on it.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models import ContractStatus
from customers.services import LARGEST_REGISTER, REGISTER_ABOVE_LARGEST

SUSPENDED = _("The contract is suspended: its meter is not read until it is active again.")
PENDING = _("The contract is not in force yet: its meter is read once it is active.")
ENDED = _("The contract ended on %(d)s: a later month is not read on it.")
BEFORE_INSTALL = _("The meter was installed after %(m)s: that month is not read on it.")
ABOVE_LATER = _("The register (%(v)s) is above the reading of a later month (%(m)s: %(n)s).")
FUTURE = _("A period in the future cannot be read.")
ABOVE_REMOVAL = _("Meter %(s)s came off on %(d)s at %(r)s: a register above that is not read on it.")
TAKEN_BEFORE_INSTALL = _(
    "The register was taken before its meter was installed on the contract: give the time it was read."
)
JUMP = _("%(k)s kWh against about %(e)s expected from the last cycles")


def month_end(period: dt.date) -> dt.date:
    """The first day of the month after ``period``'s."""
    return (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_end_at(period: dt.date) -> dt.datetime:
    """Local midnight at the end of ``period``'s month (``settings.TIME_ZONE``), as an aware time."""
    end = month_end(period)
    return timezone.make_aware(dt.datetime(end.year, end.month, end.day))


def contract_refusal(status: str, *, end_date: dt.date | None = None, period: dt.date | None = None) -> str:
    """Why a contract in ``status`` (ended on ``end_date``, when terminated) takes no reading of ``period``
    ('' when it does). A terminated contract is read for the months up to its end: its final month's reading
    is what its final bill is made from."""
    if status == ContractStatus.SUSPENDED:
        return str(SUSPENDED)
    if status == ContractStatus.PENDING:
        return str(PENDING)
    if status == ContractStatus.TERMINATED and (end_date is None or period is None or period > end_date):
        return str(ENDED) % {"d": f"{end_date:%d/%m/%Y}" if end_date else "?"}
    return ""


def install_refusal(installed_at: dt.datetime, period: dt.date) -> str:
    """Why ``period`` cannot be read on a meter installed at ``installed_at`` ('' when it can)."""
    if installed_at >= month_end_at(period):
        return str(BEFORE_INSTALL) % {"m": f"{period:%m/%Y}"}
    return ""


def taken_refusal(taken_at: dt.datetime | None, assignment) -> str:
    """Why a register ``taken_at`` cannot have been read on the meter of ``assignment`` ('' when it can): the
    meter was not on the contract yet. (A register taken after the meter came off is the final month's, read
    or keyed in later: its register at removal bounds it, ``removal_refusal``.) The readings import refuses
    its lines with the same message."""
    if taken_at is not None and assignment is not None and taken_at < assignment.installed_at:
        return str(TAKEN_BEFORE_INSTALL)
    return ""


def month_start_at(period: dt.date) -> dt.datetime:
    """Local midnight at the start of ``period``'s month (``settings.TIME_ZONE``), as an aware time."""
    return timezone.make_aware(dt.datetime(period.year, period.month, 1))


def removal_refusal(value: int, assignment) -> str:
    """Why ``value`` cannot be read on the meter of ``assignment`` ('' when it can): the meter came off the
    contract with its removal register, the last it read there."""
    if assignment is not None and assignment.removed_at is not None and int(value) > assignment.reading_at_removal:
        return str(ABOVE_REMOVAL) % {
            "s": assignment.meter.serial,
            "d": f"{timezone.localtime(assignment.removed_at):%d/%m/%Y}",
            "r": assignment.reading_at_removal,
        }
    return ""


def current_period() -> dt.date:
    """The first day of the current month (local time): the latest month that may be read."""
    return timezone.localdate().replace(day=1)


def future_refusal(period: dt.date) -> str:
    """Why ``period`` cannot be read yet ('' when it can): a month after the current one (local time)."""
    if period > current_period():
        return str(FUTURE)
    return ""


def later_refusal(value: int, later) -> str:
    """Why ``value`` cannot come before ``later`` (the next current reading on the same meter, or None)."""
    if later is not None and int(value) > later.value and not later_rolled_over(later):
        return str(ABOVE_LATER) % {"v": value, "m": f"{later.period:%m/%Y}", "n": later.value}
    return ""


def later_rolled_over(later) -> bool:
    """The later reading was taken across a roll-over of the register (its register below its previous)."""
    return later.previous_value is not None and later.value < later.previous_value


def check(*reasons: str, field: str | None = "value") -> None:
    """Refuse with the first reason given, if any (on ``field``, or the whole reading when None)."""
    for reason in reasons:
        if reason:
            raise ValidationError({field: reason} if field else reason)


def register_refusal(value: int) -> str:
    """Why ``value`` cannot be a meter's register ('' when it can): above ``LARGEST_REGISTER``, the most a meter
    reads, which the meter moves refuse too (``customers.services._check_register``), in the same words. A
    reading above it could be billed and then the meter could not come off at it. The readings import refuses
    its lines with the same message; the API's and the admin's register fields stop at the same number."""
    if int(value) > LARGEST_REGISTER:
        return str(REGISTER_ABOVE_LARGEST) % {"max": LARGEST_REGISTER, "r": value}
    return ""


def jump_reason(kwh: int, hist_kwh: int | None, hist_days: int | None, days: int, factor) -> str:
    """Why ``kwh`` read over a month of ``days`` days is an implausible jump ('' when it is not): above
    ``factor`` (``TONGDAI_READING_JUMP_FACTOR``) times the expected amount and more than 50 kWh above it, the
    expected amount being ``hist_kwh`` kWh read over ``hist_days`` days (the last cycles, estimates left out)
    scaled to ``days``. Compared exactly (fractions, no rounded division); the expected figure of the reason is
    rounded half to even. Its SQL twin is the readings import's (``billing.imports._calc_sql`` ``flagged`` and
    ``_insert_sql``): the same comparison in whole numbers and the same figure, so both paths flag the same
    readings with the same words."""
    if not hist_kwh or not hist_days or hist_kwh <= 0:
        return ""
    expected = Fraction(int(hist_kwh) * days, int(hist_days))
    if kwh > Fraction(str(factor)) * expected and kwh - expected > 50:
        return str(JUMP) % {"k": kwh, "e": round(expected)}
    return ""
