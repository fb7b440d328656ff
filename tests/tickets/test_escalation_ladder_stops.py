"""The escalation ladder climbs only while a breached deadline is still to be met (audit sla 3), and an
escalation never calls a deadline met late overdue."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from crm.models import OutboxMessage
from tickets.models import EventKind, Status
from tickets.services import ticket_change_status, ticket_open, ticket_record_contact
from tickets.sla import sla_sweep

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TAKEN = dt.datetime(2026, 12, 28, 9, tzinfo=HCM)  # a Monday
MIN = dt.timedelta(minutes=1)


def new_connection(catalogue, make_customer):
    """A new-connection request (contact in 4 minutes, resolve in 5 working days), taken at ``TAKEN``."""
    return ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="Cấp điện",
                       customer=make_customer(), at=TAKEN).ticket  # fmt: skip


def test_a_contact_made_a_minute_late_does_not_climb_to_the_corporations_managers(
    catalogue, make_customer, dispatcher
):
    # given a request acknowledged at once, the unit calling the customer 2 minutes late
    ticket = new_connection(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=TAKEN + MIN)
    assert sla_sweep(now=TAKEN + 5 * MIN)["escalations"] == 1  # contact breached: level 1, the dispatchers
    ticket = ticket_record_contact(actor=None, ticket=ticket, at=TAKEN + 6 * MIN)
    # then nothing is left for the sweep but the resolution, a week away
    assert ticket.next_check_at == ticket.resolve_due
    # when the sweep runs three hours later
    assert sla_sweep(now=TAKEN + dt.timedelta(hours=3)) == {"handled": 0, "escalations": 0}
    # then the ladder has stopped at level 1: no supervisor nor manager was told
    ticket.refresh_from_db()
    assert (ticket.escalation_level, ticket.contact_breached) == (1, True)
    assert list(ticket.events.filter(kind=EventKind.ESCALATED).values_list("level", flat=True)) == [1]
    assert not OutboxMessage.objects.filter(dedupe_key__contains=":escalation:2:").exists()


def test_the_ladder_goes_on_for_a_deadline_still_missed_and_names_only_that_one(
    catalogue, make_customer, dispatcher, org, make_staff
):
    from crm.models import Role

    make_staff(Role.SUPERVISOR, [org["home"]])
    # given a request nobody acknowledged, whose customer the unit called late
    ticket = new_connection(catalogue, make_customer)
    assert sla_sweep(now=TAKEN + 5 * MIN)["escalations"] == 1  # acknowledge and contact breached: level 1
    ticket_record_contact(actor=None, ticket=ticket, at=TAKEN + 6 * MIN)
    # when the level 2 time comes (30 minutes after the first breach), the acknowledgement still missing
    assert sla_sweep(now=TAKEN + 33 * MIN)["escalations"] == 1
    # then the supervisors are told of the acknowledgement only: the call was made
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2
    bodies = set(OutboxMessage.objects.filter(dedupe_key__contains=":escalation:2:").values_list("body", flat=True))
    assert len(bodies) == 1
    assert bodies.pop().endswith("overdue: acknowledge")


def test_a_resolve_deadline_missed_days_after_a_contact_made_late_does_not_leap_to_the_managers(
    catalogue, make_customer, dispatcher, org, make_staff
):
    from crm.models import Role

    make_staff(Role.SUPERVISOR, [org["home"]])
    ticket = new_connection(catalogue, make_customer)  # contact in 4 minutes, resolve in 5 working days
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=TAKEN + MIN)
    assert sla_sweep(now=TAKEN + 5 * MIN)["escalations"] == 1  # the call is 1 minute late: the dispatchers
    ticket = ticket_record_contact(actor=None, ticket=ticket, at=TAKEN + 6 * MIN)  # made: the ladder stops at 1
    # Days later the resolution is missed: a new breach, one minute old when the sweep comes.
    missed = ticket.resolve_due
    assert sla_sweep(now=missed + 1 * MIN)["escalations"] == 0
    ticket.refresh_from_db()
    # A resolution one minute late reaches nobody above the level reached (supervisors after 30 minutes of it,
    # the corporation's managers after 120), as a ticket whose only miss is its resolution: not the managers at once.
    assert (ticket.escalation_level, ticket.resolve_breached) == (1, True)
    assert ticket.first_breach_at == missed  # the ladder counts from the new miss, not from the old call
    assert not ticket.events.filter(kind=EventKind.ESCALATED, level__gt=1).exists()
    # then it climbs in its own time: the supervisors 30 minutes after the miss, the managers after 120
    assert ticket.next_check_at == missed + 30 * MIN
    assert sla_sweep(now=missed + 29 * MIN)["escalations"] == 0
    assert sla_sweep(now=missed + 30 * MIN)["escalations"] == 1
    assert sla_sweep(now=missed + 119 * MIN)["escalations"] == 0
    assert sla_sweep(now=missed + 120 * MIN)["escalations"] == 1
    ticket.refresh_from_db()
    assert ticket.escalation_level == 3
    assert list(ticket.events.filter(kind=EventKind.ESCALATED).values_list("level", flat=True).order_by("level")) == [
        1, 2, 3,
    ]  # fmt: skip
    bodies = set(OutboxMessage.objects.filter(dedupe_key__contains=":escalation:2:").values_list("body", flat=True))
    assert bodies and all(body.endswith("overdue: resolve") for body in bodies)


def test_a_deadline_missed_while_an_earlier_breach_is_still_outstanding_keeps_the_first_breachs_ladder(
    catalogue, make_customer, dispatcher
):
    # the unit never calls: the contact breach is still to be met when the resolution is missed
    ticket = new_connection(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=TAKEN + MIN)
    sla_sweep(now=TAKEN + 5 * MIN)
    sla_sweep(now=TAKEN + 2 * dt.timedelta(hours=3))
    ticket.refresh_from_db()
    assert ticket.escalation_level == 3
    sla_sweep(now=ticket.resolve_due + MIN)
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.first_breach_at) == (True, TAKEN + 4 * MIN)
