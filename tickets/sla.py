"""The SLA sweep: marks breached deadlines and escalates, exactly once per level.

It reads only tickets whose ``next_check_at`` has come (a partial index holds just those), locks each batch
with ``SELECT … FOR UPDATE SKIP LOCKED`` so two clusters sweeping at once take different tickets, and
handles each batch in one transaction: a sweep that dies halfway leaves the batch as it was, for the next
sweep. A unique constraint on (ticket, level) of escalation events is the database's own guarantee.

Levels: 1 at the first breach (the assignee and the unit's dispatchers), 2 after ``escalate_level2_minutes``
(the supervisors of the unit's company), 3 after ``escalate_level3_minutes`` (the managers of its
corporation). The ladder climbs only while a breached deadline is still to be met
(``tickets.services.breach_outstanding``): a call made late stops it at the level it reached, and a deadline
missed after that climbs from its own miss (``_ladder_start``). Each escalation is an event and an outbox message per person, which names the ticket, its
unit and the deadlines passed, never the customer (``tickets.services.escalation_summary``).

A reopened ticket starts a new cycle: fresh deadlines, no breach, level 0 (``tickets.services``). Its
escalations climb the ladder again; their events carry the cycle (the database keeps one escalation per
ticket, cycle and level), and their messages' dedupe keys name it.

The callback sweep (``callback_sweep``) watches the centre's own deadline after a resolution: a resolved
ticket whose callback is not finished (the survey, or unreachable after the last attempt) by ``callback_due``
is marked overdue once per resolution (``callback_overdue_at``, an event), and the supervisors of its unit's
company are told, so that someone calls the customer. The ticket stays resolved: only its callback closes it.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import db
from crm.models import OutboxMessage, Role, StaffProfile
from crm.outbox import in_centre_language, outbox_write, staff_message
from crm.scoping import unit_cached
from tickets.models import EventKind, Status, Ticket, TicketEvent
from tickets.selectors import current_unit, serves, units_serving
from tickets.services import (
    breach_outstanding,
    callback_overdue_summary,
    escalation_summary,
    mark_missed,
    next_check,
    profiles_of_user,
)

BATCH = 200


class _Recipients:
    """Who hears of each level, looked up once per unit and level within a sweep: working staff only (a member
    of staff whose account is deactivated has left, and is sent nothing). At level 1 the assignee too, while
    they serve the ticket's unit. Levels 2 and 3 go to the company and corporation of the unit serving the
    ticket's unit today (``tickets.selectors.current_unit``): a merged-away unit's tickets are the successor's."""

    def __init__(self):
        self._cache: dict[tuple[int, int], list[StaffProfile]] = {}
        self._serving: dict[tuple[int, int], bool] = {}

    def __call__(self, ticket: Ticket, level: int) -> list[StaffProfile]:
        key = (ticket.unit_id, level)
        if key not in self._cache:
            working = StaffProfile.objects.filter(user__is_active=True)
            if level == 1:  # a unit merged away: the dispatchers of the unit that took it over
                people = working.filter(role=Role.DISPATCHER, units__in=units_serving(ticket.unit_id))
            else:  # the company (corporation) of the unit serving the ticket's unit today, merges followed
                serving = current_unit(unit_cached(ticket.unit_id))
                if level == 2:
                    people = working.filter(role=Role.SUPERVISOR, units__company_id=serving.company_id)
                else:
                    people = working.filter(
                        role=Role.MANAGER, units__company__corporation_id=serving.company.corporation_id
                    )
            self._cache[key] = list(people.select_related("user").distinct())
        told = list(self._cache[key])
        if level == 1 and ticket.assignee_id and self._serves(ticket.assignee_id, ticket.unit_id):
            told += profiles_of_user(ticket.assignee_id)
        return told

    def _serves(self, user_id: int, unit_id: int) -> bool:
        """Whether the assignee still works the ticket's unit (``selectors.serves``): a member of staff moved to
        other units keeps the tickets they held, but is no longer told of them (the unit's dispatchers are,
        and give them to someone else)."""
        key = (user_id, unit_id)
        if key not in self._serving:
            self._serving[key] = serves(user_id, unit_id)
        return self._serving[key]


def _process(ticket: Ticket, now: dt.datetime, recipients: _Recipients, events: list, messages: list) -> int:
    """Mark what is breached and raise the level as far as the clock says (rows are collected, not written);
    returns the escalations made."""
    if ticket.status == Status.PENDING_CUSTOMER:  # every clock waits with the customer
        ticket.next_check_at = None
        return 0
    climbing = ticket.first_breach_at is not None and breach_outstanding(ticket)  # before this run's breaches
    missed = mark_missed(ticket, now=now, events=events)
    if missed:
        ticket.first_breach_at = _ladder_start(ticket, min(missed), climbing=climbing)
    level = ticket.escalation_level
    target_level = level
    # The ladder climbs while a breached deadline is still to be met: a late call made, it stops where it is.
    if ticket.first_breach_at is not None and breach_outstanding(ticket):
        target_level = max(level, 1)
        policy = ticket.policy
        if now >= ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level2_minutes):
            target_level = max(target_level, 2)
        if now >= ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level3_minutes):
            target_level = 3
    body = None
    cycle = ticket.cycle
    for new_level in range(level + 1, target_level + 1):
        events.append(
            TicketEvent(
                ticket=ticket, kind=EventKind.ESCALATED, at=now, after={"level": new_level}, level=new_level,
                cycle=cycle,
            )
        )
        # A reopened ticket climbs the ladder again: its messages are told apart by the cycle.
        dedupe = f"ticket:{ticket.pk}:escalation:{new_level}" if cycle == 0 else (
            f"ticket:{ticket.pk}:cycle:{cycle}:escalation:{new_level}"
        )
        body = body or escalation_summary(ticket)
        with in_centre_language():
            subject = _("Escalation %(level)d: %(number)s") % {"level": new_level, "number": ticket.number}
        for profile in recipients(ticket, new_level):
            messages.append(
                staff_message(profile, subject=subject, body=body, dedupe_key=f"{dedupe}:{profile.pk}")
            )
    ticket.escalation_level = target_level
    ticket.next_check_at = next_check(ticket)
    return target_level - level


