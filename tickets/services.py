"""Every state change of tickets and of the service catalogue: keyword-only, one transaction, one event each."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.clock import CLOCK_SKEW
from core.days import FIRST_DAY, LAST_DAY
from core.phones import is_mobile
from core.text import DESCRIPTION_MAX_CHARS, column_length, composed, typed_text
from crm import shared_cache
from crm.models import OutboxChannel, OutboxMessage, Role, StaffProfile, Unit
from crm.outbox import in_centre_language, outbox_enqueue, outbox_write, staff_message
from crm.permissions import require, require_everything
from crm.scoping import scope_for, units_served_today
from customers.models import Contract, Customer
from customers.normalise import InvalidPhone, display_phone, normalise_phone
from customers.services import check_unit_current
from tickets import reference, selectors
from tickets.calendar import (
    add_working_days,
    add_working_time,
    day_start,
    is_working_day,
    subtract_working_time,
    working_time_between,
)
from tickets.models import (
    DEADLINES,
    OPEN_STATUSES,
    Callback,
    CallbackOutcome,
    Category,
    Channel,
    Disposition,
    EventKind,
    Holiday,
    Incident,
    IntakeKey,
    Interaction,
    Priority,
    ResolutionCode,
    SlaPolicy,
    Status,
    Suspension,
    Ticket,
    TicketAttachment,
    TicketEvent,
    TicketNote,
    WorkOrder,
    WorkOrderStatus,
    attachment_content_type,
)
from tickets.selectors import current_unit, incidents_for_customer, open_ticket_numbers

# Reference data -----------------------------------------------------------------------------------------


@transaction.atomic
def catalogue_load_reference() -> dict[str, int]:
    """Create the categories, their first policies and the public holidays if missing (a year's holidays only
    while none of its reference days is kept). Idempotent: it never overwrites what an administrator changed,
    nor puts back a day off removed or moved (and a second run only reads, three queries). The outage category
    is the one flagged as such whatever its code (``outage_category``): while one exists, the reference's is
    not made a second time."""
    codes = [code for code, *_rest in reference.CATEGORIES]
    found = Category.objects.filter(Q(code__in=codes) | Q(is_outage=True)).values_list("code", "is_outage")
    existing = {code for code, _outage in found}
    has_outage = any(outage for _code, outage in found)
    new_categories = Category.objects.bulk_create(
        Category(code=code, name=name, is_outage=is_outage)
        for code, name, is_outage, _minutes, _days in reference.CATEGORIES
        if code not in existing and not (is_outage and has_outage)
    )
    limits = {code: (minutes, days) for code, _name, _outage, minutes, days in reference.CATEGORIES}
    without_policy = Category.objects.filter(code__in=codes).exclude(
        pk__in=SlaPolicy.objects.values("category_id")
    )
    policies = SlaPolicy.objects.bulk_create(
        SlaPolicy(
            category=category,
            valid_from=reference.POLICIES_FROM,
            resolve_minutes=limits[category.code][0],
            resolve_working_days=limits[category.code][1],
        )
        for category in without_policy
    )
    # The reference days of each year the table holds none of (a first load, or a year a new release adds): a
    # year of which one reference day is kept is the administrator's, whose removals and moves stand. While an
    # open ticket counts working days, each new day goes in through ``holiday_save``, which moves its deadline.
    kept = Holiday.objects.filter(day__in=[day for day, _name in reference.HOLIDAYS]).values_list("day", flat=True)
    years = {day.year for day in kept}
    new_days = [(day, name) for day, name in reference.HOLIDAYS if day.year not in years]
    holidays = len(new_days)
    counting = Ticket.objects.filter(status__in=OPEN_STATUSES, policy__resolve_working_days__isnull=False)
    if new_days and counting.exists():
        for day, name in new_days:
            holiday_save(actor=None, day=day, name=name)
    elif new_days:
        Holiday.objects.bulk_create(Holiday(day=day, name=name) for day, name in new_days)
    if new_categories or policies or holidays:
        shared_cache.changed(shared_cache.CATALOGUE)  # bulk writes send no signal
    return {"categories": len(new_categories), "policies": len(policies), "holidays": holidays}


def policy_in_force(*, category: Category, at: dt.datetime) -> SlaPolicy:
    """The policy of ``category`` in force at ``at``. The dated list is kept in the shared cache (policies are
    history: a new one starts later, it never rewrites one in force)."""
    policies = shared_cache.remember(
        f"policies:{category.pk}",
        (shared_cache.CATALOGUE,),
        lambda: list(category.policies.order_by("-valid_from")),
    )
    policy = next((p for p in policies if p.valid_from <= at), None)
    if policy is None:
        raise ValidationError(
            {"category": _("The category %(c)s has no time limits in force.") % {"c": category.name}}
        )
    return policy


def outage_category() -> Category:
    """The catalogue's category of outage calls (the card's one-click outage call takes it): the active one
    flagged as an outage, found by that flag and not by its code, which an administrator may not change but the
    data loaded before may differ in. Refused in clear words when the catalogue has none."""
    category = Category.objects.filter(is_outage=True, is_active=True).order_by("pk").first()
    if category is None:
        raise ValidationError(
            _("The catalogue has no active outage category: ask an administrator to activate it.")
        )
    return category


def active_suspension(*, category: Category, unit: Unit, at: dt.datetime) -> Suspension | None:
    if category.is_outage:
        return None  # outage reports are never suspended
    return category.suspensions.filter(units=unit, starts_at__lte=at, ends_at__gt=at).first()


@transaction.atomic
def suspension_create(
    *, actor, category: Category, units: list[Unit], starts_at: dt.datetime, ends_at: dt.datetime, reason: str
) -> Suspension:
    """Suspend a category in some units for a period. Outage reports cannot be suspended. ``actor`` (None for
    the system) must be allowed to suspend a service in each of the units."""
    require(actor, "tickets.add_suspension")
    for unit in units:
        require(actor, "tickets.add_suspension", unit=unit)
    if category.is_outage:
        raise ValidationError(_("Outage reports are never suspended."))
    reason = typed_text(reason, field="reason")
    suspension_create_check(starts_at=starts_at, ends_at=ends_at, reason=reason)
    if not units:
        raise ValidationError({"units": _("Choose the units where the service is suspended.")})
    suspension = Suspension.objects.create(
        category=category, starts_at=starts_at, ends_at=ends_at, reason=reason
    )
    suspension.units.set(units)
    return suspension


def suspension_create_check(*, starts_at: dt.datetime, ends_at: dt.datetime, reason: str) -> None:
    """The refusals of a suspension's period and reason, on their fields, writing nothing: ``suspension_create``
    gives them, and the admin's form runs them so that they show beside what was typed."""
    errors = {}
    if not composed(reason).strip():
        errors["reason"] = _("Say why the service is suspended.")
    if ends_at <= starts_at:
        errors["ends_at"] = _("A suspension ends after it starts.")
    if errors:
        raise ValidationError(errors)


# SLA policies ---------------------------------------------------------------------------------------------


def sla_policy_create_check(
    *,
    category: Category,
    valid_from: dt.datetime,
    acknowledge_minutes: int = 3,
    contact_minutes: int = 4,
    resolve_minutes: int | None = None,
    resolve_working_days: int | None = None,
    callback_hours: int = 24,
    escalate_level2_minutes: int = 30,
    escalate_level3_minutes: int = 120,
    at: dt.datetime | None = None,
) -> None:
    """The refusals ``sla_policy_create`` gives a policy, on the fields they concern, writing nothing (the
    admin's form runs it, so that they show beside what was typed). A policy starts at a moment to come: it
    applies to the tickets taken after it starts (``policy_in_force``), and one dated earlier would say that
    tickets already taken fell under limits they were never given. It starts at another moment than the
    category's other policies. Its acknowledge and contact targets are at least 1 minute, and it has exactly one
    resolve target, of at least 1 minute or 1 working day (a target of 0 would breach every ticket the moment it
    is taken), and its level 3 does not come before its
    level 2. Its callback target is at least 1 hour (with 0, every resolution's callback would be overdue the
    moment it is resolved, and its supervisors told). The database holds the last three as well (``SlaPolicy``'s
    constraints)."""
    at = at or timezone.now()
    errors: dict[str, list[str]] = {}
    if valid_from < at:
        errors["valid_from"] = [
            _("A new policy applies only from a moment to come: tickets already taken keep the time limits they "
              "were given. Choose a later start.")
        ]  # fmt: skip
    elif category.policies.filter(valid_from=valid_from).exists():
        errors["valid_from"] = [_("A policy of this category already starts at that moment.")]
    for name, minutes in (("acknowledge_minutes", acknowledge_minutes), ("contact_minutes", contact_minutes)):
        if minutes < 1:
            errors[name] = [_("At least 1 minute: with 0, every ticket would be late when taken.")]
    if (resolve_minutes is None) == (resolve_working_days is None):
        one = _("Choose exactly one resolve target: in minutes or in working days.")
        errors["resolve_minutes"] = errors["resolve_working_days"] = [one]
    elif resolve_minutes is not None and resolve_minutes < 1:
        errors["resolve_minutes"] = [_("At least 1 minute: with 0, every ticket would be late when taken.")]
    elif resolve_working_days is not None and resolve_working_days < 1:
        errors["resolve_working_days"] = [
            _("At least 1 working day: with 0, every ticket would be late when taken.")
        ]
    if callback_hours < 1:
        errors["callback_hours"] = [
            _("At least 1 hour: with 0, every callback would be overdue the moment its ticket is resolved.")
        ]
    if escalate_level3_minutes < escalate_level2_minutes:
        errors["escalate_level3_minutes"] = [
            _("Level 3 comes after level 2: at least %(n)d minutes after the first breach.")
            % {"n": escalate_level2_minutes}
        ]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def sla_policy_create(
    *,
    actor,
    category: Category,
    valid_from: dt.datetime,
    acknowledge_minutes: int = 3,
    contact_minutes: int = 4,
    resolve_minutes: int | None = None,
    resolve_working_days: int | None = None,
    callback_hours: int = 24,
    escalate_level2_minutes: int = 30,
    escalate_level3_minutes: int = 120,
) -> SlaPolicy:
    """New time limits of a category from a moment to come (national reference data: only staff who see every
    unit add them). The tickets taken before it keep the policy they were taken under; a policy is never changed
    (a correction is a new one from a later moment)."""
    require_everything(actor, "tickets.add_slapolicy")
    sla_policy_create_check(
        category=category, valid_from=valid_from, acknowledge_minutes=acknowledge_minutes,
        contact_minutes=contact_minutes, resolve_minutes=resolve_minutes,
        resolve_working_days=resolve_working_days, callback_hours=callback_hours,
        escalate_level2_minutes=escalate_level2_minutes, escalate_level3_minutes=escalate_level3_minutes,
    )  # fmt: skip
    return SlaPolicy.objects.create(
        category=category, valid_from=valid_from, acknowledge_minutes=acknowledge_minutes,
        contact_minutes=contact_minutes, resolve_minutes=resolve_minutes, resolve_working_days=resolve_working_days,
        callback_hours=callback_hours, escalate_level2_minutes=escalate_level2_minutes,
        escalate_level3_minutes=escalate_level3_minutes,
    )  # fmt: skip


# Public holidays ------------------------------------------------------------------------------------------

