"""A move made on a ticket read before it went to another unit is checked against the unit it is with now: the
old unit's staff can no longer send a crew to it, move it or record a contact on it, and nothing changes."""

from __future__ import annotations

import pytest

from core.errors import NotAllowed
from crm.models import OutboxMessage, Role
from tickets.models import Status, Ticket, TicketEvent, WorkOrder
from tickets.services import (
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
    ticket_reroute,
    work_order_create,
)


@pytest.fixture
def read_then_rerouted(org, make_customer, catalogue):
    """A home-unit ticket as a page read it, then sent to a unit of another company."""
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    stale = Ticket.objects.get(pk=ticket.pk)
    ticket_reroute(actor=None, ticket=ticket, unit=org["other_company"], reason="Sai địa bàn")
    return stale


@pytest.mark.parametrize(
    "move",
    [
        lambda actor, ticket: work_order_create(actor=actor, ticket=ticket),
        lambda actor, ticket: ticket_change_status(actor=actor, ticket=ticket, to=Status.ACKNOWLEDGED),
        lambda actor, ticket: ticket_record_contact(actor=actor, ticket=ticket),
    ],
    ids=["send a crew", "acknowledge", "record the contact"],
)
def test_the_old_units_dispatcher_is_refused_on_a_ticket_rerouted_meanwhile(read_then_rerouted, staff, move):
    assert read_then_rerouted.unit_id != Ticket.objects.get(pk=read_then_rerouted.pk).unit_id
    counts = (WorkOrder.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        move(staff[Role.DISPATCHER], read_then_rerouted)
    ticket = Ticket.objects.get(pk=read_then_rerouted.pk)
    assert (ticket.status, ticket.contacted_at) == (Status.NEW, None)
    assert (WorkOrder.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count()) == counts
