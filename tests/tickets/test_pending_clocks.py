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


# A deadline already passed when the pause began (audit agentday 2) ----------------------------------------

H = dt.timedelta(hours=1)


def _breaches(ticket, deadline):
    return ticket.events.filter(kind=EventKind.BREACH, after__deadline=deadline).count()


def test_a_resolve_deadline_passed_before_the_pause_is_not_forgiven_by_the_pause(
    catalogue, make_customer, dispatcher
):
    from tickets.services import ticket_record_contact

    ticket = outage(catalogue, make_customer)  # resolve by T+2h
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    # The resolve deadline passed 20 seconds ago (the minute's sweep has not come yet) when the agent sets it
    # pending; the customer answers 3 hours later.
    paused = T + 2 * H + dt.timedelta(seconds=20)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=paused)
    resumed = paused + 3 * H
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=resumed)
    # The deadline was missed before the customer was waited for: it keeps its moment and is breached, once.
    assert ticket.resolve_due == T + 2 * H
    assert ticket.next_check_at == T + 2 * H
    assert sla_sweep(now=resumed)["escalations"] == 1
    assert sla_sweep(now=resumed + MIN)["escalations"] == 0
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level, _breaches(ticket, "resolve_due")) == (True, 1, 1)
    # Its ladder counts in running time, as if the sweep had marked it on time and the pause had moved it:
    # the supervisors 30 minutes after the miss plus the 3 hours waited, not at once.
    assert ticket.first_breach_at == T + 5 * H
    assert ticket.next_check_at == T + 5 * H + 30 * MIN
    assert sla_sweep(now=T + 5 * H + 29 * MIN)["escalations"] == 0
    assert sla_sweep(now=T + 5 * H + 30 * MIN)["escalations"] == 1
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 2


def test_a_contact_deadline_passed_before_the_pause_stays_and_is_breached_once_by_the_sweep(
    catalogue, make_customer, dispatcher
):
    ticket = outage(catalogue, make_customer)  # contact by T+4
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    paused = T + 4 * MIN + dt.timedelta(seconds=30)  # the call not made, the sweep not yet come
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=paused)
    assert sla_sweep(now=paused + H) == {"handled": 0, "escalations": 0}  # pending: left alone
    resumed = paused + 3 * H
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=resumed)
    # The contact deadline had passed: it stays; the resolve deadline, still running, moved by the 3 hours.
    assert (ticket.contact_due, ticket.resolve_due) == (T + 4 * MIN, T + 2 * H + 3 * H)
    assert sla_sweep(now=resumed)["escalations"] == 1
    assert sla_sweep(now=resumed + MIN)["escalations"] == 0
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.resolve_breached, ticket.escalation_level) == (True, False, 1)
    assert _breaches(ticket, "contact_due") == 1
    assert ticket.first_breach_at == T + 4 * MIN + 3 * H  # the miss plus the pause: running time


def test_a_deadline_passed_during_a_pause_set_before_first_contact_moves(catalogue, make_customer, dispatcher):
    ticket = outage(catalogue, make_customer)  # contact by T+4, resolve by T+2h
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 3 * MIN)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=T + 3 * MIN + 3 * H)
    # Both still ahead when the pause began: both moved by it, and nothing is breached on resuming.
    assert (ticket.contact_due, ticket.resolve_due) == (T + 4 * MIN + 3 * H, T + 5 * H)
    assert sla_sweep(now=T + 3 * MIN + 3 * H) == {"handled": 0, "escalations": 0}
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.first_breach_at) == (False, None)


def test_a_working_day_deadline_passed_before_the_pause_is_not_moved(catalogue, make_customer, dispatcher):
    from tickets.services import ticket_record_contact

    taken = dt.datetime(2026, 6, 1, 9, tzinfo=VN)  # a Monday: resolve in 5 working days
    ticket = ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="Cấp điện",
                         customer=make_customer(), at=taken).ticket  # fmt: skip
    due = ticket.resolve_due
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=taken + MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=taken + 2 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=due + dt.timedelta(seconds=10))
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=due + 2 * H)
    assert ticket.resolve_due == due
    sla_sweep(now=due + 2 * H)
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level) == (True, 1)


def test_a_miss_before_a_pause_after_a_stopped_ladder_climbs_from_itself_in_running_time(
    catalogue, make_customer, dispatcher
):
    from tickets.services import ticket_record_contact

    ticket = outage(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    assert sla_sweep(now=T + 5 * MIN)["escalations"] == 1  # the call a minute late: level 1
    ticket_record_contact(actor=None, ticket=ticket, at=T + 6 * MIN)  # made: the ladder stops at 1
    paused = T + 2 * H + dt.timedelta(seconds=20)  # the resolution missed 20 seconds ago, not yet swept
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=paused)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=paused + 3 * H)
    assert sla_sweep(now=paused + 3 * H)["escalations"] == 0  # level 1 already reached
    ticket.refresh_from_db()
    # Neither the old contact breach nor the wall clock of the pause: the miss plus the pause.
    assert (ticket.resolve_breached, ticket.escalation_level) == (True, 1)
    assert ticket.first_breach_at == T + 5 * H
    assert sla_sweep(now=T + 5 * H + 29 * MIN)["escalations"] == 0
    assert sla_sweep(now=T + 5 * H + 30 * MIN)["escalations"] == 1


def test_two_pauses_before_the_sweep_marks_a_miss_both_count_in_its_ladder(catalogue, make_customer, dispatcher):
    from tickets.services import ticket_record_contact

    ticket = outage(catalogue, make_customer)  # resolve by T+2h
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    # missed at T+2h; pending at T+2h (+20 s) for 3 hours, resumed, pending again 10 seconds later for 2 hours,
    # with no sweep in between
    first = T + 2 * H + dt.timedelta(seconds=20)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=first)
    ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=first + 3 * H)
    second = first + 3 * H + dt.timedelta(seconds=10)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=second)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=second + 2 * H)
    assert ticket.resolve_due == T + 2 * H
    assert ticket.first_breach_at == T + 2 * H + 5 * H  # the miss plus both pauses
    assert sla_sweep(now=second + 2 * H)["escalations"] == 1  # level 1 only, not 2 and 3 at once
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 1