def _ladder_start(ticket: Ticket, missed_at: dt.datetime, *, climbing: bool) -> dt.datetime:
    """Where the escalation ladder counts from once a deadline missed at ``missed_at`` is marked. While an
    earlier breach is still to be met the ladder goes on from the first breach; once it had stopped (the late
    call or acknowledgement made), a new miss climbs in its own time, from that miss, not from the old one.
    A later start already set is kept: ``resume_clocks`` sets it for a deadline missed just before a pause,
    counted in running time (the miss plus the pause)."""
    if ticket.first_breach_at is None:
        return missed_at
    if climbing:
        return min(ticket.first_breach_at, missed_at)
    return max(ticket.first_breach_at, missed_at)


def sla_sweep(*, now: dt.datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Handle every ticket whose next check has come. Idempotent; safe with several sweeps at once.

    Each batch is one transaction: lock the due rows (skipping rows another sweep holds), work out breaches
    and levels in memory, then write the tickets, events and outbox messages in a few bulk statements.
    """
    now = now or timezone.now()
    handled = escalations = 0
    recipients = _Recipients()
    while True:
        with transaction.atomic():
            due = list(
                Ticket.objects.filter(next_check_at__lte=now)
                .select_related("policy", "unit__company", "category")
                .order_by("next_check_at", "id")
                .select_for_update(skip_locked=True, of=("self",))[:batch]
            )
            events: list[TicketEvent] = []
            messages: list[OutboxMessage] = []
            for ticket in due:
                escalations += _process(ticket, now, recipients, events, messages)
            if due:
                _write_clocks(due)
                TicketEvent.objects.bulk_create(events)
                outbox_write(messages)
            handled += len(due)
        if len(due) < batch:
            return {"handled": handled, "escalations": escalations}


def _write_clocks(tickets: list[Ticket]) -> None:
    """Write the swept clocks back. PostgreSQL: one UPDATE … FROM (VALUES …) (Django's bulk_update builds a
    CASE per row and field, which costs more than the sweep itself); elsewhere bulk_update."""
    if not db.is_postgres():
        Ticket.objects.bulk_update(tickets, UPDATED_FIELDS)
        return
    row = (
        "(%s::bigint, %s::boolean, %s::boolean, %s::boolean, %s::timestamptz, %s::smallint, %s::timestamptz)"
    )
    params = []
    for t in tickets:
        params += [t.pk, t.acknowledge_breached, t.contact_breached, t.resolve_breached, t.first_breach_at,
                   t.escalation_level, t.next_check_at]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tickets_ticket AS t SET acknowledge_breached = v.ab, contact_breached = v.cb, "
            "resolve_breached = v.rb, first_breach_at = v.fb, escalation_level = v.lvl, next_check_at = v.nc "
            f"FROM (VALUES {', '.join([row] * len(tickets))}) AS v(id, ab, cb, rb, fb, lvl, nc) WHERE t.id = v.id",
            params,
        )


UPDATED_FIELDS = [
    "acknowledge_breached", "contact_breached", "resolve_breached", "first_breach_at", "escalation_level",
    "next_check_at",
]  # fmt: skip


def callback_sweep(*, now: dt.datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Mark each resolved ticket whose callback deadline has passed as overdue, once per resolution, and tell
    the supervisors of its unit's company. Idempotent; safe with several sweeps at once (a partial index holds
    just the resolved tickets not yet found overdue, locked with ``SKIP LOCKED``)."""
    now = now or timezone.now()
    overdue = 0
    recipients = _Recipients()
    while True:
        with transaction.atomic():
            due = list(
                Ticket.objects.filter(
                    status=Status.RESOLVED, callback_overdue_at__isnull=True, callback_due__lte=now
                )
                .select_related("unit__company", "category")
                .order_by("callback_due", "id")
                .select_for_update(skip_locked=True, of=("self",))[:batch]
            )
            events: list[TicketEvent] = []
            messages: list[OutboxMessage] = []
            for ticket in due:
                _callback_overdue(ticket, now, recipients, events, messages)
            if due:
                Ticket.objects.filter(pk__in=[t.pk for t in due]).update(callback_overdue_at=now)
                TicketEvent.objects.bulk_create(events)
                outbox_write(messages)
            overdue += len(due)
        if len(due) < batch:
            return {"overdue": overdue}


def _callback_overdue(ticket: Ticket, now: dt.datetime, recipients: _Recipients, events: list, messages: list) -> None:
    """The event and the supervisors' messages of one callback found overdue (rows collected, not written)."""
    due = ticket.callback_due
    events.append(
        TicketEvent(
            ticket=ticket, kind=EventKind.CALLBACK_OVERDUE, at=now, cycle=ticket.cycle,
            after={"callback_due": due.isoformat() if due else None},
        )
    )  # fmt: skip
    with in_centre_language():
        subject = _("Callback overdue: %(number)s") % {"number": ticket.number}
    body = callback_overdue_summary(ticket)
    for profile in recipients(ticket, 2):
        messages.append(
            staff_message(
                profile, subject=subject, body=body,
                dedupe_key=f"ticket:{ticket.pk}:cycle:{ticket.cycle}:callback-overdue:{profile.pk}",
            )
        )  # fmt: skip
