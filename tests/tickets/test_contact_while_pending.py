"""A contact made while the ticket waits for the customer is measured in running time: the minutes waited for the
customer do not make it late (README: "Pending the customer stops every clock"), whichever path records it."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import Role
from tickets.dashboard import sla_aggregates
from tickets.models import EventKind, Status, Ticket, WorkOrderStatus
from tickets.selectors import ticket_clocks
from tickets.services import (
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
    work_order_advance,
    work_order_create,
)
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def pending_at_one_minute(catalogue, make_customer, staff):
    """A ticket received at T (the unit calls the customer by T+4), acknowledged at T+0:30 and set pending the
    customer at T+1 (the customer asked to be called back in the evening)."""
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + MIN / 2)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + MIN)
    return Ticket.objects.get(pk=ticket.pk)


def _met(ticket: Ticket) -> tuple[int, int]:
    met = Ticket.objects.filter(pk=ticket.pk).aggregate(**sla_aggregates())
    return met["contact_reached"], met["contact_met"]


def test_a_contact_made_while_the_ticket_waits_for_the_customer_is_not_late_for_the_pause(
    pending_at_one_minute, staff
):
    ticket, dispatcher = pending_at_one_minute, staff[Role.DISPATCHER]
    # when the unit calls the customer at the agreed time, while the clocks are stopped, and then resumes
    ticket_record_contact(actor=dispatcher, ticket=ticket, at=T + 60 * MIN)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.IN_PROGRESS, at=T + 61 * MIN)
    ticket = Ticket.objects.get(pk=ticket.pk)
    # then the contact took 1 minute of running time (T to T+1) and counts as made in time: its deadline moved
    # by the 59 minutes of the pause before it, and the resume left it there
    assert (ticket.contacted_at, ticket.contact_due) == (T + 60 * MIN, T + 63 * MIN)
    contact = ticket_clocks(ticket=ticket, now=T + 62 * MIN)[1]  # acknowledge, contact, resolve
    assert contact["late"] is False
    assert _met(ticket) == (1, 1)
    # and the contact's event says how its deadline moved
    event = ticket.events.get(kind=EventKind.CONTACTED)
    moments = {k: dt.datetime.fromisoformat(v) for k, v in event.after.items()}
    assert dt.datetime.fromisoformat(event.before["contact_due"]) == T + 4 * MIN
    assert moments == {"contacted_at": T + 60 * MIN, "contact_due": T + 63 * MIN}
    # while the resolve deadline still running moved by the whole pause (60 minutes)
    assert ticket.resolve_due == T + dt.timedelta(hours=2) + 60 * MIN


def test_the_crews_customer_contacted_while_pending_is_not_late_either(pending_at_one_minute, staff):
    # given a crew sent to the pending ticket (it stays pending)
    ticket, crew = pending_at_one_minute, staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket, crew=crew)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    # when the crew calls the customer (now, long after the pause began at T+1)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CONTACTED)
    ticket = Ticket.objects.get(pk=ticket.pk)
    # then the ticket's contact counts 1 minute of running time: in time
    assert ticket.status == Status.PENDING_CUSTOMER
    assert ticket.contact_due - ticket.contacted_at == 3 * MIN
    assert _met(ticket) == (1, 1)


def test_a_contact_already_late_before_the_pause_stays_late(catalogue, make_customer, staff):
    # given a ticket received at T, not called by T+4 (the sweep marks it breached at T+5), set pending at T+10
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + MIN)
    sla_sweep(now=T + 5 * MIN)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 10 * MIN)
    # when the contact is recorded during the pause
    ticket_record_contact(actor=dispatcher, ticket=ticket, at=T + 60 * MIN)
    ticket = Ticket.objects.get(pk=ticket.pk)
    # then its deadline keeps its moment: it was late before the customer was waited for
    assert (ticket.contact_due, ticket.contact_breached) == (T + 4 * MIN, True)
    assert _met(ticket) == (1, 0)


def test_a_contact_due_before_the_pause_but_not_yet_swept_stays_late(catalogue, make_customer, staff):
    # given a ticket whose contact fell due at T+4, set pending at T+10 before any sweep marked it
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + MIN)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 10 * MIN)
    # when the contact is recorded during the pause
    ticket_record_contact(actor=dispatcher, ticket=ticket, at=T + 60 * MIN)
    # then it is late: the deadline had passed before the pause
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.contact_due == T + 4 * MIN
    assert ticket_clocks(ticket=ticket, now=T + 61 * MIN)[1]["late"] is True


def test_a_contact_made_before_the_pause_keeps_its_deadline(catalogue, make_customer, staff):
    # given a ticket called at T+2, then set pending at T+3
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + MIN)
    ticket_record_contact(actor=dispatcher, ticket=ticket, at=T + 2 * MIN)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 3 * MIN)
    ticket_change_status(actor=dispatcher, ticket=ticket, to=Status.IN_PROGRESS, at=T + 63 * MIN)
    # then the contact deadline is untouched (met before the pause), only the resolve deadline waited
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert (ticket.contacted_at, ticket.contact_due) == (T + 2 * MIN, T + 4 * MIN)
    assert ticket.resolve_due == T + dt.timedelta(hours=3)
    assert ticket.events.get(kind=EventKind.CONTACTED).before == {}
