"""A ticket sent to another unit after intake (``tickets.services.ticket_reroute``): the audit's cases."""

from __future__ import annotations

import pytest

from core.errors import NotAllowed
from crm.models import Role, Unit
from tickets.models import Status, Ticket, TicketEvent, WorkOrder, WorkOrderStatus
from tickets.services import (
    ticket_assign,
    ticket_open,
    ticket_reroute,
    work_order_advance,
    work_order_create,
)


def _outage(customer, catalogue) -> Ticket:
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer).ticket  # fmt: skip


# 1. README "When the last open work order of a dispatched (or in-progress) ticket is cancelled, by its crew or
#    by re-routing the ticket, the ticket goes back to acknowledged ... unless a crew sent since the ticket was
#    taken has done the job: the ticket is then resolved."


def test_rerouting_a_ticket_whose_job_a_crew_already_did_resolves_it(
    org, make_staff, make_customer, catalogue
):
    home = org["home"]
    ticket = _outage(make_customer(home), catalogue)
    first, second = make_staff(Role.FIELD_CREW, [home]), make_staff(Role.FIELD_CREW, [home])
    done = work_order_create(actor=None, ticket=ticket, crew=first)
    work_order_create(actor=None, ticket=ticket, crew=second)
    # the first crew fixed the fault; the second order is still open, so the ticket stays dispatched
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
        work_order_advance(actor=None, order=done, to=step)
    work_order_advance(actor=None, order=done, to=WorkOrderStatus.DONE, resolution_code="fixed")
    ticket.refresh_from_db()
    assert ticket.status == Status.DISPATCHED
    # the supervisor sends it to the sibling unit: the second crew is called off, the last open order
    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")
    ticket.refresh_from_db()
    assert not WorkOrder.objects.open().filter(ticket=ticket).exists()
    # the job is done: resolved, as when the crew calls its own order off (work_order_advance), not sent
    # back to acknowledged for the new unit to send a crew to a fault already fixed
    assert ticket.status == Status.RESOLVED


# 2. Re-routed twice: a ticket kept in a merged-away unit, re-routed to its successor (keeping the successor's
#    crew, the order still of the merged unit), then to another unit: "re-routing it cancels the old unit's"
#    orders. The order kept is left open, its crew still sent to a ticket of a unit it does not serve.


def test_a_ticket_rerouted_twice_calls_off_the_order_it_kept(org, make_staff, make_customer, catalogue):
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    successor = org["other_corporation"]
    assert merged.successor_id == successor.pk
    ticket = _outage(make_customer(successor), catalogue)
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)  # taken before the merge
    ticket.refresh_from_db()
    crew = make_staff(Role.FIELD_CREW, [successor])
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    ticket_reroute(actor=None, ticket=ticket, unit=successor, reason="Đơn vị đã sáp nhập")
    order.refresh_from_db()
    assert order.status == WorkOrderStatus.ISSUED  # kept, as the README says
    # then the successor's supervisor sends it on to the home unit (another corporation)
    ticket_reroute(actor=None, ticket=ticket, unit=org["home"], reason="Sai địa bàn")
    order.refresh_from_db()
    ticket.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED, "the old unit's crew is still sent"
    assert ticket.status == Status.ACKNOWLEDGED  # the home unit sees it needs a crew of its own


# 3. A move made on a ticket read before it went to another unit is checked against the unit it is with now
#    (the other moves re-check after the lock: ticket_change_status, ticket_record_contact,
#    work_order_create, ticket_link_incident). Re-routing and assigning do not.


@pytest.fixture
def read_then_rerouted(org, make_customer, catalogue):
    """A home-unit ticket as a page (or an API client) read it, then sent to a unit of another corporation."""
    ticket = _outage(make_customer(org["home"]), catalogue)
    stale = Ticket.objects.get(pk=ticket.pk)
    ticket_reroute(actor=None, ticket=ticket, unit=org["other_corporation"], reason="Sai địa bàn")
    return stale


def test_the_old_units_supervisor_cannot_reroute_a_ticket_sent_away_meanwhile(org, staff, read_then_rerouted):
    supervisor = staff[Role.SUPERVISOR]  # home unit's company only: does not see the other corporation
    events = TicketEvent.objects.filter(ticket_id=read_then_rerouted.pk).count()
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        ticket_reroute(actor=supervisor, ticket=read_then_rerouted, unit=org["sibling"], reason="Trả về")
    ticket = Ticket.objects.get(pk=read_then_rerouted.pk)
    assert ticket.unit_id == org["other_corporation"].pk
    assert TicketEvent.objects.filter(ticket_id=ticket.pk).count() == events


def test_the_old_units_agent_cannot_take_a_ticket_sent_away_meanwhile(org, make_staff, read_then_rerouted):
    # an agent serving both units is a legal assignee of the new unit, but the actor is the old unit's dispatcher
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    both = make_staff(Role.AGENT, [org["home"], org["other_corporation"]])
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        ticket_assign(actor=dispatcher, ticket=read_then_rerouted, assignee=both)
    assert Ticket.objects.get(pk=read_then_rerouted.pk).assignee_id is None
