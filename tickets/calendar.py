"""Working days: Monday to Friday, except the public holidays kept as data (``Holiday``)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from tickets.models import Holiday


def holidays_between(start: dt.date, end: dt.date) -> set[dt.date]:
    return set(Holiday.objects.filter(day__gte=start, day__lte=end).values_list("day", flat=True))


def is_working_day(day: dt.date, holidays: set[dt.date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: dt.datetime, days: int, *, start_day_off: bool | None = None) -> dt.datetime:
    """The moment ``days`` working days after ``start``, at the same local time of day.

    A request taken on a day off starts counting from the next working day's morning (07:30).
    ``start_day_off`` says whether the start's own day is a day off, whatever the holidays say (None: as they
    say): the deadline as it was before that day became, or stopped being, a public holiday.
    """
    local = timezone.localtime(start)
    day = local.date()
    holidays = holidays_between(day, day + dt.timedelta(days=days * 2 + 40))
    if start_day_off is not None:
        holidays = holidays | {day} if start_day_off else holidays - {day}
    if not is_working_day(day, holidays):
        while not is_working_day(day, holidays):
            day += dt.timedelta(days=1)
        local = local.replace(
            year=day.year, month=day.month, day=day.day, hour=7, minute=30, second=0, microsecond=0
        )
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        if is_working_day(day, holidays):
            counted += 1
    result = dt.datetime.combine(day, local.timetz().replace(tzinfo=None))
    return timezone.make_aware(result, timezone.get_current_timezone())


def day_start(day: dt.date) -> dt.datetime:
    """Midnight (local time) at the start of ``day``."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


def working_time_between(start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """The part of ``start``…``end`` that falls on working days (local time)."""
    if end <= start:
        return dt.timedelta(0)
    first, last = timezone.localtime(start).date(), timezone.localtime(end).date()
    holidays = holidays_between(first, last)
    total, day = dt.timedelta(0), first
    while day <= last:
        if is_working_day(day, holidays):
            low, high = max(start, day_start(day)), min(end, day_start(day + dt.timedelta(days=1)))
            total += max(high - low, dt.timedelta(0))
        day += dt.timedelta(days=1)
    return total


def add_working_time(start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
    """The moment ``amount`` of working-day time after ``start``: days off do not count."""
    moment, left = start, amount
    day = timezone.localtime(start).date()
    holidays = holidays_between(day, day + dt.timedelta(days=amount.days * 2 + 40))
    while True:
        if is_working_day(day, holidays):
            room = day_start(day + dt.timedelta(days=1)) - moment
            if left <= room:
                return moment + left
            left -= room
        day += dt.timedelta(days=1)
        moment = day_start(day)


def subtract_working_time(end: dt.datetime, amount: dt.timedelta) -> dt.datetime:
    """The moment ``amount`` of working-day time before ``end`` (``add_working_time`` backwards): days off do not
    count."""
    moment, left = end, amount
    day = timezone.localtime(end).date()
    holidays = holidays_between(day - dt.timedelta(days=amount.days * 2 + 40), day)
    while True:
        if is_working_day(day, holidays):
            room = moment - day_start(day)
            if left <= room:
                return moment - left
            left -= room
        moment = day_start(day)
        day -= dt.timedelta(days=1)