def holiday_day_check(day: dt.date) -> None:
    """Refuse, on its field, a day off the calendar cannot count working days around (``holiday_save``): the
    calendar reads a day as its local midnight in UTC and the day after it (``core.days``)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(
            {"day": _("Choose a day from %(a)s to %(b)s.")
             % {"a": f"{FIRST_DAY:%d/%m/%Y}", "b": f"{LAST_DAY:%d/%m/%Y}"}}
        )  # fmt: skip


@transaction.atomic
def holiday_save(*, actor, day: dt.date, name: str, holiday: Holiday | None = None) -> Holiday:
    """Add a public holiday, or change one (``holiday``: its name, or its day; a day changed is a new row).
    Working days skip the holidays kept as data, so the open tickets whose resolve clock runs over a day that
    becomes a day off (or stops being one) have that deadline moved (``_move_resolve_deadlines``). Idempotent:
    saving a day already kept changes at most its name and moves nothing."""
    require_everything(actor, "tickets.change_holiday" if holiday is not None else "tickets.add_holiday")
    holiday_day_check(day)
    name = typed_text(name, field="name", limit=column_length(Holiday, "name"))
    if not name:
        raise ValidationError({"name": _("Name the day off.")})
    if holiday is not None:
        holiday = Holiday.objects.select_for_update().filter(pk=holiday.pk).first()
    if holiday is None:  # a new day off (or one kept already: a repeat)
        holiday = Holiday.objects.select_for_update().filter(day=day).first()
        if holiday is None:
            holiday = Holiday.objects.create(day=day, name=name)
            _move_resolve_deadlines(actor, day=day, day_off=True)
    elif holiday.day != day:
        if Holiday.objects.filter(day=day).exists():
            raise ValidationError({"day": _("That day is a public holiday already.")})
        # One day at a time, each against the holidays as they then stand: the earlier day a working day again
        # (neither day off), then the new day off (a row of its own).
        earlier = holiday.day
        holiday.delete()
        _move_resolve_deadlines(actor, day=earlier, day_off=False)
        holiday = Holiday.objects.create(day=day, name=name)
        _move_resolve_deadlines(actor, day=day, day_off=True)
    if holiday.name != name:
        holiday.name = name
        holiday.save(update_fields=["name"])
    return holiday


@transaction.atomic
def holiday_delete(*, actor, holiday: Holiday) -> None:
    """Remove a public holiday: the open tickets whose resolve clock runs over that day, a working day again,
    have that deadline moved back (``_move_resolve_deadlines``). Idempotent: a holiday removed already is left."""
    require_everything(actor, "tickets.delete_holiday")
    day = Holiday.objects.select_for_update().filter(pk=holiday.pk).values_list("day", flat=True).first()
    if day is None:
        return
    Holiday.objects.filter(pk=holiday.pk).delete()
    _move_resolve_deadlines(actor, day=day, day_off=False)


def _move_resolve_deadlines(actor, *, day: dt.date, day_off: bool) -> int:
    """``day`` became a day off (``day_off``) or a working day again (the holidays already say so): each open
    ticket whose resolve deadline counts working days, not yet met or breached, and whose clock of this cycle
    (from its intake or its last reopen to the deadline) runs over part of that day, has the deadline moved by
    that part in working time: later for a day off, earlier for a working day. When the clock started that day,
    the deadline is worked out again by intake's rule instead (``add_working_days``: a start on a day off counts
    from the next working day's 07:30), plus the pauses already taken. A ticket waiting for the
    customer moves as well (its deadline counts the working time it has left; ``resume_clocks`` adds the pause
    in working time, which the holidays of then decide). The tickets are locked (the sweep skips them meanwhile
    and then reads their new ``next_check_at``); each gets an event. Returns how many moved."""
    if not is_working_day(day, set()):  # a Saturday or Sunday is no working day, holiday or not
        return 0
    start, end = day_start(day), day_start(day + dt.timedelta(days=1))
    tickets = list(
        Ticket.objects.filter(
            status__in=OPEN_STATUSES, policy__resolve_working_days__isnull=False, resolved_at__isnull=True,
            resolve_breached=False, created_at__lt=end, resolve_due__gt=start,
        )
        .select_related("policy")
        .order_by("pk")
        .select_for_update(of=("self",))
    )  # fmt: skip
    reopened = dict(
        TicketEvent.objects.filter(
            ticket_id__in=[t.pk for t in tickets if t.cycle], kind=EventKind.STATUS, after__status=Status.REOPENED
        )
        .values("ticket_id")
        .annotate(last=Max("at"))
        .values_list("ticket_id", "last")
    )
    now, moved, events = timezone.now(), [], []
    for ticket in tickets:
        since = max(ticket.created_at, reopened.get(ticket.pk, ticket.created_at))
        before = ticket.resolve_due
        if timezone.localtime(since).date() == day:
            # The clock started that day: the deadline is intake's (a start on a day off counts from the next
            # working day's 07:30), plus the working time of the pauses already taken, which ran after it.
            days = ticket.policy.resolve_working_days or 0  # set: the tickets are chosen by it
            taken = working_time_between(add_working_days(since, days, start_day_off=not day_off), before)
            ticket.resolve_due = add_working_time(add_working_days(since, days), taken)
        else:
            part = min(before, end) - max(since, start)
            if part <= dt.timedelta(0):
                continue
            ticket.resolve_due = (add_working_time if day_off else subtract_working_time)(before, part)
        if ticket.resolve_due == before:
            continue
        ticket.next_check_at = next_check(ticket)
        moved.append(ticket)
        note = (
            _("%(day)s is a public holiday: the resolve deadline moves later.")
            if day_off
            else _("%(day)s is a working day again: the resolve deadline moves earlier.")
        ) % {"day": f"{day:%d/%m/%Y}"}
        events.append(
            TicketEvent(
                ticket=ticket, kind=EventKind.DEADLINE, actor=actor if getattr(actor, "pk", None) else None, at=now,
                before={"resolve_due": before.astimezone(dt.UTC).isoformat()}, cycle=ticket.cycle, note=note,
                after={"resolve_due": ticket.resolve_due.astimezone(dt.UTC).isoformat(), "day": day.isoformat(),
                       "day_off": day_off},
            )
        )  # fmt: skip
    Ticket.objects.bulk_update(moved, ["resolve_due", "next_check_at"])
    TicketEvent.objects.bulk_create(events)
    return len(moved)


# Intake -------------------------------------------------------------------------------------------------


@dataclass
class Intake:
    ticket: Ticket
    created: bool
    warnings: list[str] = field(default_factory=list)


def _next_number(year: int) -> str:
    """Take the next number of ``year``: concurrent intakes never share one.

    On PostgreSQL a sequence per year hands numbers out without a lock held to the end of the transaction (a
    counter row would make every intake wait for the one before it to commit); a rolled-back intake leaves a
    gap. Elsewhere a counter row does the same, serialised by the database.
    """
    if connection.vendor == "postgresql":
        return f"{year}-{_sequence_next(year):07d}"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tickets_ticketcounter (year, last) VALUES (%s, 1) "
            "ON CONFLICT (year) DO UPDATE SET last = tickets_ticketcounter.last + 1 RETURNING last",
            [year],
        )
        (last,) = cursor.fetchone()
    return f"{year}-{last:07d}"


_SEQUENCES_SEEN: set[str] = set()


def ensure_number_sequence(year: int) -> str:
    """Create the sequence of ``year``'s ticket numbers if it is missing (PostgreSQL), continuing after any
    number a counter row handed out. Run after every migrate for this year and the next, so intake finds it."""
    name = f"tickets_number_{int(year)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {name}")
        cursor.execute(
            "SELECT setval(%s, COALESCE((SELECT last FROM tickets_ticketcounter WHERE year = %s), 0) + 1, false) "
            "FROM pg_sequences WHERE sequencename = %s AND last_value IS NULL",
            [name, int(year), name],
        )
    return name


def _ensure_sequence(year: int) -> str:
    name = f"tickets_number_{int(year)}"
    if name not in _SEQUENCES_SEEN:
        try:
            with transaction.atomic():
                ensure_number_sequence(year)
        except (IntegrityError, DatabaseError):
            pass  # created at this moment by a concurrent intake
        # Trusted once committed: a rolled-back creation must be made again.
        transaction.on_commit(lambda: _SEQUENCES_SEEN.add(name))
    return name


def _sequence_next(year: int) -> int:
    name = _ensure_sequence(year)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [name])
        return cursor.fetchone()[0]


def _event(ticket, kind, actor, *, before=None, after=None, note="", level=None, at=None) -> TicketEvent:
    return TicketEvent.objects.create(
        ticket=ticket,
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        at=at or timezone.now(),
        before=before or {},
        after=after or {},
        note=note,
        level=level,
    )


def staff_of_unit(unit: Unit, role: str) -> list[StaffProfile]:
    """The unit's working staff of a role (kept in the shared cache: intake asks on every ticket). A unit merged
    away is served by the unit that took it over (``selectors.units_serving``): its records kept from before
    the merge are the successor's staff's work. A member of staff whose account is deactivated has left: they
    are sent nothing (a ticket's notice holds the customer's phone and address)."""
    return shared_cache.remember(
        f"staff_of_unit:{unit.pk}:{role}",
        (shared_cache.STAFF, shared_cache.ORGANISATION),
        lambda: list(
            StaffProfile.objects.filter(role=role, units__in=selectors.units_serving(unit.pk))
            .filter(user__is_active=True)
            .select_related("user")
            .distinct()
            .order_by("pk")
        ),
    )


def profiles_of_user(user_id: int | None) -> list[StaffProfile]:
    """The staff profile of one user (a crew member, an assignee) to send a message to; none when the account
    is deactivated."""
    if user_id is None:
        return []
    return list(StaffProfile.objects.filter(user_id=user_id, user__is_active=True).select_related("user"))


def _primary_phone(customer: Customer | None) -> str:
    """The customer's primary number; reads prefetched phones when the caller prefetched them."""
    if customer is None:
        return ""
    if hasattr(customer, "primary_phone"):  # annotated by the caller (the intake API does)
        return customer.primary_phone or ""
    return next((p.number for p in customer.phones.all() if p.is_primary), "")


def _mobile_phone(customer: Customer | None) -> str:
    """The customer's number that takes an SMS: their primary one when it is a mobile, else their first other
    mobile; "" when every number is a landline (or they have none). Reads prefetched phones when the caller
    prefetched them."""
    if customer is None:
        return ""
    primary = getattr(customer, "primary_phone", None)  # annotated by the caller (the intake API does)
    if primary and is_mobile(primary):
        return primary
    phones = sorted(customer.phones.all(), key=lambda phone: (not phone.is_primary, phone.pk))
    return next((phone.number for phone in phones if is_mobile(phone.number)), "")


def _customer_address(ticket: Ticket) -> tuple[str, str]:
    """Where a message to the ticket's customer goes: (channel, recipient). By SMS to the caller's phone or, else,
    the customer's primary one (or another of theirs) when it is a mobile (a landline takes no SMS), else by
    e-mail to the customer; ``("", "")`` when there is neither."""
    phone = ticket.caller_phone if is_mobile(ticket.caller_phone) else _mobile_phone(ticket.customer)
    if phone:
        return OutboxChannel.SMS, phone
    email = ticket.customer.email if ticket.customer else ""
    if email:
        return OutboxChannel.EMAIL, email
    return "", ""


@in_centre_language()
def _summary(ticket: Ticket) -> str:
    """What the phone of the unit's dispatcher (or the crew sent) receives to call the customer back and go
    there: number, category, customer code, the phone to call and the address, a short description. Never
    the customer's name (the code finds the card) or national ID: an SMS is read on a phone, anywhere."""
    customer = ticket.customer
    phone = ticket.caller_phone or _primary_phone(customer)
    address = customer.address if customer else ticket.caller_address
    who = f"{customer.code}; " if customer else ""
    return (
        f"{ticket.number} [{ticket.category.name}] {who}"
        f"{_('phone')}: {display_phone(phone) if phone else '—'}; {_('address')}: {address or '—'}; "
        f"{composed(ticket.description)[:120]}"
    )


@in_centre_language()
def escalation_summary(ticket: Ticket) -> str:
    """What an escalation tells supervisors, managers and dispatchers: the ticket's number, category and unit
    and which deadlines have passed and are still to be met (one met late is no longer overdue). No personal
    data (name, phone, address, the caller's own words): they open the ticket for that."""
    late = [
        label
        for breached, done, label in (
            (ticket.acknowledge_breached, ticket.acknowledged_at, _("acknowledge")),
            (ticket.contact_breached, ticket.contacted_at, _("call the customer")),
            (ticket.resolve_breached, ticket.resolved_at, _("resolve")),
        )
        if breached and done is None
    ]
    return _("%(number)s [%(category)s] unit %(unit)s – %(unit_name)s; overdue: %(late)s") % {
        "number": ticket.number,
        "category": ticket.category.name,
        "unit": ticket.unit.code,
        "unit_name": ticket.unit.name,
        "late": ", ".join(late) or "—",
    }


@in_centre_language()
def callback_overdue_summary(ticket: Ticket) -> str:
    """What supervisors are told of a callback not made in time: the ticket's number, category and unit and
    when it was resolved and due to be called back. No personal data: they open the ticket for that."""
    return _("%(number)s [%(category)s] unit %(unit)s – %(unit_name)s; resolved at %(resolved)s; call back by "
             "%(due)s") % {
        "number": ticket.number,
        "category": ticket.category.name,
        "unit": ticket.unit.code,
        "unit_name": ticket.unit.name,
        "resolved": timezone.localtime(ticket.resolved_at).strftime("%d/%m/%Y %H:%M"),
        "due": timezone.localtime(ticket.callback_due).strftime("%d/%m/%Y %H:%M"),
    }  # fmt: skip


def _deadlines(policy: SlaPolicy, at: dt.datetime) -> dict[str, dt.datetime]:
    if policy.resolve_minutes is not None:
        resolve = at + dt.timedelta(minutes=policy.resolve_minutes)
    elif policy.resolve_working_days is not None:
        resolve = add_working_days(at, policy.resolve_working_days)
    else:  # the database refuses such a policy (one of the two is set)
        raise ValueError(f"SLA policy {policy.pk} sets no resolution time")
    return {
        "acknowledge_due": at + dt.timedelta(minutes=policy.acknowledge_minutes),
        "contact_due": at + dt.timedelta(minutes=policy.contact_minutes),
        "resolve_due": resolve,
    }


# Each target of a ticket: its deadline, the moment it was met, its breach flag (one list, the model's).
CLOCKS = DEADLINES


def breach_outstanding(ticket: Ticket) -> bool:
    """Whether a deadline the ticket missed is still to be met. The escalation ladder climbs only then: once the
    late call, acknowledgement or resolution is made, nobody higher up is told of it (the level reached stays)."""
    return any(getattr(ticket, flag) and getattr(ticket, done) is None for _due, done, flag in CLOCKS)


