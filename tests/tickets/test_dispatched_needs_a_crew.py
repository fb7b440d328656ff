"""A ticket becomes dispatched by sending a crew: the status API (and any other path) refuses "dispatched" with
no work order open, which would leave a dispatched ticket with nobody sent."""

from __future__ import annotations

from crm.models import Role
from tickets.models import EventKind, Status, Ticket
from tickets.services import ticket_change_status, ticket_open, work_order_create


def test_the_status_api_refuses_dispatched_without_a_crew_and_changes_nothing(
    client, make_customer, catalogue, staff
):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(f"/api/v1/tickets/{ticket.pk}/status/", {"status": "dispatched"})
    assert (response.status_code, response.json()) == (
        400, {"status": ["A ticket is dispatched by sending a crew: send one (a work order) instead."]},
    )  # fmt: skip
    assert Ticket.objects.get(pk=ticket.pk).status == Status.ACKNOWLEDGED
    assert ticket.events.filter(kind=EventKind.STATUS).count() == 1



def test_sending_a_crew_is_what_dispatches_the_ticket(make_customer, catalogue, staff):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket)
    ticket = Ticket.objects.get(pk=ticket.pk)
    assert ticket.status == Status.DISPATCHED
    assert list(ticket.events.filter(kind=EventKind.STATUS).values_list("after__status", flat=True)) == [
        "acknowledged", "dispatched",
    ]  # fmt: skip
    assert order.ticket_id == ticket.pk
