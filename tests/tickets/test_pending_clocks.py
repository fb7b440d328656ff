"""Pending the customer stops every clock: the deadlines still running and the escalation ladder wait, and a
deadline that fell during the pause is not breached."""

import datetime as dt

from crm.models import OutboxMessage
from tickets.models import EventKind, Status, Ticket
from tickets.services import ticket_change_status, ticket_open
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)


def outage(catalogue, make_customer):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=make_customer(), at=T).ticket  # fmt: skip


def test_pending_before_contact_and_resumed_3_hours_later_does_not_escalate(
    catalogue, make_customer, dispatcher
):
    ticket = outage(catalogue, make_customer)  # acknowledge by T+3, contact by T+4, resolve by T+2h
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 2 * MIN)
    assert sla_sweep(now=T + 3 * dt.timedelta(hours=1)) == {"handled": 0, "escalations": 0}
    resumed = T + 2 * MIN + dt.timedelta(hours=3)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=resumed)
    # Each running deadline moved by the 3 hours; the one already met (acknowledge) kept its moment.
    assert (ticket.acknowledge_due, ticket.contact_due, ticket.resolve_due) == (
        T + 3 * MIN, T + 4 * MIN + dt.timedelta(hours=3), T + dt.timedelta(hours=5),
    )  # fmt: skip
    assert ticket.next_check_at == ticket.contact_due and ticket.paused_at is None
    assert sla_sweep(now=resumed) == {"handled": 0, "escalations": 0}
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.escalation_level, ticket.first_breach_at) == (False, 0, None)
    assert not ticket.events.filter(kind__in=[EventKind.BREACH, EventKind.ESCALATED]).exists()
    assert not OutboxMessage.objects.filter(dedupe_key__contains="escalation").exists()
    # The contact target then runs out in running time: one breach, level 1 only.
    assert sla_sweep(now=ticket.contact_due)["escalations"] == 1
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.escalation_level) == (True, 1)
    assert ticket.first_breach_at == T + 4 * MIN + dt.timedelta(hours=3)


def test_the_escalation_ladder_waits_while_pending(catalogue, make_customer, dispatcher):
    ticket = outage(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    assert sla_sweep(now=T + 5 * MIN)["escalations"] == 1  # contact missed at T+4: level 1
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 10 * MIN)
    resumed = T + 10 * MIN + dt.timedelta(hours=3)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=resumed)
    # The breach kept its deadline; level 2 (30 minutes after the first breach) counts running time only.
    assert (ticket.contact_due, ticket.contact_breached) == (T + 4 * MIN, True)
    assert ticket.next_check_at == T + 34 * MIN + dt.timedelta(hours=3)
    assert sla_sweep(now=resumed)["escalations"] == 0
    assert sla_sweep(now=ticket.next_check_at)["escalations"] == 1
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 2


def test_a_sweep_never_breaches_a_pending_ticket_even_if_it_was_due(catalogue, make_customer):
    ticket = outage(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 2 * MIN)
    Ticket.objects.filter(pk=ticket.pk).update(next_check_at=T)  # e.g. written by an older process
    assert sla_sweep(now=T + dt.timedelta(hours=4)) == {"handled": 1, "escalations": 0}
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.resolve_breached, ticket.next_check_at) == (False, False, None)