def mark_missed(ticket: Ticket, *, now: dt.datetime, events: list[TicketEvent]) -> list[dt.datetime]:
    """Mark each deadline of the ticket passed by ``now``, not met and not yet marked, as breached: its flag set
    (in memory; the caller saves it) and a breach event added to ``events`` (unsaved). Returns the moments
    missed. The one rule of a miss: the sweep's (which then escalates), and that of a ticket leaving the open
    states (resolved, or its outage restored), which no sweep reads again: its misses are marked then, with no
    escalation and nobody told."""
    missed = []
    for target, done, flag in CLOCKS:
        due = getattr(ticket, target)
        if getattr(ticket, done) is None and not getattr(ticket, flag) and due <= now:
            setattr(ticket, flag, True)
            missed.append(due)
            events.append(
                TicketEvent(
                    ticket=ticket, kind=EventKind.BREACH, at=now, cycle=ticket.cycle,
                    after={"deadline": target, "due": due.isoformat()},
                )
            )  # fmt: skip
    return missed


def resume_clocks(ticket: Ticket, *, at: dt.datetime) -> None:
    """The customer answered: every clock waited with them. Each deadline still running moves back by the
    pause, and so does the escalation ladder (it counts from the first breach in running time), so a deadline
    that fell while the ticket was pending is not breached and nothing escalates for the pause. A deadline
    already met or breached keeps its moment, and so does one already passed when the pause began (as in
    ``ticket_record_contact``), even if the sweep had not marked it yet: the next sweep breaches it, and its
    ladder counts from the miss in running time (from the miss plus the pause), as if the sweep had been on
    time. Changes ``ticket`` in memory; the caller saves it."""
    if ticket.paused_at is None:
        return  # not paused: nothing waited
    waited = max(at - ticket.paused_at, dt.timedelta(0))
    policy = ticket.policy
    in_working_days = policy.resolve_minutes is None and policy.resolve_working_days is not None
    outstanding = breach_outstanding(ticket)
    missed = []  # deadlines passed before the pause that the sweep has not marked yet
    for due, done, breached in CLOCKS:
        if getattr(ticket, done) is None and not getattr(ticket, breached):
            if getattr(ticket, due) <= ticket.paused_at:
                missed.append(getattr(ticket, due))  # missed before the customer was waited for: it stays
            elif due == "resolve_due" and in_working_days:
                # A deadline counted in working days moves by the working time the pause took, over days off.
                lost = working_time_between(ticket.paused_at, at)
                setattr(ticket, due, add_working_time(getattr(ticket, due), lost))
            else:
                setattr(ticket, due, getattr(ticket, due) + waited)
    if outstanding and ticket.first_breach_at is not None:
        ticket.first_breach_at += waited  # the ladder climbing waited too
    if missed:
        # The sweep restarts a stopped ladder at a new miss (``tickets.sla``) but keeps this later start (and a
        # start an earlier pause set, not yet swept, moves on by this pause too).
        start = min(missed)
        if not outstanding and ticket.first_breach_at is not None:
            start = max(start, ticket.first_breach_at)
        start += waited
        keep = outstanding and ticket.first_breach_at is not None
        ticket.first_breach_at = min(ticket.first_breach_at, start) if keep else start
    ticket.paused_at = None


def next_check(ticket: Ticket) -> dt.datetime | None:
    """The earliest moment the SLA sweep has something to do for this ticket (None: nothing, or paused)."""
    if ticket.status not in OPEN_STATUSES or ticket.status == Status.PENDING_CUSTOMER:
        return None
    moments = []
    if ticket.acknowledged_at is None and not ticket.acknowledge_breached:
        moments.append(ticket.acknowledge_due)
    if ticket.contacted_at is None and not ticket.contact_breached:
        moments.append(ticket.contact_due)
    if ticket.resolved_at is None and not ticket.resolve_breached:
        moments.append(ticket.resolve_due)
    if ticket.first_breach_at is not None and breach_outstanding(ticket):
        policy = ticket.policy
        if ticket.escalation_level < 2:
            moments.append(ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level2_minutes))
        elif ticket.escalation_level < 3:
            moments.append(ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level3_minutes))
    return min(moments) if moments else None


class IdempotencyKeyReused(Exception):
    """The sender's Idempotency-Key was first used with another request: nothing is done (the API answers 422)."""

    def __init__(self, *, key: str, ticket: Ticket):
        self.key, self.ticket = key, ticket
        super().__init__(
            _("The Idempotency-Key “%(key)s” was already used for another request (ticket %(number)s). Send a "
              "new request with a new key; repeat a request only with the same content.")
            % {"key": key, "number": ticket.number}
        )  # fmt: skip


def request_hash(data) -> str:
    """The hash of a request's content, whatever the order of its fields (SHA-256 of its canonical JSON)."""
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    ).hexdigest()


def ticket_open(*, actor, idempotency_key: str | None = None, body_hash: str = "", **kwargs) -> Intake:
    """Take a request: route it to the responsible unit, stamp its deadlines and tell the unit's dispatcher.

    ``idempotency_key`` is the sender's (``actor``'s): claimed first, with ``body_hash`` (the API's hash
    of the request body; else a hash of the arguments). A repeat with the same content returns the first ticket
    (``created`` False) and changes nothing, also when two arrive at once (the database's unique key decides,
    the loser waits for the winner and answers with its ticket, having taken no ticket number); the same key
    with other content raises ``IdempotencyKeyReused``.
    """
    require(actor, "tickets.add_ticket")
    if not idempotency_key:
        with transaction.atomic():
            return _ticket_open(actor=actor, **kwargs)
    fingerprint = body_hash or request_hash({k: getattr(v, "pk", v) for k, v in kwargs.items() if k != "at"})
    owner = actor if getattr(actor, "pk", None) else None
    claim: IntakeKey | None = None
    try:
        with transaction.atomic():
            # The claim is the transaction's first write: a concurrent claim of the same key waits here until
            # that transaction ends, then fails on the unique key (or succeeds, if that one rolled back). Failing,
            # it takes the whole transaction back with it, before any ticket number is drawn.
            claim = IntakeKey.objects.create(
                owner=owner, key=idempotency_key, request_hash=fingerprint, created_at=timezone.now()
            )
            intake = _ticket_open(actor=actor, **kwargs)
            claim.ticket = intake.ticket
            claim.save(update_fields=["ticket"])
            return intake
    except IntegrityError:
        if claim is not None:
            raise  # the claim was ours: the intake's own writes failed
    return _answer_to_repeat(owner=owner, key=idempotency_key, fingerprint=fingerprint)


def _answer_to_repeat(*, owner, key: str, fingerprint: str) -> Intake:
    """The first request's ticket for a key already taken (a taken key always has its ticket: the claim and the
    ticket commit together), or ``IdempotencyKeyReused`` when that request's content was other."""
    claim = IntakeKey.objects.select_related("ticket").filter(owner=owner, key=key).first()
    if claim is None or claim.ticket is None:
        raise IntegrityError("The idempotency key could not be claimed.")
    if claim.request_hash and claim.request_hash != fingerprint:
        raise IdempotencyKeyReused(key=key, ticket=claim.ticket)
    return Intake(ticket=claim.ticket, created=False)


def _ticket_open(
    *,
    actor,
    category: Category,
    channel: str,
    description: str,
    customer: Customer | None = None,
    contract: Contract | None = None,
    caller_name: str = "",
    caller_phone: str = "",
    caller_address: str = "",
    unit: Unit | None = None,
    priority: str = Priority.NORMAL,
    incident: Incident | None = None,
    at: dt.datetime | None = None,
) -> Intake:
    at = at or timezone.now()
    description, caller_name, caller_address = composed(description), composed(caller_name), composed(caller_address)
    phone, unit = _checked_intake(
        category=category, channel=channel, description=description, customer=customer, contract=contract,
        caller_name=caller_name, caller_phone=caller_phone, unit=unit, priority=priority,
    )  # fmt: skip
    responsible = current_unit(unit)
    incident = _outage_of_the_call(category=category, customer=customer, unit=responsible, named=incident, at=at)
    _refuse_when_suspended(category=category, unit=responsible, at=at)
    policy = policy_in_force(category=category, at=at)
    ticket = Ticket(
        number=_next_number(timezone.localtime(at).year),
        customer=customer,
        contract=contract,
        caller_name=caller_name.strip(),
        caller_phone=phone,
        caller_address=caller_address.strip(),
        category=category,
        policy=policy,
        channel=channel,
        priority=priority,
        description=description.strip(),
        unit=responsible,
        created_at=at,
        created_by=actor if getattr(actor, "pk", None) else None,
        incident=incident,
        **_deadlines(policy, at),
    )
    ticket.next_check_at = next_check(ticket)
    ticket.save(force_insert=True)
    created: dict[str, str | int] = {"unit": responsible.code, "category": category.code}
    if incident is not None:
        created["incident"] = incident.pk
    _event(ticket, EventKind.CREATED, actor, after=created, at=at)
    warnings = _open_duplicates_warning(ticket)
    _tell_dispatchers_of_new_ticket(ticket)
    return Intake(ticket=ticket, created=True, warnings=warnings)


def _checked_intake(
    *,
    category: Category,
    channel: str,
    description: str,
    customer: Customer | None,
    contract: Contract | None,
    caller_name: str,
    caller_phone: str,
    unit: Unit | None,
    priority: str,
) -> tuple[str, Unit]:
    """Every refusal of a request at once (field by field), else the caller's phone in its normal form and the
    unit named for it (the customer's when none is given)."""
    errors = {}
    if channel not in Channel.values:
        errors["channel"] = _("Unknown channel.")
    if priority not in Priority.values:
        errors["priority"] = _("Unknown priority.")
    if not description.strip():
        errors["description"] = _("Describe the request.")
    elif len(description.strip()) > DESCRIPTION_MAX_CHARS:
        errors["description"] = _("At most %(limit)d characters (this text has %(n)d).") % {
            "limit": DESCRIPTION_MAX_CHARS, "n": len(description.strip())
        }
    if not category.is_active:
        errors["category"] = _("This category is no longer taken.")
    if contract is not None and (customer is None or contract.customer_id != customer.pk):
        errors["contract"] = _("The contract is not the customer's.")
    phone = ""
    if caller_phone:
        try:
            phone = normalise_phone(caller_phone)
        except InvalidPhone as exc:
            errors["caller_phone"] = str(exc)
    if customer is None and not (phone or caller_name.strip()) and "caller_phone" not in errors:
        errors["caller_phone"] = _("For an unknown caller, take at least a phone number or a name.")
    if unit is None and customer is not None:
        unit = customer.unit
    if unit is None:
        errors["unit"] = _("For an unknown caller, choose the unit responsible for the address.")
    elif customer is not None and current_unit(unit).pk != current_unit(customer.unit).pk:
        # A customer's ticket is routed to their unit: another unit named beside it (an integration sending
        # its default unit) is refused, never followed.
        errors["unit"] = _("A customer's ticket goes to their unit (%(unit)s).") % {
            "unit": current_unit(customer.unit).code
        }
    if errors or unit is None:
        raise ValidationError(errors)
    return phone, unit


def _refuse_when_suspended(*, category: Category, unit: Unit, at: dt.datetime) -> None:
    suspension = active_suspension(category=category, unit=unit, at=at)
    if suspension is not None:
        raise ValidationError({"category": _("%(c)s is suspended in %(u)s until %(end)s: %(reason)s") % {
            "c": category.name,
            "u": unit.name,
            "end": timezone.localtime(suspension.ends_at).strftime("%d/%m/%Y %H:%M"),
            "reason": suspension.reason,
        }})  # fmt: skip


def ticket_open_check(
    *,
    category: Category,
    channel: str,
    description: str,
    customer: Customer | None = None,
    contract: Contract | None = None,
    caller_name: str = "",
    caller_phone: str = "",
    unit: Unit | None = None,
    priority: str = Priority.NORMAL,
    at: dt.datetime | None = None,
) -> None:
    """The refusals ``ticket_open`` would give this request now (field by field: a contract that is not the
    customer's, a category no longer taken, suspended in the unit or without time limits in force, an invalid
    phone…), writing nothing. The
    new-ticket form runs it when it is validated, so that a refusal shows on its field while the caller is still
    on the line and what the agent typed stays; ``ticket_open`` checks again when the ticket is taken."""
    _phone, unit = _checked_intake(
        category=category, channel=channel, description=composed(description), customer=customer,
        contract=contract, caller_name=composed(caller_name), caller_phone=caller_phone, unit=unit,
        priority=priority,
    )  # fmt: skip
    at = at or timezone.now()
    _refuse_when_suspended(category=category, unit=current_unit(unit), at=at)
    policy_in_force(category=category, at=at)


def _open_duplicates_warning(ticket: Ticket) -> list[str]:
    """The agent is told when the customer already has an open ticket of the same category."""
    if ticket.customer_id is None:
        return []
    numbers = open_ticket_numbers(
        customer_id=ticket.customer_id, category_id=ticket.category_id, besides=ticket.pk
    )
    if not numbers:
        return []
    return [_("The customer already has an open ticket of this category: %(n)s") % {"n": ", ".join(numbers)}]


def _outage_of_the_call(
    *, category: Category, customer: Customer | None, unit: Unit, named: Incident | None, at: dt.datetime
) -> Incident | None:
    """The incident an outage call is linked to, on every intake path: the one named (see
    ``_linkable_incident``), else the open incident covering the customer's address that had started by the
    time of the call (the latest started). Other categories are never linked.

    The incident is read again locked, and linked only if it is still open: a restore committing at this moment
    has locked it first, so the call waits for it and is then taken unlinked (the outage it would join is
    over); a restore that comes after waits for this intake and resolves the call with the others."""
    if named is not None:
        return _linkable_incident(category=category, customer=customer, unit=unit, incident=named, at=at)
    if not category.is_outage or customer is None:
        return None
    for candidate in incidents_for_customer(customer, at=at):
        locked = _locked_incident(candidate)
        if locked is not None and locked.restored_at is None:
            return locked
    return None


