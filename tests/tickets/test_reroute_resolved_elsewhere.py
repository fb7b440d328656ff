"""A re-route of a ticket whose crew finished the job, by a supervisor of the old unit only, to a unit of another
company: the crew's job resolves it there, the other order called off."""

from __future__ import annotations

from crm.models import Role
from tickets.models import Status, Ticket, WorkOrderStatus
from tickets.services import ticket_open, ticket_reroute, work_order_advance, work_order_create


def _finish(order, code="fixed") -> None:
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
        work_order_advance(actor=None, order=order, to=step)
    work_order_advance(actor=None, order=order, to=WorkOrderStatus.DONE, resolution_code=code)


def test_a_supervisor_of_the_old_unit_only_reroutes_a_ticket_whose_crew_did_the_job(
    org, make_staff, make_customer, catalogue
):
    home, sibling = org["home"], org["other_corporation"]
    supervisor = make_staff(Role.SUPERVISOR, [home])  # re-routes out of their unit, as the README says
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(home)).ticket  # fmt: skip
    first, second = make_staff(Role.FIELD_CREW, [home]), make_staff(Role.FIELD_CREW, [home])
    done = work_order_create(actor=None, ticket=ticket, crew=first)
    still_sent = work_order_create(actor=None, ticket=ticket, crew=second)
    _finish(done, code="meter_replaced")

    # The resolution is the crew's job, no one's move: the supervisor does not serve ``sibling``.
    ticket_reroute(actor=supervisor, ticket=ticket, unit=sibling, reason="Sai địa bàn")

    ticket = Ticket.objects.get(pk=ticket.pk)
    assert (ticket.status, ticket.unit_id) == (Status.RESOLVED, sibling.pk)
    still_sent.refresh_from_db()
    assert still_sent.status == "cancelled"
