"""The SLA sweep: marks breached deadlines and escalates, exactly once per level.

It reads only tickets whose ``next_check_at`` has come (a partial index holds just those), locks each batch
with ``SELECT … FOR UPDATE SKIP LOCKED`` so two clusters sweeping at once take different tickets, and
handles each batch in one transaction: a sweep that dies halfway leaves the batch as it was, for the next
sweep. A unique constraint on (ticket, level) of escalation events is the database's own guarantee.

Levels: 1 at the first breach (the assignee and the unit's dispatchers), 2 after ``escalate_level2_minutes``
(the supervisors of the unit's company), 3 after ``escalate_level3_minutes`` (the managers of its
corporation). Each escalation is an event and an outbox message per person.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Role, StaffProfile
from tickets.models import EventKind, Ticket
from tickets.services import _event, _notify, _summary, next_check

BATCH = 200


def _recipients(ticket: Ticket, level: int):
    if level == 1:
        people = list(
            StaffProfile.objects.filter(role=Role.DISPATCHER, units=ticket.unit_id).select_related("user")
        )
        if ticket.assignee_id:
            people += list(StaffProfile.objects.filter(user_id=ticket.assignee_id).select_related("user"))
        return people
    if level == 2:
        return (
            StaffProfile.objects.filter(role=Role.SUPERVISOR, units__company_id=ticket.unit.company_id)
            .select_related("user")
            .distinct()
        )
    return (
        StaffProfile.objects.filter(
            role=Role.MANAGER, units__company__corporation_id=ticket.unit.company.corporation_id
        )
        .select_related("user")
        .distinct()
    )


def _process(ticket: Ticket, now: dt.datetime) -> int:
    """Mark what is breached and raise the level as far as the clock says; returns escalations made."""
    breached = []
    for target, done, flag in (
        ("acknowledge_due", "acknowledged_at", "acknowledge_breached"),
        ("contact_due", "contacted_at", "contact_breached"),
        ("resolve_due", "resolved_at", "resolve_breached"),
    ):
        due = getattr(ticket, target)
        if getattr(ticket, done) is None and not getattr(ticket, flag) and due <= now:
            setattr(ticket, flag, True)
            breached.append((target, due))
    for target, due in breached:
        if ticket.first_breach_at is None or due < ticket.first_breach_at:
            ticket.first_breach_at = due
        _event(ticket, EventKind.BREACH, None, after={"deadline": target, "due": due.isoformat()}, at=now)
    level = ticket.escalation_level
    target_level = level
    if ticket.first_breach_at is not None:
        target_level = 1
        policy = ticket.policy
        if now >= ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level2_minutes):
            target_level = 2
        if now >= ticket.first_breach_at + dt.timedelta(minutes=policy.escalate_level3_minutes):
            target_level = 3
    made = 0
    body = None
    for new_level in range(level + 1, max(target_level, level) + 1):
        _event(ticket, EventKind.ESCALATED, None, after={"level": new_level}, level=new_level, at=now)
        body = body or _summary(ticket)
        for profile in _recipients(ticket, new_level):
            _notify(
                profile,
                subject=_("Escalation %(level)d: %(number)s") % {"level": new_level, "number": ticket.number},
                body=body,
                dedupe_key=f"ticket:{ticket.pk}:escalation:{new_level}:{profile.pk}",
            )
        made += 1
    ticket.escalation_level = max(target_level, level)
    ticket.next_check_at = next_check(ticket)
    ticket.save(
        update_fields=[
            "acknowledge_breached", "contact_breached", "resolve_breached", "first_breach_at", "escalation_level",
            "next_check_at",
        ]
    )  # fmt: skip
    return made


def sla_sweep(*, now: dt.datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Handle every ticket whose next check has come. Idempotent; safe with several sweeps at once."""
    now = now or timezone.now()
    handled = escalations = 0
    while True:
        with transaction.atomic():
            due = list(
                Ticket.objects.filter(next_check_at__lte=now)
                .select_related("policy", "unit__company")
                .order_by("next_check_at", "id")
                .select_for_update(skip_locked=True, of=("self",))[:batch]
            )
            for ticket in due:
                escalations += _process(ticket, now)
            handled += len(due)
        if len(due) < batch:
            return {"handled": handled, "escalations": escalations}