def _locked_incident(incident: Incident) -> Incident | None:
    """``incident`` as committed now, locked to the end of the transaction (``incident_restore`` locks it too).
    FOR NO KEY UPDATE: it does not hold up the references other calls write to it."""
    return Incident.objects.select_for_update(no_key=True).filter(pk=incident.pk).first()


def _linkable_incident(
    *, category: Category, customer: Customer | None, unit: Unit, incident: Incident, at: dt.datetime
) -> Incident:
    """``incident``, locked, when a ticket of ``category`` about ``customer`` (or an unknown caller of ``unit``),
    a call made at ``at``, may be linked to it: the ticket is an outage report, the incident had started by the
    time of the call and is still open, and it covers the caller's address (the customer's unit and ward, or for
    an unknown caller the unit; the outage may be in a unit that took the caller's unit over). The rules of
    intake and of linking later alike; refusals are on the ``incident`` field."""
    if not category.is_outage:
        raise ValidationError({"incident": _("Only an outage report is linked to an outage.")})
    locked = _locked_incident(incident)
    if locked is None or locked.restored_at is not None:
        raise ValidationError({"incident": _("This outage is already restored.")})
    if locked.started_at > at:
        raise ValidationError(
            {"incident": _("This outage starts at %(start)s: a call before then is not part of it.")
                         % {"start": timezone.localtime(locked.started_at).strftime("%d/%m/%Y %H:%M")}}
        )  # fmt: skip
    # The outage's unit serves the caller's unit (itself, or a unit merged into it: ``units_served_today``); an
    # outage still open in a unit merged away since goes on covering that unit's addresses until restored.
    caller_unit_id = customer.unit_id if customer is not None else unit.pk
    covered = caller_unit_id in units_served_today([locked.unit_id]) and (
        customer is None or locked.covers(unit_id=locked.unit_id, ward=customer.ward)
    )
    if not covered:
        raise ValidationError({"incident": _("This outage does not cover the caller's address.")})
    return locked


def current_call_at(ticket: Ticket) -> dt.datetime:
    """The time of the ticket's current call: when it was taken, or its last reopen for a reopened ticket (a new
    call: the power gone again, the fault back). The one reading of what the current cycle is: the outages the
    call may be linked to (``ticket_link_incident``, ``_join_duplicates_outage``, ``outages_to_link``: one that
    started after it is about something else) and the job done in it (``_done_in_this_cycle``). One query for a
    reopened ticket, none otherwise."""
    if not ticket.cycle:
        return ticket.created_at
    reopened = (
        TicketEvent.objects.filter(ticket_id=ticket.pk, kind=EventKind.STATUS, after__status=Status.REOPENED)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    return reopened or ticket.created_at


def _tell_dispatchers_of_new_ticket(ticket: Ticket) -> None:
    """One outbox message per dispatcher of the ticket's unit, written in one INSERT."""
    profiles = staff_of_unit(ticket.unit, Role.DISPATCHER)
    if not profiles:
        return
    body = _summary(ticket)
    outbox_write(
        staff_message(
            profile, subject=ticket.number, body=body, dedupe_key=f"ticket:{ticket.pk}:routed:{profile.pk}"
        )
        for profile in profiles
    )


# Status -------------------------------------------------------------------------------------------------

TRANSITIONS: dict[str, set[str]] = {
    Status.NEW: {Status.ACKNOWLEDGED, Status.CANCELLED, Status.DUPLICATE},
    Status.ACKNOWLEDGED: {Status.DISPATCHED, Status.IN_PROGRESS, Status.PENDING_CUSTOMER, Status.RESOLVED,
                          Status.CANCELLED, Status.DUPLICATE},
    Status.DISPATCHED: {Status.IN_PROGRESS, Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CANCELLED},
    Status.IN_PROGRESS: {Status.PENDING_CUSTOMER, Status.RESOLVED, Status.CANCELLED},
    Status.PENDING_CUSTOMER: {Status.IN_PROGRESS, Status.RESOLVED, Status.CANCELLED},
    Status.RESOLVED: {Status.CLOSED, Status.REOPENED},
    Status.REOPENED: {Status.DISPATCHED, Status.IN_PROGRESS, Status.PENDING_CUSTOMER, Status.RESOLVED,
                      Status.CANCELLED},
    Status.CLOSED: {Status.REOPENED},
    Status.CANCELLED: set(),
    Status.DUPLICATE: set(),
}  # fmt: skip


@transaction.atomic
def ticket_change_status(
    *,
    actor,
    ticket: Ticket,
    to: str,
    note: str = "",
    duplicate_of: Ticket | None = None,
    at: dt.datetime | None = None,
) -> Ticket:
    """Move a ticket along its life; the clocks follow (pending the customer stops them, resolving stamps the
    callback). Refused moves raise and change nothing."""
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)
    note = typed_text(note, field="note")
    at = at or timezone.now()
    if to == Status.DUPLICATE and duplicate_of is not None:
        # The duplicate's outage first, as its restore takes it before its tickets (the earlier request may
        # join it, below); then both rows, in one order: two agents marking two tickets duplicates of each
        # other wait, not cross.
        linked = Ticket.objects.filter(pk=ticket.pk).values_list("incident_id", flat=True).first()
        if linked is not None:
            Incident.objects.select_for_update(no_key=True).filter(pk=linked).first()
        list(Ticket.objects.select_for_update().filter(pk__in=[ticket.pk, duplicate_of.pk]).order_by("pk"))
    ticket = Ticket.objects.select_for_update().select_related("policy").get(pk=ticket.pk)
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if to not in TRANSITIONS.get(ticket.status, set()):
        raise ValidationError(
            _("A ticket that is %(old)s cannot become %(new)s.")
            % {"old": Status(ticket.status).label, "new": Status(to).label if to in Status.values else to}
        )
    if to == Status.DISPATCHED and not WorkOrder.objects.open().filter(ticket_id=ticket.pk).exists():
        raise ValidationError(
            {"status": _("A ticket is dispatched by sending a crew: send one (a work order) instead.")}
        )
    if to in (Status.CANCELLED, Status.REOPENED) and not note.strip():
        raise ValidationError({"note": _("Say why.")})
    if to == Status.CLOSED:
        ticket_refuse_close_without_callback(ticket)
    before: dict = {"status": ticket.status}
    after: dict = {"status": to}
    if to == Status.DUPLICATE:
        if duplicate_of is None or duplicate_of.pk == ticket.pk:
            raise ValidationError({"duplicate_of": _("Name the ticket this one repeats.")})
        duplicate_of = Ticket.objects.get(pk=duplicate_of.pk)  # as it is now, not as the caller read it
        if not duplicate_of.is_open:
            raise ValidationError(
                {"duplicate_of": _("Ticket %(n)s is %(status)s: a ticket can only repeat an open one.")
                                 % {"n": duplicate_of.number, "status": Status(duplicate_of.status).label}}
            )  # fmt: skip
        ticket.duplicate_of = duplicate_of
        after["duplicate_of"] = duplicate_of.number  # the timeline names the request that stays open
        joined = _join_duplicates_outage(actor, ticket=ticket, master=duplicate_of, at=at)
        if joined is not None:
            after["outage_joined"] = {"ticket": duplicate_of.number, "incident": joined.pk}
    if ticket.status == Status.PENDING_CUSTOMER and ticket.paused_at is not None:
        resume_clocks(ticket, at=at)
    if to == Status.ACKNOWLEDGED:
        ticket.acknowledged_at = at
    elif to == Status.PENDING_CUSTOMER:
        ticket.paused_at = at
    elif to == Status.RESOLVED:
        # The ticket leaves the open states, and the sweep's reach: a deadline it missed is marked now.
        missed: list[TicketEvent] = []
        mark_missed(ticket, now=at, events=missed)
        TicketEvent.objects.bulk_create(missed)
        ticket.resolved_at = at
        ticket.callback_due = at + dt.timedelta(hours=ticket.policy.callback_hours)
    elif to == Status.CLOSED:
        ticket.closed_at = at
    elif to == Status.REOPENED:
        before.update(_restart_clocks(ticket, at=at))
    if ticket.acknowledged_at is None and to not in (Status.NEW, Status.CANCELLED, Status.DUPLICATE):
        ticket.acknowledged_at = at
    ticket.status = to
    ticket.next_check_at = next_check(ticket)
    ticket.save()
    if to in (Status.CANCELLED, Status.DUPLICATE, Status.RESOLVED, Status.CLOSED):
        # A crew still sent is called off (told, its order cancelled): the work is over, whoever ended it.
        with in_centre_language():
            if to == Status.DUPLICATE:
                reason = _("Ticket %(n)s is a duplicate of %(d)s.") % {"n": ticket.number, "d": ticket.duplicate_of}
            elif to == Status.CANCELLED:
                reason = _("Ticket %(n)s is cancelled: %(why)s") % {"n": ticket.number, "why": note.strip()}
            else:
                reason = _("Ticket %(n)s is resolved: %(why)s") % {"n": ticket.number, "why": note.strip() or "—"}
        cancelled = _cancel_open_work_orders(ticket, note=reason)
        if cancelled:
            after["work_orders_cancelled"] = cancelled
    _event(ticket, EventKind.STATUS, actor, before=before, after=after, note=note.strip(), at=at)
    return ticket


def _join_duplicates_outage(actor, *, ticket: Ticket, master: Ticket, at: dt.datetime) -> Incident | None:
    """A call linked to an outage, marked a duplicate of the customer's earlier call taken before the outage
    was entered: the earlier one (the request that stays open) joins the outage, so that its restore resolves it
    and tells the customer. Only when the outage takes it by intake's rules (``_linkable_incident``), judged by
    the time of the earlier call (``current_call_at``: it had started by then, as linking later), and the actor
    may change tickets of its unit; else nothing changes. Both tickets are locked by the caller, the outage
    before them. Returns the outage joined; its event is dated ``at``, the marking."""
    if ticket.incident is None or master.incident_id is not None:
        return None
    if actor is not None and not scope_for(actor).allows_unit(master.unit_id):
        return None
    try:
        incident = _linkable_incident(
            category=master.category, customer=master.customer, unit=master.unit, incident=ticket.incident,
            at=current_call_at(master),
        )  # fmt: skip
    except ValidationError:
        # another area, not an outage report, an outage started after the earlier call (about something else)
        # or over: the request stays as it is
        return None
    master.incident = incident
    master.save(update_fields=["incident"])
    why = _("Ticket %(n)s, a duplicate of it, is part of this outage.") % {"n": ticket.number}
    _event(master, EventKind.LINKED, actor, before={"incident": None}, after={"incident": incident.pk}, note=why, at=at)
    return incident


def _restart_clocks(ticket: Ticket, *, at: dt.datetime) -> dict:
    """A reopened ticket is a new cycle of work: its clocks start again at ``at`` (the resolve deadline of the
    policy it was taken under; the contact deadline too if the customer was never called), no breach and no
    escalation level of the earlier cycle counts, and the next resolution gets its own callback (the earlier
    cycle's callback row stays, with its survey, for the satisfaction figures). Returns the earlier cycle's
    record for the reopen event (its deadlines, breaches, level and callback). Changes ``ticket`` in memory;
    the caller saves it."""
    earlier: dict = {
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        "resolve_due": ticket.resolve_due.isoformat(),
        "contact_due": ticket.contact_due.isoformat(),
        "breached": [flag for _due, _done, flag in CLOCKS if getattr(ticket, flag)],
        "first_breach_at": ticket.first_breach_at.isoformat() if ticket.first_breach_at else None,
        "escalation_level": ticket.escalation_level,
    }
    # A deadline missed in this cycle stays missed in the figures once the clocks start again.
    if ticket.contact_missed_before is None and _missed(ticket, "contact_due", "contacted_at", "contact_breached"):
        ticket.contact_missed_before = ticket.contact_due
    if ticket.resolve_missed_before is None and _missed(ticket, "resolve_due", "resolved_at", "resolve_breached"):
        ticket.resolve_missed_before = ticket.resolve_due
    fresh = _deadlines(ticket.policy, at)
    ticket.resolve_due = fresh["resolve_due"]
    if ticket.contacted_at is None:
        ticket.contact_due = fresh["contact_due"]
    for _due, _done, flag in CLOCKS:
        setattr(ticket, flag, False)
    ticket.first_breach_at = None
    ticket.escalation_level = 0
    callback = Callback.objects.filter(ticket_id=ticket.pk, cycle=ticket.cycle).first()
    ticket.cycle += 1
    ticket.paused_at = None
    ticket.resolved_at = None
    ticket.closed_at = None
    if ticket.callback_overdue_at is not None:
        earlier["callback_overdue_at"] = ticket.callback_overdue_at.isoformat()
    ticket.callback_due = None
    ticket.callback_overdue_at = None
    if callback is not None:
        earlier["callback"] = {
            "attempts": callback.attempts,
            "outcome": callback.outcome,
            "fix_score": callback.fix_score,
            "attitude_score": callback.attitude_score,
            "comment": callback.comment,
            "agent": callback.agent_id,
            "completed_at": callback.completed_at.isoformat() if callback.completed_at else None,
        }
    return {"earlier_cycle": earlier}


