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
