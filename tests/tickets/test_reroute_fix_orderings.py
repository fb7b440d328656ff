"""Re-routing a ticket in the orderings around it: with a crew's job done and another order open, with every
order open, twice in a row, and a re-route made by someone else between reading a ticket and moving it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from core.errors import NotAllowed
from crm.models import OutboxMessage, Role, Unit
from tickets.models import EventKind, Status, Ticket, TicketEvent, WorkOrder, WorkOrderStatus
from tickets.services import (
    ticket_assign,
    ticket_change_status,
    ticket_open,
    ticket_reroute,
    work_order_advance,
    work_order_create,
)


def _outage(customer, catalogue) -> Ticket:
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer).ticket  # fmt: skip


def _finish(order, code="fixed") -> None:
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
        work_order_advance(actor=None, order=order, to=step)
    work_order_advance(actor=None, order=order, to=WorkOrderStatus.DONE, resolution_code=code)


def _told(user) -> list[str]:
    return list(OutboxMessage.objects.filter(staff_id=user.pk).order_by("pk").values_list("body", flat=True))


def _events(ticket) -> list[tuple[str, dict, dict]]:
    return [
        (e.kind, e.before, e.after)
        for e in TicketEvent.objects.filter(ticket_id=ticket.pk).order_by("at", "pk")
    ]


# One crew's job done, another order open ----------------------------------------------------------------------


def test_one_order_done_and_one_open_the_reroute_resolves_the_ticket_in_the_new_unit(
    org, make_staff, make_customer, catalogue
):
    home, sibling = org["home"], org["sibling"]
    supervisor = make_staff(Role.SUPERVISOR, [home, sibling])
    ticket = _outage(make_customer(home), catalogue)
    first, second = make_staff(Role.FIELD_CREW, [home]), make_staff(Role.FIELD_CREW, [home])
    done = work_order_create(actor=None, ticket=ticket, crew=first)
    still_sent = work_order_create(actor=None, ticket=ticket, crew=second)
    _finish(done, code="meter_replaced")
    before_told = len(_told(second))

    moved = ticket_reroute(actor=supervisor, ticket=ticket, unit=sibling, reason="Sai địa bàn")

    still_sent.refresh_from_db()
    assert still_sent.status == WorkOrderStatus.CANCELLED
    assert len(_told(second)) == before_told + 1  # the crew still sent is told it need not go
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert (moved.status, moved.unit_id) == (
        Status.RESOLVED,
        sibling.pk,
    )  # the caller gets the ticket as it is
    assert (ticket.status, ticket.unit_id) == (Status.RESOLVED, sibling.pk)
    assert ticket.resolved_at is not None
    # the new unit's callback queue has it
    assert ticket.callback_due == ticket.resolved_at + dt.timedelta(hours=ticket.policy.callback_hours)
    *_, routed, resolved = _events(ticket)
    assert routed[0] == EventKind.ROUTED
    assert routed[2]["work_orders_cancelled"] == [still_sent.pk]
    assert "status" not in routed[2]  # never back to acknowledged on the way
    assert resolved[0] == EventKind.STATUS and resolved[2]["status"] == Status.RESOLVED
    last = TicketEvent.objects.filter(ticket_id=ticket.pk).order_by("at", "pk").last()
    assert last.actor_id is None and last.note  # how the job ended: the crew's job, no one's move
    assert not WorkOrder.objects.open().filter(ticket=ticket).exists()


def test_the_same_ticket_resolved_by_the_crew_calling_off_and_by_the_reroute_ends_alike(
    org, make_staff, make_customer, catalogue
):
    """The one rule (``_done_in_this_cycle`` then ``_resolve_by_crew``): the note of the resolution is the same
    whichever path ended the crews' work."""
    home = org["home"]
    notes = []
    for end in ("call off", "reroute"):
        ticket = _outage(make_customer(home), catalogue)
        first, second = make_staff(Role.FIELD_CREW, [home]), make_staff(Role.FIELD_CREW, [home])
        done = work_order_create(actor=None, ticket=ticket, crew=first)
        other = work_order_create(actor=None, ticket=ticket, crew=second)
        _finish(done)
        if end == "call off":
            work_order_advance(actor=None, order=other, to=WorkOrderStatus.CANCELLED, note="Không cần nữa")
        else:
            ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")
        ticket.refresh_from_db()
        assert ticket.status == Status.RESOLVED
        resolved = TicketEvent.objects.filter(ticket_id=ticket.pk, kind=EventKind.STATUS,
                                              after__status=Status.RESOLVED).get()  # fmt: skip
        notes.append(resolved.note)
    assert notes[0] == notes[1] != ""