def _missed(ticket: Ticket, due: str, done: str, flag: str) -> bool:
    """Whether the ticket's deadline ``due`` is missed: breached, or done after it."""
    done_at = getattr(ticket, done)
    return getattr(ticket, flag) or (done_at is not None and done_at > getattr(ticket, due))


@transaction.atomic
def ticket_record_contact(*, actor, ticket: Ticket, at: dt.datetime | None = None) -> Ticket:
    """The unit called the customer (measured against the 4-minute target). Every contact comes here (the
    ticket page and list, the API, the crew's "customer contacted").

    A contact made while the ticket waits for the customer (their clocks stopped) is measured in running time:
    its deadline moves by the part of the pause before the contact, as ``resume_clocks`` moves the deadlines
    still running, so the minutes waited for the customer do not make it late. A deadline already breached, or
    passed before the pause, keeps its moment."""
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)
    at = at or timezone.now()
    ticket = Ticket.objects.select_for_update().select_related("policy").get(pk=ticket.pk)
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if not ticket.is_open:
        raise ValidationError(_("The ticket is no longer open."))
    if ticket.contacted_at is not None:
        raise ValidationError(_("The customer contact is already recorded."))
    before: dict = {}
    after: dict = {"contacted_at": at.isoformat()}
    paused = ticket.paused_at
    if paused is not None and not ticket.contact_breached and ticket.contact_due > paused and at > paused:
        before["contact_due"] = ticket.contact_due.isoformat()
        ticket.contact_due += at - paused
        after["contact_due"] = ticket.contact_due.isoformat()
    ticket.contacted_at = at
    ticket.next_check_at = next_check(ticket)
    ticket.save(update_fields=["contacted_at", "contact_due", "next_check_at"])
    _event(ticket, EventKind.CONTACTED, actor, before=before, after=after, at=at)
    return ticket


@transaction.atomic
def ticket_reroute(*, actor, ticket: Ticket, unit: Unit, reason: str) -> Ticket:
    """A supervisor sends a ticket to another unit, with a reason; the new unit's dispatcher is told."""
    require(actor, "tickets.reroute_ticket", unit=ticket.unit_id)
    reason = typed_text(reason, field="reason")
    if not reason:
        raise ValidationError({"reason": _("Say why the ticket goes to another unit.")})
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    require(actor, "tickets.reroute_ticket", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if not ticket.is_open:
        raise ValidationError(_("The ticket is no longer open."))
    if unit.pk == ticket.unit_id:
        raise ValidationError({"unit": _("The ticket is already with this unit.")})
    old_unit = ticket.unit
    before: dict = {"unit": old_unit.code}
    after: dict = {"unit": unit.code}
    # The old unit's crews stop (every open order, those it kept from a unit it took over included): the new
    # unit sends its own, but for the orders it already works (it took the old unit over and the crew serves
    # it). The last order called off, the ticket ends as when its crew calls it off (``work_order_advance``):
    # resolved when a crew did the job in this cycle, else back to acknowledged for the new unit to send a
    # crew. Its assignee keeps the ticket only if they serve the new unit too (escalations go to the assignee;
    # an assignee always serves the ticket's unit).
    with in_centre_language():
        why = _("The ticket went to %(unit)s: %(why)s") % {"unit": unit.code, "why": reason.strip()}
    cancelled = _cancel_open_work_orders(ticket, note=why, keep=_work_orders_kept_by(ticket, unit=unit))
    done = _done_in_this_cycle(ticket) if cancelled else None
    if cancelled:
        after["work_orders_cancelled"] = cancelled
        earlier = None if done is not None else _back_to_acknowledged(ticket)
        if earlier is not None:
            before["status"], after["status"] = earlier, Status.ACKNOWLEDGED
    if ticket.assignee_id is not None and not selectors.serves(ticket.assignee_id, unit.pk):
        before["assignee"], after["assignee"] = ticket.assignee_id, None
        ticket.assignee = None
    if ticket.incident_id is not None:
        # An outage is a unit's: the ticket leaves it with the old unit (restoring it no longer resolves the
        # ticket nor tells its customer), and the new unit links it to an outage of its own if there is one.
        incident = Incident.objects.get(pk=ticket.incident_id)
        if incident.unit_id != unit.pk:
            before["incident"], after["incident"] = incident.pk, None
            ticket.incident = None
    ticket.unit = unit
    ticket.save(update_fields=["unit", "assignee", "incident"])
    event = _event(ticket, EventKind.ROUTED, actor, before=before, after=after, note=reason.strip())
    if done is not None:
        # Resolved in the new unit, whose callback it is now, by the crew's job done (no one's move: whoever
        # re-routes may not serve the unit it goes to, and the job is not theirs).
        _resolve_by_crew(None, ticket=ticket, resolution_code=done.resolution_code)
        ticket.refresh_from_db()
    body = _summary(ticket)
    outbox_write(
        staff_message(
            profile,
            subject=ticket.number,
            body=body,
            dedupe_key=f"ticket:{ticket.pk}:routed:{event.pk}:{profile.pk}",
        )
        for profile in staff_of_unit(unit, Role.DISPATCHER)
    )  # one INSERT for every dispatcher of the new unit
    return ticket


@transaction.atomic
def ticket_assign(*, actor, ticket: Ticket, assignee) -> Ticket:
    """Give the ticket to a member of staff of its unit (or of the unit that took it over, ``units_serving``).
    Taking it oneself needs only the right to change tickets; giving it to somebody else is a supervisor's or
    dispatcher's (``tickets.assign_ticket``)."""
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)
    if getattr(actor, "pk", None) and assignee.pk != actor.pk and not actor.has_perm("tickets.assign_ticket"):
        raise ValidationError(_("Only a supervisor or a dispatcher may give a ticket to somebody else."))
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if not ticket.is_open:
        raise ValidationError(_("The ticket is no longer open."))
    if ticket.assignee_id == assignee.pk:
        return ticket
    if not selectors.serves(assignee, ticket.unit_id):  # its unit, or the one that took it over
        raise ValidationError({"assignee": _("The assignee does not serve the ticket's unit.")})
    if not selectors.eligible_assignees([ticket.unit_id]).filter(pk=assignee.pk).exists():
        raise ValidationError({"assignee": _("%(who)s does not work tickets: choose staff whose role handles them.")
                               % {"who": assignee.get_username()}})  # fmt: skip
    before = {"assignee": ticket.assignee_id}
    ticket.assignee = assignee
    ticket.save(update_fields=["assignee"])
    _event(ticket, EventKind.ASSIGNED, actor, before=before, after={"assignee": assignee.pk})
    return ticket


# Notes, messages to the customer and attachments -------------------------------------------------------


@transaction.atomic
def ticket_add_note(
    *, actor, ticket: Ticket, body: str, to_customer: bool = False, token: str | None = None
) -> TicketNote:
    """Write an internal note, or a message to the customer that the outbox sends by SMS (or e-mail).

    ``token``: the one-time token of the form it was written from. The same form posted again (a double click,
    a resubmit) writes and sends nothing and returns the first note; without a token every call writes."""
    require(actor, "tickets.add_ticketnote", unit=ticket.unit_id)
    body = typed_text(body, field="body", limit=DESCRIPTION_MAX_CHARS)
    if not body:
        raise ValidationError({"body": _("Write something.")})
    if to_customer and len(body) > MESSAGE_MAX_CHARS:
        raise ValidationError(
            {"body": _("A message to the customer is at most %(n)d characters.") % {"n": MESSAGE_MAX_CHARS}}
        )
    token = (token or "").strip()[:64] or None
    # Under the ticket's lock: a repeat of the same form waits for the first and finds its note.
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("customer").get(pk=ticket.pk)
    if token is not None:
        first = TicketNote.objects.filter(ticket=ticket, submission_key=token).first()
        if first is not None:
            return first
    recipient, channel = "", ""
    if to_customer:
        channel, recipient = _customer_address(ticket)
        if not recipient:
            raise ValidationError(_("The customer has no mobile phone or e-mail to send a message to."))
    now = timezone.now()
    note = TicketNote.objects.create(
        ticket=ticket,
        to_customer=to_customer,
        body=body,
        recipient=recipient,
        author=actor if getattr(actor, "pk", None) else None,
        created_at=now,
        submission_key=token,
    )
    if to_customer:
        outbox_enqueue(
            channel=channel,
            recipient=recipient,
            subject=f"{ticket.number}",
            body=f"{ticket.number}: {body}",
            dedupe_key=f"ticket-note:{ticket.pk}:{token}" if token else f"ticket-note:{note.pk}",
        )
    _event(
        ticket,
        EventKind.MESSAGE if to_customer else EventKind.NOTE,
        actor,
        after={"note": note.pk, "to": recipient} if to_customer else {"note": note.pk},
        note=body[:500],
        at=now,
    )
    return note


MESSAGE_MAX_CHARS = 480


def _attachment_rules() -> tuple[int, set[str]]:
    return settings.TONGDAI_ATTACHMENT_MAX_BYTES, {t.lower() for t in settings.TONGDAI_ATTACHMENT_TYPES}


@transaction.atomic
def ticket_attach(*, actor, ticket: Ticket, upload) -> TicketAttachment:
    """Keep a file on the ticket. Only the configured types and sizes are taken; the name is the uploader's."""
    require(actor, "tickets.add_ticketattachment", unit=ticket.unit_id)
    max_bytes, allowed = _attachment_rules()
    name = (getattr(upload, "name", "") or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].strip()
    if not name:
        raise ValidationError({"file": _("The file has no name.")})
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in allowed:
        raise ValidationError(
            {"file": _("Files of type “%(ext)s” are not taken; allowed: %(allowed)s.")
                     % {"ext": extension or "?", "allowed": ", ".join(sorted(allowed))}}
        )  # fmt: skip
    limit = column_length(TicketAttachment, "name")
    if len(name) > limit:  # a long name is shortened before its extension: the type checked is the type kept
        name = f"{name[: limit - len(extension) - 1]}.{extension}"
    if upload.size == 0:
        raise ValidationError({"file": _("The file is empty.")})
    if upload.size > max_bytes:
        raise ValidationError(
            {"file": _("The file is larger than %(mb)s MB.") % {"mb": round(max_bytes / 1_048_576, 1)}}
        )
    ticket = Ticket.objects.get(pk=ticket.pk)
    now = timezone.now()
    attachment = TicketAttachment(
        ticket=ticket,
        name=name,
        content_type=attachment_content_type(name),  # from the extension, never the uploader's claim
        size=upload.size,
        uploaded_by=actor if getattr(actor, "pk", None) else None,
        uploaded_at=now,
    )
    attachment.file.save(name, upload, save=False)
    try:
        with transaction.atomic():
            attachment.save()
            _event(ticket, EventKind.ATTACHMENT, actor,
                   after={"attachment": attachment.pk, "name": attachment.name}, at=now)  # fmt: skip
    except Exception:
        # The row is not written: do not keep its file either.
        if attachment.file.name:
            attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


def customers_open_tickets(customer: Customer):
    return Ticket.objects.open().filter(customer=customer).select_related("category").order_by("-id")


# Outage incidents --------------------------------------------------------------------------------------


@transaction.atomic
def incident_open(
    *,
    actor,
    unit: Unit,
    cause: str,
    started_at: dt.datetime,
    wards: list[str] | None = None,
    estimated_restore_at: dt.datetime | None = None,
    feeder_code: str = "",
    transformer_code: str = "",
) -> Incident:
    """Enter an outage of ``unit`` (the whole unit, or some of its wards). Only a unit in service today takes
    one: calls are taken in the units of today, so an outage entered on a unit merged away would take none.
    The refusals are ``incident_open_check``'s."""
    require(actor, "tickets.add_incident", unit=unit)
    incident_open_check(unit=unit, cause=cause, started_at=started_at, estimated_restore_at=estimated_restore_at)
    return Incident.objects.create(
        unit=unit,
        cause=cause.strip(),
        started_at=started_at,
        wards=sorted({w.strip() for w in wards or [] if w.strip()}),
        estimated_restore_at=estimated_restore_at,
        feeder_code=feeder_code.strip(),
        transformer_code=transformer_code.strip(),
        created_by=actor if getattr(actor, "pk", None) else None,
    )