def test_a_job_done_before_the_reopen_does_not_resolve_the_rerouted_ticket(
    org, make_staff, make_customer, catalogue
):
    home = org["home"]
    ticket = _outage(make_customer(home), catalogue)
    crew = make_staff(Role.FIELD_CREW, [home])
    _finish(work_order_create(actor=None, ticket=ticket, crew=crew))
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện")
    again = work_order_create(actor=None, ticket=ticket, crew=crew)
    ticket.refresh_from_db()
    assert ticket.status == Status.DISPATCHED

    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")

    ticket.refresh_from_db()
    again.refresh_from_db()
    assert again.status == WorkOrderStatus.CANCELLED
    assert (ticket.status, ticket.unit_id) == (Status.ACKNOWLEDGED, org["sibling"].pk)
    routed = _events(ticket)[-1]
    assert routed[0] == EventKind.ROUTED
    assert (routed[1]["status"], routed[2]["status"]) == (Status.DISPATCHED, Status.ACKNOWLEDGED)


# Every order open ------------------------------------------------------------------------------------------


def test_every_order_open_the_reroute_calls_them_off_and_sends_the_ticket_back_to_acknowledged(
    org, make_staff, make_customer, catalogue
):
    home = org["home"]
    ticket = _outage(make_customer(home), catalogue)
    crews = [make_staff(Role.FIELD_CREW, [home]) for _ in range(2)]
    orders = [work_order_create(actor=None, ticket=ticket, crew=crew) for crew in crews]
    work_order_advance(actor=None, order=orders[0], to=WorkOrderStatus.ACKNOWLEDGED)  # on its way
    told = [len(_told(crew)) for crew in crews]

    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")

    ticket.refresh_from_db()
    assert (ticket.status, ticket.unit_id, ticket.resolved_at) == (
        Status.ACKNOWLEDGED,
        org["sibling"].pk,
        None,
    )
    assert [WorkOrder.objects.get(pk=o.pk).status for o in orders] == [WorkOrderStatus.CANCELLED] * 2
    assert [len(_told(crew)) for crew in crews] == [n + 1 for n in told]
    routed = _events(ticket)[-1]
    assert routed[0] == EventKind.ROUTED
    assert routed[2]["work_orders_cancelled"] == [o.pk for o in orders]
    assert (routed[1]["status"], routed[2]["status"]) == (Status.DISPATCHED, Status.ACKNOWLEDGED)


# Twice in a row ---------------------------------------------------------------------------------------------


def test_rerouted_twice_the_second_unit_calls_off_the_crew_it_sent(org, make_staff, make_customer, catalogue):
    ticket = _outage(make_customer(org["home"]), catalogue)
    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")
    crew = make_staff(Role.FIELD_CREW, [org["sibling"]])
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    ticket_reroute(actor=None, ticket=ticket, unit=org["other_company"], reason="Vẫn sai địa bàn")
    order.refresh_from_db()
    ticket.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED
    assert (ticket.status, ticket.unit_id) == (Status.ACKNOWLEDGED, org["other_company"].pk)


@pytest.fixture
def kept_in_the_successor(org, make_staff, make_customer, catalogue):
    """A ticket of the merged-away Sơn Hòa, its successor's crew sent, re-routed to the successor (kept)."""
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    successor = org["other_corporation"]
    ticket = _outage(make_customer(successor), catalogue)
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)
    ticket.refresh_from_db()
    crews = [make_staff(Role.FIELD_CREW, [successor]) for _ in range(2)]
    orders = [work_order_create(actor=None, ticket=ticket, crew=crew) for crew in crews]
    ticket_reroute(actor=None, ticket=ticket, unit=successor, reason="Đơn vị đã sáp nhập")
    assert [WorkOrder.objects.get(pk=o.pk).unit_id for o in orders] == [merged.pk] * 2
    assert not WorkOrder.objects.filter(pk__in=[o.pk for o in orders]).exclude(status=WorkOrderStatus.ISSUED)
    return ticket, crews, orders


def test_rerouted_twice_the_kept_orders_are_called_off_and_their_crews_told(org, kept_in_the_successor):
    ticket, crews, orders = kept_in_the_successor
    told = [len(_told(crew)) for crew in crews]
    ticket_reroute(actor=None, ticket=ticket, unit=org["home"], reason="Sai địa bàn")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.unit_id) == (Status.ACKNOWLEDGED, org["home"].pk)
    assert [WorkOrder.objects.get(pk=o.pk).status for o in orders] == [WorkOrderStatus.CANCELLED] * 2
    assert [len(_told(crew)) for crew in crews] == [n + 1 for n in told]
    assert _events(ticket)[-1][2]["work_orders_cancelled"] == [o.pk for o in orders]