def incident_open_check(
    *, unit: Unit, cause: str, started_at: dt.datetime, estimated_restore_at: dt.datetime | None = None
) -> None:
    """The refusals ``incident_open`` would give this outage, field by field, writing nothing: a unit not in
    service today, no cause, an estimated restore before the start. The admin's outage form runs it when it is
    validated, so that a refusal shows on its field with what the dispatcher typed; ``incident_open`` checks
    again when the outage is entered."""
    check_unit_current(
        unit, merged=_("Unit %(unit)s was merged into %(successor)s; enter its outages in %(successor)s.")
    )
    errors = {}
    if not cause.strip():
        errors["cause"] = _("Say what happened.")
    if estimated_restore_at is not None and estimated_restore_at < started_at:
        errors["estimated_restore_at"] = _("The estimate is before the start.")
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def ticket_link_incident(*, actor, ticket: Ticket, incident: Incident) -> Ticket:
    """Link an open ticket to an outage later (the call was taken before the outage was entered): by intake's
    rules (``_linkable_incident``: an outage report, an open incident that had started by the time of the call,
    or of its last reopen, and covers the caller's address), and by staff who may change tickets of the
    incident's unit too (its restore resolves the ticket and tells its customer)."""
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)
    require(actor, "tickets.change_ticket", unit=incident.unit_id)
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("category", "customer", "unit").get(
        pk=ticket.pk
    )
    require(actor, "tickets.change_ticket", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if not ticket.is_open:
        raise ValidationError(_("The ticket is no longer open."))
    if ticket.incident_id == incident.pk:
        return ticket
    # The call's time, as at intake: a call made before the outage started is about something else.
    incident = _linkable_incident(
        category=ticket.category, customer=ticket.customer, unit=ticket.unit, incident=incident,
        at=current_call_at(ticket),
    )  # fmt: skip
    before = {"incident": ticket.incident_id}
    ticket.incident = incident
    ticket.save(update_fields=["incident"])
    _event(ticket, EventKind.LINKED, actor, before=before, after={"incident": incident.pk})
    return ticket


@transaction.atomic
def incident_restore(
    *, actor, incident: Incident, at: dt.datetime | None = None, note: str = ""
) -> dict[str, int]:
    """Power is back: resolve every open ticket of the incident, call off the crews sent to them, and tell their
    customers, set-based.

    Each customer is told once per outage episode (``_restore_messages``), by SMS to the caller's or
    customer's phone, else by e-mail: a customer who called twice gets one message naming both tickets, and
    one still holding an open call on another outage not restored is told by the restore of that one, which
    names the tickets of both. The messages' dedupe keys name the incident, so a ticket reopened and linked to
    a later outage is told again when that one is restored.

    A planned outage restored before its start is called off (the maintenance will not happen): it is closed
    at its start, so it neither shows nor takes calls when that comes, and ``called_off_at`` records when it was
    called off, so that the restore figures do not count it (``Incident.objects.happened()``). It has no calls
    to resolve (a call is linked only once an outage has started), and nobody is told the power is back: it
    never went. The answer then says ``called_off``.

    What customers and crews are told, and the tickets' events, are written in the centre's language
    (``in_centre_language``), not in that of whoever restored the outage."""
    require(actor, "tickets.change_incident", unit=incident.unit_id)
    now = timezone.now()
    at = at or now
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.restored_at is not None:
        raise ValidationError(_("This outage is already restored."))
    if at < incident.started_at and incident.started_at > now:
        incident.restored_at, incident.called_off_at = incident.started_at, now
        incident.save(update_fields=["restored_at", "called_off_at"])
        return {"resolved": 0, "notified": 0, "called_off": 1}
    if at < incident.started_at:
        raise ValidationError({"at": _("Power cannot come back before it went.")})
    incident.restored_at = at
    incident.save(update_fields=["restored_at"])
    tickets = list(
        Ticket.objects.select_for_update(of=("self",))
        .filter(incident=incident, status__in=OPEN_STATUSES)
        .select_related("policy", "customer")
        .prefetch_related("customer__phones")
    )
    actor_ref = actor if getattr(actor, "pk", None) else None
    with in_centre_language():
        restored = _("Power restored")
    # The crews sent to these calls stop: the power is back (they are told, as when a ticket is cancelled).
    called_off = _cancel_work_orders(
        WorkOrder.objects.open().filter(ticket_id__in=[t.pk for t in tickets]), note=restored
    )
    events: list[TicketEvent] = []
    # The customer (an unknown caller: the address they called from) -> the tickets of their calls, by id.
    told: dict[int | tuple[str, str], list[Ticket]] = {}
    for ticket in sorted(tickets, key=lambda t: t.pk):
        before = ticket.status
        # A call taken after the power came back (the restore time entered later) is resolved when received.
        done = max(at, ticket.created_at)
        resume_clocks(ticket, at=done)  # a ticket pending the customer: its clocks waited, as on any move
        # No sweep reads a resolved ticket: a deadline it missed is marked now (nobody told).
        mark_missed(ticket, now=done, events=events)
        if ticket.acknowledged_at is None:
            ticket.acknowledged_at = done
        ticket.status = Status.RESOLVED
        ticket.resolved_at = done
        ticket.callback_due = done + dt.timedelta(hours=ticket.policy.callback_hours)
        ticket.next_check_at = None
        after: dict = {"status": Status.RESOLVED}
        if ticket.pk in called_off:
            after["work_orders_cancelled"] = called_off[ticket.pk]
        events.append(TicketEvent(ticket=ticket, kind=EventKind.STATUS, actor=actor_ref, at=done, before={"status": before},
                                  after=after, note=note or restored))  # fmt: skip
        told.setdefault(ticket.customer_id or _customer_address(ticket), []).append(ticket)
    outbox = _restore_messages(incident, list(told.values()))
    Ticket.objects.bulk_update(
        tickets,
        ["status", "acknowledged_at", "resolved_at", "paused_at", "callback_due", "next_check_at",
         "acknowledge_due", "contact_due", "resolve_due", "first_breach_at",  # the deadlines resume_clocks moved
         "acknowledge_breached", "contact_breached", "resolve_breached"],  # and the misses marked
        batch_size=500,
    )
    TicketEvent.objects.bulk_create(events, batch_size=500)
    outbox_write(outbox)
    return {"resolved": len(tickets), "notified": len(outbox)}


def _restore_messages(incident: Incident, groups: list[list[Ticket]]) -> list[OutboxMessage]:
    """The "power is restored" messages of a restore (``incident_restore``), one per outage episode of a
    customer (an unknown caller: the mobile they called from); ``groups``: the calls it resolves, by customer.

    A customer still holding an open call linked to another outage not restored is not told (their power may
    still be off): the restore that resolves their last such call tells them, naming the tickets it resolves
    for them and those the earlier restores of the episode resolved without telling them. Their episode is
    their calls resolved by restores whose times overlap, each made before the next one was resolved. The one
    rule against two messages for an episode: only the restore that leaves the customer no call open on an
    outage tells them, with the key of its incident and its first ticket (by id), and a ticket whose own
    restore told its customer is never named again. A message goes to the address of the first named call
    that has one."""
    def who(ticket: Ticket) -> tuple[str, object]:
        if ticket.customer_id:
            return "customer", ticket.customer_id
        return "caller", ticket.caller_phone if is_mobile(ticket.caller_phone) else ""

    groups = [about for about in groups if who(about[0])[1]]  # a caller with no mobile cannot be told
    # The calls of the incident's customers and callers (a subquery: a restore may tell thousands).
    calls = Ticket.objects.filter(incident=incident)
    theirs = Q(customer_id__in=calls.filter(customer__isnull=False).values("customer_id")) | Q(
        customer__isnull=True, caller_phone__in=calls.filter(customer__isnull=True).values("caller_phone")
    )
    # Only an open call linked to an outage holds the message back: ``incident__restored_at__isnull`` alone
    # (a LEFT JOIN) would also match an open ticket linked to no outage (a bill complaint, an unlinked call).
    held = {
        who(ticket)
        for ticket in Ticket.objects.filter(theirs, status__in=OPEN_STATUSES, incident__isnull=False,
                                            incident__restored_at__isnull=True)
        .exclude(incident=incident)
        .only("customer_id", "caller_phone")
    }  # fmt: skip
    groups = [about for about in groups if who(about[0]) not in held]
    earlier: dict[tuple[str, object], list[Ticket]] = {}
    if groups:
        # The calls the earlier restores resolved (at or after their outage's restore) and no message named,
        # back to the first call of each episode: a query per step back, while an episode reaches further.
        start = min(t.created_at for about in groups for t in about)
        while True:
            found = [
                (t.resolved_at, t)
                for t in Ticket.objects.filter(theirs, status__in=[Status.RESOLVED, Status.CLOSED],
                                               incident__restored_at__isnull=False, resolved_at__gte=start)
                .exclude(incident=incident)
                .select_related("incident", "customer")
                .prefetch_related("customer__phones")
                .order_by("pk")
                if t.incident and t.incident.restored_at and t.resolved_at and t.resolved_at >= t.incident.restored_at
            ]  # fmt: skip
            keys = {f"incident:{t.incident_id}:ticket:{t.pk}:restored": t for _at, t in found}
            told = {
                (who(keys[key]), keys[key].incident_id)
                for key in OutboxMessage.objects.filter(dedupe_key__in=list(keys)).values_list("dedupe_key", flat=True)
                if key in keys
            }  # fmt: skip
            untold: dict[tuple[str, object], list[tuple[dt.datetime, Ticket]]] = {}
            for at, t in found:
                if (who(t), t.incident_id) not in told:
                    untold.setdefault(who(t), []).append((at, t))
            earlier = {}
            reach = start
            for about in groups:
                named = _episode(about, untold.get(who(about[0]), []))
                earlier[who(about[0])] = named
                reach = min([reach, *(t.created_at for t in named)])
            if reach >= start:
                break
            start = reach
    outbox = []
    for about in groups:
        named = sorted([*earlier.get(who(about[0]), []), *about], key=lambda t: t.pk)
        channel, recipient = next((a for a in map(_customer_address, named) if a[1]), ("", ""))
        if not recipient:
            continue
        numbers = ", ".join(t.number for t in named)
        with in_centre_language():
            body = _("Power is restored in your area (%(n)s). Thank you for your patience.") % {"n": numbers}
        outbox.append(OutboxMessage(channel=channel, recipient=recipient, subject=numbers, body=body,
                                    dedupe_key=f"incident:{incident.pk}:ticket:{about[0].pk}:restored"))  # fmt: skip
    return outbox


def _episode(about: list[Ticket], resolved: list[tuple[dt.datetime, Ticket]]) -> list[Ticket]:
    """Of a customer's calls resolved by earlier restores (with when), those of the episode that ``about`` (the
    calls a restore resolves now) ends: each resolved after the first call of the episode so far, which it
    extends."""
    start = min(t.created_at for t in about)
    named: list[Ticket] = []
    rest = resolved
    while True:
        joining = [t for at, t in rest if at >= start]
        if not joining:
            return named
        named += joining
        rest = [(at, t) for at, t in rest if t not in joining]
        start = min([start, *(t.created_at for t in joining)])


# Callbacks and interactions -----------------------------------------------------------------------------

CALLBACK_MAX_ATTEMPTS = 3


@transaction.atomic
def callback_record(
    *,
    actor,
    ticket: Ticket,
    reached: bool,
    fix_score: int | None = None,
    attitude_score: int | None = None,
    comment: str = "",
    at: dt.datetime | None = None,
    cycle: int | None = None,
    attempts: int | None = None,
) -> Callback:
    """Record one callback attempt of the ticket's current resolution (its cycle): the survey when the customer
    answers; after ``CALLBACK_MAX_ATTEMPTS`` unanswered calls, "unreachable". A finished callback closes the
    ticket. ``cycle``: the resolution the agent's form was opened for; when the ticket has been reopened and
    resolved again since, the answers are about an earlier fix and are refused. What the agent writes is kept
    with every attempt (the note of its event: a wrong number, a phone switched off, for the next one to call),
    and as the callback's comment when it ends; scores given without an answer are refused, not dropped.
    ``attempts``: the attempts already recorded when the agent's form was drawn; when another attempt has been
    recorded since (the same form posted twice, or a colleague's call), nothing is recorded."""
    require(actor, "tickets.add_callback", unit=ticket.unit_id)
    comment = typed_text(comment, field="comment")
    if not reached:
        unanswered = _("Scores are recorded only from a customer who answered: clear them, or record that the "
                       "customer answered.")  # fmt: skip
        scored = {
            name: [unanswered]
            for name, value in (("fix_score", fix_score), ("attitude_score", attitude_score))
            if value is not None
        }
        if scored:
            raise ValidationError(scored)
    at = at or timezone.now()
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if ticket.status != Status.RESOLVED:
        raise ValidationError(_("Only a resolved ticket gets a callback."))
    if cycle is not None and cycle > ticket.cycle:
        raise ValidationError(
            _("Ticket %(n)s has no resolution %(c)s: the survey is about its latest resolution (%(t)s).")
            % {"n": ticket.number, "c": cycle, "t": ticket.cycle}
        )
    if cycle is not None and cycle != ticket.cycle:
        raise ValidationError(
            _("Ticket %(n)s was reopened and resolved again since this survey was opened: its answers are about "
              "an earlier fix. Open the survey again and ask about the latest one.") % {"n": ticket.number}
        )  # fmt: skip
    callback, _created = Callback.objects.select_for_update().get_or_create(ticket=ticket, cycle=ticket.cycle)
    if callback.outcome:
        raise ValidationError(_("The callback is already done."))
    if attempts is not None and attempts != callback.attempts:
        raise ValidationError(
            _("Another attempt was recorded meanwhile on ticket %(n)s (attempt %(a)d): this one was not recorded. "
              "Open the survey again before calling.") % {"n": ticket.number, "a": callback.attempts}
        )  # fmt: skip
    callback.attempts += 1
    callback.agent = actor
    if reached:
        errors = {}
        for name, value in (("fix_score", fix_score), ("attitude_score", attitude_score)):
            if value is None or not 1 <= int(value) <= 5:
                errors[name] = _("A score from 1 to 5.")
        if errors or fix_score is None or attitude_score is None:
            raise ValidationError(errors)
        callback.outcome = CallbackOutcome.SURVEYED
        callback.fix_score, callback.attitude_score, callback.comment = (
            int(fix_score),
            int(attitude_score),
            comment,
        )
    elif callback.attempts >= CALLBACK_MAX_ATTEMPTS:
        callback.outcome = CallbackOutcome.UNREACHABLE
        callback.comment = comment
    if callback.outcome:
        callback.completed_at = at
    callback.save()
    _event(
        ticket,
        EventKind.CALLBACK,
        actor,
        after={"attempt": callback.attempts, "outcome": callback.outcome},
        note=comment,
        at=at,
    )
    if callback.outcome:
        ticket_change_status(actor=actor, ticket=ticket, to=Status.CLOSED, at=at)
    return callback


INTERACTION_MAX_HOURS = 24


def _too_long() -> str:
    return _("A call lasts at most %(n)d hours.") % {"n": INTERACTION_MAX_HOURS}


def interaction_log(
    *,
    actor,
    channel: str,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    disposition: str,
    unit: Unit,
    customer: Customer | None = None,
    ticket: Ticket | None = None,
    caller_phone: str = "",
    note: str = "",
    submission_key: str | None = None,
) -> Interaction:
    """Write one handled call or message: it ends after it starts, within ``INTERACTION_MAX_HOURS`` (its
    handling time makes the dashboard's average). ``submission_key``: the one-time token of the agent's form
    (unique per agent)."""
    # the call-taker logs the call whichever unit the request went to: the permission, not the unit
    require(actor, "tickets.add_interaction")
    note = typed_text(note, field="note")
    if ended_at < started_at:
        raise ValidationError({"ended_at": _("A call ends after it starts.")})
    if ended_at - started_at > dt.timedelta(hours=INTERACTION_MAX_HOURS):
        raise ValidationError({"ended_at": _too_long()})
    if disposition not in Disposition.values or channel not in Channel.values:
        raise ValidationError(_("Unknown channel or disposition."))
    phone = ""
    if caller_phone:
        try:
            phone = normalise_phone(caller_phone)
        except InvalidPhone as exc:
            raise ValidationError({"caller_phone": str(exc)}) from None
    return Interaction.objects.create(
        unit=unit, customer=customer, ticket=ticket, agent=actor, channel=channel, caller_phone=phone,
        started_at=started_at, ended_at=ended_at, disposition=disposition, note=note,
        submission_key=submission_key,
    )  # fmt: skip


# Work orders --------------------------------------------------------------------------------------------

WORK_ORDER_STEPS: dict[str, set[str]] = {
    WorkOrderStatus.ISSUED: {WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CANCELLED},
    WorkOrderStatus.ACKNOWLEDGED: {WorkOrderStatus.CONTACTED, WorkOrderStatus.CANCELLED},
    WorkOrderStatus.CONTACTED: {WorkOrderStatus.ON_SITE, WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED},
    WorkOrderStatus.ON_SITE: {WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED},
    WorkOrderStatus.DONE: set(),
    WorkOrderStatus.CANCELLED: set(),
}
_STEP_STAMP: dict[str, str] = {
    WorkOrderStatus.ACKNOWLEDGED: "acknowledged_at",
    WorkOrderStatus.CONTACTED: "contacted_at",
    WorkOrderStatus.ON_SITE: "on_site_at",
    WorkOrderStatus.DONE: "done_at",
}


@transaction.atomic
def work_order_create(*, actor, ticket: Ticket, crew=None, note: str = "") -> WorkOrder:
    """Send a crew: the ticket becomes dispatched (new, acknowledged or reopened: every status that may become
    dispatched, ``TRANSITIONS``) and the crew member (or the unit's dispatchers) is told."""
    require(actor, "tickets.add_workorder", unit=ticket.unit_id)
    note = typed_text(note, field="note")
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    require(actor, "tickets.add_workorder", unit=ticket.unit_id)  # its unit now (re-routed meanwhile?)
    if not ticket.is_open:
        raise ValidationError(_("The ticket is no longer open."))
    _refuse_crew(crew, unit_id=ticket.unit_id)
    _refuse_second_order(ticket, crew)
    order = WorkOrder.objects.create(
        ticket=ticket, unit_id=ticket.unit_id, crew=crew, issued_at=timezone.now(), note=note
    )
    if ticket.status == Status.NEW:
        ticket = ticket_change_status(actor=actor, ticket=ticket, to=Status.ACKNOWLEDGED)
    if Status.DISPATCHED in TRANSITIONS[ticket.status]:
        ticket_change_status(actor=actor, ticket=ticket, to=Status.DISPATCHED)
    people = profiles_of_user(crew.pk) if crew else staff_of_unit(ticket.unit, Role.DISPATCHER)
    body = _summary(ticket)
    outbox_write(
        staff_message(
            profile, subject=ticket.number, body=body, dedupe_key=f"workorder:{order.pk}:{profile.pk}"
        )
        for profile in people
    )  # one INSERT for everyone told
    return order


def _refuse_crew(crew, *, unit_id: int) -> None:
    """A work order goes to a member of a field crew who serves its unit (or the unit that took it over, for a
    unit merged away) and has not left (``crew=None``: to the unit's dispatchers, who decide). Raises on the
    field ``crew`` with the reason; the account is read as it is now, not as the caller loaded it."""
    if crew is None:
        return
    profile = StaffProfile.objects.filter(user_id=crew.pk).select_related("user").first()
    if profile is None or profile.role != Role.FIELD_CREW:
        raise ValidationError(
            {"crew": _("%(who)s is not a member of a field crew.") % {"who": crew.get_username()}}
        )
    if not profile.units.filter(pk__in=selectors.units_serving(unit_id)).exists():
        raise ValidationError({"crew": _("The crew member does not serve the ticket's unit.")})
    if not profile.user.is_active:
        raise ValidationError({"crew": _("The crew member's account is deactivated: send someone else.")})


def _refuse_second_order(ticket: Ticket, crew) -> None:
    """One open work order per ticket and crew member (or one left to the dispatchers): a "Send a crew" pressed
    twice, or by two dispatchers at once, sends nobody twice. The caller holds the ticket's row lock, so the
    second of two requests sees the first one's order. Other crew members may still be sent beside it."""
    open_order = WorkOrder.objects.open().filter(ticket=ticket, crew=crew).order_by("pk").first()
    if open_order is not None:
        raise ValidationError(
            {"crew": _("Work order %(o)s is already open on this ticket for %(who)s.")
             % {"o": open_order, "who": _crew_name(crew)}}
        )  # fmt: skip


def _crew_name(user) -> str:
    if user is None:
        return _("the unit's dispatchers")
    return user.get_username()


@transaction.atomic
def work_order_assign(*, actor, order: WorkOrder, crew) -> WorkOrder:
    """Give an open work order to a crew member of its unit, or move it to another one (``crew=None``: back to
    the unit's dispatchers, who decide). Sending crews is the dispatcher's right (``tickets.add_workorder``): a
    crew member does not hand their orders on. The new crew member is sent the job (the customer's code, the
    phone to call, the address), the one taken off is told they need not go; a line on the order's note and an
    event on the ticket record who moved it from whom to whom. An order the old crew member had only
    acknowledged goes back to issued, for the new one to acknowledge; one whose customer was already called
    keeps its progress. A done or cancelled order is history and is refused.

    The ticket is locked first, then the order, as every move of a work order does."""
    require(actor, "tickets.add_workorder", unit=order.unit_id)
    ticket = Ticket.objects.select_for_update().get(pk=order.ticket_id)
    order = WorkOrder.objects.select_for_update(of=("self",)).select_related("crew", "unit").get(pk=order.pk)
    if order.status in (WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED):
        raise ValidationError(
            _("Work order %(o)s is %(status)s: only an open work order goes to another crew member.")
            % {"o": f"{ticket.number}/{order.pk}", "status": WorkOrderStatus(order.status).label}
        )
    if (crew.pk if crew is not None else None) == order.crew_id:
        return order  # already theirs: a retried request changes nothing and tells nobody again
    _refuse_crew(crew, unit_id=order.unit_id)
    _refuse_second_order(ticket, crew)
    previous = order.crew
    before: dict = {"work_order": order.pk, "crew": previous.get_username() if previous else None}
    after: dict = {"work_order": order.pk, "crew": crew.get_username() if crew else None}
    if order.status == WorkOrderStatus.ACKNOWLEDGED:
        before["status"], after["status"] = order.status, WorkOrderStatus.ISSUED
        order.status, order.acknowledged_at = WorkOrderStatus.ISSUED, None
    with in_centre_language():  # the order's note and event, and what the crews are told
        line = _("Work order %(o)s: %(old)s → %(new)s.") % {
            "o": f"{ticket.number}/{order.pk}", "old": _crew_name(previous), "new": _crew_name(crew),
        }
        subject = _("%(n)s: work order given to someone else") % {"n": ticket.number}
        off = _("Work order %(o)s now goes to %(who)s: you need not go.") % {
            "o": f"{ticket.number}/{order.pk}", "who": _crew_name(crew),
        }
    order.crew = crew
    order.note = f"{order.note}\n{line}".strip()
    order.save(update_fields=["crew", "status", "acknowledged_at", "note"])
    event = _event(ticket, EventKind.ASSIGNED, actor, before=before, after=after, note=line)
    # The new crew member (or the unit's dispatchers) gets the job as a new order's crew does; the one taken
    # off gets no customer details, only that the job is no longer theirs.
    people = profiles_of_user(crew.pk) if crew else staff_of_unit(order.unit, Role.DISPATCHER)
    body = _summary(ticket)
    told = [
        staff_message(profile, subject=ticket.number, body=body,
                      dedupe_key=f"workorder:{order.pk}:to:{event.pk}:{profile.pk}")
        for profile in people
    ]  # fmt: skip
    if previous is not None:
        told += [
            staff_message(profile, subject=subject, body=off,
                          dedupe_key=f"workorder:{order.pk}:off:{event.pk}:{profile.pk}")
            for profile in profiles_of_user(previous.pk)
        ]  # fmt: skip
    outbox_write(told)  # one INSERT for everyone told
    return order


@transaction.atomic
def work_order_advance(
    *, actor, order: WorkOrder, to: str, resolution_code: str = "", note: str = ""
) -> WorkOrder:
    """The crew's next step; calling the customer counts for the ticket's 4-minute contact target, and "done"
    (with a resolution code) resolves the ticket when no other order is open. Cancelling the last open order
    of a dispatched ticket (or one in progress) takes it back to acknowledged: nobody is sent any more, and the
    unit's dispatchers are told; its crew member is told when someone else calls the order off. When another
    crew has already done the job in the ticket's current cycle, cancelling the last open order resolves the
    ticket with that job's resolution instead, as if the crews had finished in the other order: whichever
    crew acts last, a fixed fault ends resolved.

    The ticket is locked first, then the order (the order every path takes, the ticket's cancellation and
    re-routing included): two crews finishing the last two orders at once take turns, and the second one sees
    the first one's order done and resolves the ticket."""
    require(actor, "tickets.change_workorder", unit=order.unit_id)
    note = typed_text(note, field="note")
    ticket = Ticket.objects.select_for_update().get(pk=order.ticket_id)
    order = WorkOrder.objects.select_for_update().get(pk=order.pk)
    if to not in WORK_ORDER_STEPS.get(order.status, set()):
        raise ValidationError(
            _("A work order that is %(old)s cannot become %(new)s.")
            % {
                "old": WorkOrderStatus(order.status).label,
                "new": WorkOrderStatus(to).label if to in WorkOrderStatus.values else to,
            }
        )
    now = timezone.now()
    if to == WorkOrderStatus.DONE:
        if resolution_code not in ResolutionCode.values:
            raise ValidationError({"resolution_code": _("Choose how the job ended.")})
        order.resolution_code = resolution_code
    if to == WorkOrderStatus.CANCELLED:
        if not note.strip():
            raise ValidationError({"note": _("Say why.")})
        _work_order_cancel(order, note=note)
        done = _done_in_this_cycle(ticket)
        if done is not None:
            _resolve_by_crew(actor, ticket=ticket, resolution_code=done.resolution_code)
        elif (earlier := _back_to_acknowledged(ticket)) is not None:
            with in_centre_language():
                why = _("No crew is sent any more: %(why)s") % {"why": note.strip()}
            _event(ticket, EventKind.STATUS, actor, before={"status": earlier},
                   after={"status": Status.ACKNOWLEDGED, "work_orders_cancelled": [order.pk]}, note=why)  # fmt: skip
        _tell_called_off(ticket, order, actor=actor, note=note.strip(), job_done=done is not None)
        return order
    if to in _STEP_STAMP:
        setattr(order, _STEP_STAMP[to], now)
    if to == WorkOrderStatus.DONE and order.contacted_at is None:
        order.contacted_at = now
    order.status = to
    if note.strip():
        order.note = f"{order.note}\n{note.strip()}".strip()
    order.save()
    if to == WorkOrderStatus.CONTACTED and ticket.contacted_at is None and ticket.is_open:
        ticket_record_contact(actor=actor, ticket=ticket, at=now)
    if (
        to == WorkOrderStatus.DONE
        and ticket.is_open
        and not WorkOrder.objects.open().filter(ticket=ticket).exists()
    ):
        _resolve_by_crew(actor, ticket=ticket, resolution_code=resolution_code)
    return order


def _done_in_this_cycle(ticket: Ticket) -> WorkOrder | None:
    """The job last done on a locked, open ticket in its current cycle (an order issued since its last reopen,
    else since it was taken), when no order of the ticket is open any more; None otherwise. An earlier cycle's
    job fixed the fault the customer has since said is back: it does not count."""
    if not ticket.is_open or WorkOrder.objects.open().filter(ticket_id=ticket.pk).exists():
        return None
    began = current_call_at(ticket)
    return (
        WorkOrder.objects.filter(ticket_id=ticket.pk, status=WorkOrderStatus.DONE, issued_at__gte=began)
        .order_by("-done_at", "-pk")
        .first()
    )


def _resolve_by_crew(actor, *, ticket: Ticket, resolution_code: str) -> None:
    """The crews' work on a locked, open ticket is over with a job done: the ticket is resolved, its note saying
    how the job ended (the crew's last order done, or the last other order called off after a job done)."""
    if ticket.status == Status.NEW:
        ticket = ticket_change_status(actor=actor, ticket=ticket, to=Status.ACKNOWLEDGED)
    with in_centre_language():
        how = str(ResolutionCode(resolution_code).label)
    ticket_change_status(actor=actor, ticket=ticket, to=Status.RESOLVED, note=how)


@in_centre_language()
def _tell_called_off(ticket: Ticket, order: WorkOrder, *, actor, note: str, job_done: bool = False) -> None:
    """An order called off by hand (the field crew's page lists every open order of their units, and the
    dispatchers may call one off too): its crew member is told they need not go, unless they called it off
    themselves; and when it was the ticket's last open order, the unit's dispatchers are told, whoever called it
    off, to send a crew again (with another crew still sent, or another crew's job done, ``job_done``: the
    ticket is resolved, there is nothing to tell them). The one who called it off is not told of it. One
    INSERT."""
    actor_id = getattr(actor, "pk", None)
    subject = _("%(n)s: work order cancelled") % {"n": ticket.number}
    told = []
    if order.crew_id is not None and order.crew_id != actor_id:
        off = _("Work order %(o)s was called off: %(why)s. You need not go.") % {
            "o": f"{ticket.number}/{order.pk}", "why": note,
        }  # fmt: skip
        told += [
            staff_message(profile, subject=subject, body=off, dedupe_key=f"workorder:{order.pk}:off:{profile.pk}")
            for profile in profiles_of_user(order.crew_id)
        ]
    if not job_done and not WorkOrder.objects.open().filter(ticket_id=ticket.pk).exists():
        who = actor.get_username() if actor_id is not None else _("system")
        body = _("Work order %(o)s was called off by %(who)s: %(why)s. No crew is sent any more.") % {
            "o": f"{ticket.number}/{order.pk}", "who": who, "why": note,
        }  # fmt: skip
        told += [
            staff_message(profile, subject=subject, body=body,
                          dedupe_key=f"workorder:{order.pk}:called-off:{profile.pk}")
            for profile in staff_of_unit(ticket.unit, Role.DISPATCHER)
            if profile.user_id != actor_id
        ]  # fmt: skip
    if told:
        outbox_write(told)


def _back_to_acknowledged(ticket: Ticket) -> str | None:
    """A locked ticket that was dispatched (or in progress) and has no open work order left goes back to
    acknowledged, so that the unit's dispatcher sees it needs a crew; returns the status it had (None: it
    stays as it is). The caller records the move in its event."""
    if ticket.status not in (Status.DISPATCHED, Status.IN_PROGRESS):
        return None
    if WorkOrder.objects.open().filter(ticket_id=ticket.pk).exists():
        return None
    earlier = ticket.status
    ticket.status = Status.ACKNOWLEDGED
    ticket.save(update_fields=["status"])
    return earlier


def _work_order_cancel(order: WorkOrder, *, note: str) -> None:
    """Cancel a locked, open work order with the reason appended to its note (the one cancel of every path: the
    crew's own move, and the ticket's cancellation, duplicate marking or re-routing, which need no right to
    change work orders of their own)."""
    order.status = WorkOrderStatus.CANCELLED
    order.note = f"{order.note}\n{note.strip()}".strip()
    order.save(update_fields=["status", "note"])


def _cancel_open_work_orders(ticket: Ticket, *, note: str, keep: list[int] | None = None) -> list[int]:
    """Cancel the ticket's open work orders but for the ids in ``keep``, and tell whom each order was sent to
    (its crew member, or its unit's dispatchers) that it is off and why; returns their ids. Every open order,
    whatever unit it names: one kept on a re-route to the unit that took the order's unit over still names the
    unit merged away, and is the ticket's unit's work as much as its own orders are."""
    orders = WorkOrder.objects.open().filter(ticket_id=ticket.pk)
    if keep:
        orders = orders.exclude(pk__in=keep)
    return _cancel_work_orders(orders, note=note).get(ticket.pk, [])


def _work_orders_kept_by(ticket: Ticket, *, unit: Unit) -> list[int]:
    """The ids of the locked ticket's open work orders that ``unit`` already works, so that re-routing the
    ticket to it keeps them: the order's unit is one ``unit`` took over (``selectors.units_serving``), and the
    order's crew member, when it names one, serves ``unit`` (``selectors.serves``). An order left to the
    dispatchers is then theirs already: ``unit``'s dispatchers are among those of the order's unit."""
    kept = []
    for pk, unit_id, crew_id in WorkOrder.objects.open().filter(ticket_id=ticket.pk).values_list(
        "pk", "unit_id", "crew_id"
    ):
        if unit.pk not in selectors.units_serving(unit_id):
            continue
        if crew_id is not None and not selectors.serves(crew_id, unit.pk):
            continue
        kept.append(pk)
    return kept


@in_centre_language()
def _cancel_work_orders(orders, *, note: str) -> dict[int, list[int]]:
    """Cancel the open work orders of ``orders`` (their tickets locked by the caller), and tell whom each order
    was sent to (its crew member, or its unit's dispatchers) that it is off and why, in one INSERT; returns
    the ids cancelled by ticket."""
    cancelled: dict[int, list[int]] = {}
    told = []
    for order in orders.select_for_update(of=("self",)).select_related("unit", "ticket").order_by("pk"):
        _work_order_cancel(order, note=note)
        cancelled.setdefault(order.ticket_id, []).append(order.pk)
        people = profiles_of_user(order.crew_id) if order.crew_id else staff_of_unit(order.unit, Role.DISPATCHER)
        subject = _("%(n)s: work order cancelled") % {"n": order.ticket.number}
        told += [
            staff_message(profile, subject=subject, body=note, dedupe_key=f"workorder:{order.pk}:off:{profile.pk}")
            for profile in people
        ]
    if told:
        outbox_write(told)
    return cancelled


# The agent's moves from the admin and the API (callbacks, interactions) ----------------------------------


def ticket_refuse_close_without_callback(ticket: Ticket) -> None:
    """A resolved ticket is closed by its callback (the survey, or unreachable after the last attempt): closing
    it before then would lose the customer's say on the fix. Raises with the reason."""
    if ticket.status != Status.RESOLVED:
        return
    if not Callback.objects.filter(ticket_id=ticket.pk, cycle=ticket.cycle).exclude(outcome="").exists():
        raise ValidationError(
            _("Ticket %(n)s cannot be closed before its callback is recorded (the survey, or unreachable "
              "after %(max)d attempts).") % {"n": ticket.number, "max": CALLBACK_MAX_ATTEMPTS}
        )  # fmt: skip


def interaction_unit(*, actor, customer: Customer | None = None, ticket: Ticket | None = None) -> Unit | None:
    """The unit an interaction counts for: its ticket's, else its customer's, else the agent's only unit, each
    after merges (``current_unit``: a call logged today counts for the unit serving today; old calls keep
    theirs). None when it cannot be told (the agent serves several units and named no one)."""
    if ticket is not None:
        return current_unit(ticket.unit)
    if customer is not None:
        return current_unit(customer.unit)
    profile = StaffProfile.objects.filter(user=actor).first() if getattr(actor, "pk", None) else None
    units = list(profile.units.all()[:2]) if profile is not None else []
    return current_unit(units[0]) if len(units) == 1 else None


def interaction_record(
    *,
    actor,
    channel: str,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    disposition: str,
    unit: Unit | None = None,
    customer: Customer | None = None,
    ticket: Ticket | None = None,
    caller_phone: str = "",
    note: str = "",
    token: str | None = None,
) -> Interaction:
    """Log a call or message an agent handled (the admin's form, the API, intake from the card): the unit
    follows the ticket, else the customer, else it is the one given or the agent's only unit; a unit given that
    is not the ticket's (or the customer's) is refused, and so are a ticket and a customer that do not belong
    together, a phone that is not a Vietnamese number, and a call that starts or ends in the future (it is logged
    when it is over). The refusals are ``interaction_check``'s. ``token``: the one-time token of the agent's
    form; the same form posted again logs nothing and returns the call it logged (without a token every call
    logs one)."""
    token = (token or "").strip()[:64] or None
    if token is not None and getattr(actor, "pk", None):
        first = Interaction.objects.filter(agent=actor, submission_key=token).first()
        if first is not None:
            return first
    unit, customer = interaction_check(
        actor=actor, started_at=started_at, ended_at=ended_at, unit=unit, customer=customer, ticket=ticket,
        caller_phone=caller_phone,
    )  # fmt: skip
    try:
        with transaction.atomic():
            return interaction_log(
                actor=actor, channel=channel, started_at=started_at, ended_at=ended_at, disposition=disposition,
                unit=unit, customer=customer, ticket=ticket, caller_phone=caller_phone, note=note,
                submission_key=token if getattr(actor, "pk", None) else None,
            )  # fmt: skip
    except IntegrityError:
        # The same form posted twice at once: the database's unique key let the first one through.
        first = Interaction.objects.filter(agent=actor, submission_key=token).first() if token else None
        if first is None:
            raise
        return first


# The first day a call may have started on: the system's data begins later; an earlier start is a clock reset.
EARLIEST_CALL_DAY = dt.date(2000, 1, 1)


def interaction_check(
    *,
    actor,
    started_at: dt.datetime,
    ended_at: dt.datetime,
    unit: Unit | None = None,
    customer: Customer | None = None,
    ticket: Ticket | None = None,
    caller_phone: str = "",
) -> tuple[Unit, Customer | None]:
    """Every refusal of a call ``interaction_record`` would log, at once and field by field, writing nothing: the
    unit it counts for and its customer (the ticket's when only the ticket is named). The admin's call form runs
    it when it is validated, so that a refusal shows on its field with what the agent typed."""
    require(actor, "tickets.add_interaction")
    errors = {}
    # Another customer's ticket, or an unknown caller's ticket of another unit (the call, filed under the ticket's
    # unit, would show the customer to the staff of a unit that does not serve them).
    if ticket is not None and customer is not None and (
        ticket.customer_id not in (None, customer.pk)
        or (ticket.customer_id is None and current_unit(ticket.unit).pk != current_unit(customer.unit).pk)
    ):
        errors["ticket"] = _("The ticket is not this customer's.")
    if ticket is not None and customer is None:
        customer = ticket.customer
    if ticket is not None or customer is not None:
        follows = interaction_unit(actor=actor, customer=customer, ticket=ticket)
        if unit is not None and follows is not None and current_unit(unit).pk != current_unit(follows).pk:
            errors["unit"] = (
                _("The call counts for %(code)s, the unit of its ticket or customer; leave the unit empty.")
                % {"code": follows.code}
            )
        unit = follows
    else:  # a unit named that was merged away: its successor takes the call today (as ``interaction_unit``)
        unit = current_unit(unit) if unit is not None else interaction_unit(actor=actor)
    if unit is None:
        errors.setdefault("unit", _("Choose the unit the call was about."))
    now = timezone.now()
    if started_at > now + CLOCK_SKEW:
        errors["started_at"] = _("A call cannot start in the future.")
    elif started_at < timezone.make_aware(dt.datetime.combine(EARLIEST_CALL_DAY, dt.time())):
        # a softphone whose clock was reset (to 1970) would file its calls in the reports of a year long past
        errors["started_at"] = _(
            "A call cannot start before %(day)s: check the clock of the system that logged it."
        ) % {"day": EARLIEST_CALL_DAY.strftime("%d/%m/%Y")}
    elif ended_at - started_at > dt.timedelta(hours=INTERACTION_MAX_HOURS):
        errors["ended_at"] = _too_long()
    elif ended_at > now + CLOCK_SKEW:
        errors["ended_at"] = _("A call cannot end in the future: log it when it is over.")
    if caller_phone:
        try:
            normalise_phone(caller_phone)
        except InvalidPhone as exc:
            errors["caller_phone"] = str(exc)
    if errors or unit is None:
        raise ValidationError(errors)
    return unit, customer


def ticket_assign_to_taker(*, actor, ticket: Ticket) -> bool:
    """An agent who takes a ticket in the admin keeps it, when their profile says so (``assign_new_tickets``,
    on by default) and they serve its unit; others leave it to the unit's queue. True when assigned."""
    profile = StaffProfile.objects.filter(user=actor).first() if getattr(actor, "pk", None) else None
    if profile is None or profile.role != Role.AGENT or not profile.assign_new_tickets:
        return False
    if not selectors.serves(actor, ticket.unit_id):
        return False  # routed to a unit the agent does not serve: its own staff take it
    ticket_assign(actor=actor, ticket=ticket, assignee=actor)
    return True