def test_rerouted_twice_after_a_kept_crew_did_the_job_the_ticket_is_resolved(org, kept_in_the_successor):
    ticket, _crews, orders = kept_in_the_successor
    _finish(orders[0])
    ticket.refresh_from_db()
    assert ticket.status == Status.DISPATCHED  # the other kept order is still open
    ticket_reroute(actor=None, ticket=ticket, unit=org["home"], reason="Sai địa bàn")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.unit_id) == (Status.RESOLVED, org["home"].pk)
    assert WorkOrder.objects.get(pk=orders[1].pk).status == WorkOrderStatus.CANCELLED


# Re-routed by someone else between reading the ticket and acting on it ------------------------------------------


@pytest.fixture
def read_then_moved(org, make_staff, make_customer, catalogue):
    """A home-unit ticket with a crew sent, as a page read it; then its unit changed in the database (another
    supervisor's re-route committed meanwhile)."""
    ticket = _outage(make_customer(org["home"]), catalogue)
    order = work_order_create(actor=None, ticket=ticket, crew=make_staff(Role.FIELD_CREW, [org["home"]]))
    stale = Ticket.objects.get(pk=ticket.pk)
    return stale, order


def _snapshot(ticket, order):
    row = Ticket.objects.get(pk=ticket.pk)
    return (
        (row.unit_id, row.status, row.assignee_id),
        WorkOrder.objects.get(pk=order.pk).status,
        TicketEvent.objects.filter(ticket_id=ticket.pk).count(),
        OutboxMessage.objects.count(),
    )


def test_a_reroute_on_a_ticket_moved_out_of_the_actors_units_meanwhile_is_refused(
    org, staff, read_then_moved
):
    stale, order = read_then_moved
    Ticket.objects.filter(pk=stale.pk).update(unit=org["other_corporation"])
    was = _snapshot(stale, order)
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        ticket_reroute(actor=staff[Role.SUPERVISOR], ticket=stale, unit=org["sibling"], reason="Trả về")
    assert _snapshot(stale, order) == was  # the crew stays sent, nobody told, no event


def test_an_assign_after_a_concurrent_reroute_is_refused(org, make_staff, read_then_moved):
    stale, order = read_then_moved
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    both = make_staff(Role.AGENT, [org["home"], org["other_corporation"]])
    # another supervisor's re-route commits between the page's read and the dispatcher's click
    ticket_reroute(
        actor=None, ticket=Ticket.objects.get(pk=stale.pk), unit=org["other_corporation"], reason="Sai"
    )
    was = _snapshot(stale, order)
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        ticket_assign(actor=dispatcher, ticket=stale, assignee=both)
    assert _snapshot(stale, order) == was
    assert Ticket.objects.get(pk=stale.pk).assignee_id is None


def test_taking_a_ticket_oneself_after_it_left_ones_units_is_refused(org, make_staff, read_then_moved):
    stale, order = read_then_moved
    agent = make_staff(Role.AGENT, [org["home"]])
    Ticket.objects.filter(pk=stale.pk).update(unit=org["other_company"])
    was = _snapshot(stale, order)
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        ticket_assign(actor=agent, ticket=stale, assignee=agent)
    assert _snapshot(stale, order) == was


def test_a_ticket_moved_meanwhile_to_another_of_the_actors_units_is_assigned_there(
    org, make_staff, read_then_moved
):
    """The check is on the unit the ticket is with now, not a refusal of every ticket that moved."""
    stale, _order = read_then_moved
    dispatcher = make_staff(Role.DISPATCHER, [org["home"], org["sibling"]])
    agent = make_staff(Role.AGENT, [org["sibling"]])
    Ticket.objects.filter(pk=stale.pk).update(unit=org["sibling"])
    ticket = ticket_assign(actor=dispatcher, ticket=stale, assignee=agent)
    assert (ticket.unit_id, ticket.assignee_id) == (org["sibling"].pk, agent.pk)
    assert Ticket.objects.get(pk=stale.pk).assignee_id == agent.pk


def test_a_reroute_of_a_ticket_moved_meanwhile_to_the_target_is_refused_as_already_there(
    org, make_staff, read_then_moved
):
    stale, order = read_then_moved
    supervisor = make_staff(Role.SUPERVISOR, [org["home"], org["sibling"]])
    Ticket.objects.filter(pk=stale.pk).update(unit=org["sibling"])
    was = _snapshot(stale, order)
    with pytest.raises(ValidationError, match="already with this unit"):
        ticket_reroute(actor=supervisor, ticket=stale, unit=org["sibling"], reason="Sai địa bàn")
    assert _snapshot(stale, order) == was
