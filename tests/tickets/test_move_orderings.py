"""Moves in an order the state machine first got wrong: duplicates of closed tickets, re-routing with an
assignee or a crew out, cancelling with crews out, restore times entered late, and reopening (fresh clocks, a
new escalation ladder, a new callback)."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict

from crm.models import OutboxMessage, Role
from tickets.models import Callback, EventKind, Status, Ticket, TicketEvent, WorkOrder, WorkOrderStatus
from tickets.services import (
    callback_record,
    incident_open,
    incident_restore,
    ticket_assign,
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
    ticket_reroute,
    work_order_advance,
    work_order_create,
)
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def outage(catalogue, customer, at=T, **kw):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, at=at, **kw).ticket  # fmt: skip


def snapshot(ticket):
    return model_to_dict(Ticket.objects.get(pk=ticket.pk))


# 1. Duplicates: only of an open ticket --------------------------------------------------------------------


def test_two_tickets_cannot_be_duplicates_of_each_other(catalogue, make_customer):
    customer = make_customer()
    a, b = outage(catalogue, customer), outage(catalogue, customer, at=T + MIN)
    ticket_change_status(actor=None, ticket=b, to=Status.DUPLICATE, duplicate_of=a, at=T + 2 * MIN)
    before, events = snapshot(a), a.events.count()
    with pytest.raises(ValidationError) as refused:
        ticket_change_status(actor=None, ticket=a, to=Status.DUPLICATE, duplicate_of=b, at=T + 3 * MIN)
    assert refused.value.message_dict["duplicate_of"] == [
        f"Ticket {b.number} is Duplicate: a ticket can only repeat an open one."
    ]
    assert (snapshot(a), a.events.count()) == (before, events)
    assert Ticket.objects.open().filter(customer=customer).get() == a


@pytest.mark.parametrize("end", [Status.CANCELLED, Status.RESOLVED, Status.CLOSED])
def test_a_ticket_is_not_marked_a_duplicate_of_one_no_longer_open(catalogue, make_customer, end):
    customer = make_customer()
    a, b = outage(catalogue, customer), outage(catalogue, customer, at=T + MIN)
    if end == Status.CANCELLED:
        ticket_change_status(actor=None, ticket=a, to=Status.CANCELLED, note="Nhầm", at=T + 2 * MIN)
    else:
        ticket_change_status(actor=None, ticket=a, to=Status.ACKNOWLEDGED, at=T + MIN)
        ticket_change_status(actor=None, ticket=a, to=Status.RESOLVED, at=T + 2 * MIN)
        if end == Status.CLOSED:
            callback_record(actor=None, ticket=a, reached=False)
            callback_record(actor=None, ticket=a, reached=False)
            callback_record(actor=None, ticket=a, reached=False)
    assert Ticket.objects.get(pk=a.pk).status == end
    before, events = snapshot(b), b.events.count()
    with pytest.raises(ValidationError) as refused:
        ticket_change_status(actor=None, ticket=b, to=Status.DUPLICATE, duplicate_of=a, at=T + 3 * MIN)
    assert "duplicate_of" in refused.value.message_dict
    assert (snapshot(b), b.events.count()) == (before, events)


# 2. Re-routing: the old unit's assignee and crews ---------------------------------------------------------


def test_a_rerouted_ticket_keeps_no_assignee_of_the_old_unit_and_escalates_without_them(
    catalogue, make_customer, org, staff
):
    crew = staff[Role.FIELD_CREW]  # serves only the home unit
    ticket = outage(catalogue, make_customer())
    ticket_assign(actor=None, ticket=ticket, assignee=crew)
    ticket_reroute(actor=staff[Role.SUPERVISOR], ticket=ticket, unit=org["sibling"], reason="Địa chỉ thuộc Quận 3")
    ticket.refresh_from_db()
    assert (ticket.unit, ticket.assignee) == (org["sibling"], None)
    routed = ticket.events.get(kind=EventKind.ROUTED)
    assert (routed.before["assignee"], routed.after["assignee"]) == (crew.pk, None)
    assert sla_sweep(now=T + 5 * MIN)["escalations"] == 1
    assert not OutboxMessage.objects.filter(recipient=crew.username, dedupe_key__contains="escalation").exists()


def test_a_rerouted_ticket_keeps_an_assignee_who_serves_the_new_unit_too(catalogue, make_customer, org, make_staff):
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    ticket = outage(catalogue, make_customer())
    ticket_assign(actor=None, ticket=ticket, assignee=agent)
    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Địa chỉ thuộc Quận 3")
    assert Ticket.objects.get(pk=ticket.pk).assignee == agent


def test_re_routing_cancels_the_old_units_open_work_orders(catalogue, make_customer, org, staff):
    ticket = outage(catalogue, make_customer())
    contacted = work_order_create(actor=None, ticket=ticket)
    work_order_advance(actor=None, order=contacted, to=WorkOrderStatus.ACKNOWLEDGED)
    work_order_advance(actor=None, order=contacted, to=WorkOrderStatus.CONTACTED)
    open_order = work_order_create(actor=None, ticket=ticket, crew=staff[Role.FIELD_CREW])
    ticket_reroute(actor=staff[Role.SUPERVISOR], ticket=ticket, unit=org["sibling"], reason="Địa chỉ thuộc Quận 3")
    statuses = dict(WorkOrder.objects.filter(ticket=ticket).values_list("pk", "status"))
    assert statuses == {contacted.pk: WorkOrderStatus.CANCELLED, open_order.pk: WorkOrderStatus.CANCELLED}
    assert "Địa chỉ thuộc Quận 3" in WorkOrder.objects.get(pk=open_order.pk).note
    routed = ticket.events.get(kind=EventKind.ROUTED)
    assert routed.after["work_orders_cancelled"] == [contacted.pk, open_order.pk]
    # the crew member sent is told the order is off, and why
    told = OutboxMessage.objects.get(recipient=staff[Role.FIELD_CREW].username, subject__contains="cancelled")
    assert (told.subject, told.body) == (
        f"{ticket.number}: work order cancelled", f"The ticket went to {org['sibling'].code}: Địa chỉ thuộc Quận 3"
    )
    # the new unit sends its own crew
    assert work_order_create(actor=None, ticket=ticket).unit == org["sibling"]


# 3. Cancelling or marking a duplicate stops the crews ----------------------------------------------------


def test_cancelling_a_ticket_cancels_its_open_work_orders(catalogue, make_customer, org, make_staff):
    ticket = outage(catalogue, make_customer())
    order = work_order_create(actor=None, ticket=ticket)
    crew = make_staff(Role.FIELD_CREW, [ticket.unit])
    finished = work_order_create(actor=None, ticket=ticket, crew=crew)  # a second crew, named
    work_order_advance(actor=None, order=finished, to=WorkOrderStatus.ACKNOWLEDGED)
    work_order_advance(actor=None, order=finished, to=WorkOrderStatus.CONTACTED)
    work_order_advance(actor=None, order=finished, to=WorkOrderStatus.DONE, resolution_code="no_fault")
    ticket_change_status(actor=None, ticket=ticket, to=Status.CANCELLED, note="Khách hủy")
    order.refresh_from_db()
    finished.refresh_from_db()
    assert (order.status, finished.status) == (WorkOrderStatus.CANCELLED, WorkOrderStatus.DONE)
    assert order.note == f"Ticket {ticket.number} is cancelled: Khách hủy"
    moved = ticket.events.filter(kind=EventKind.STATUS).latest("id")
    assert moved.after == {"status": Status.CANCELLED, "work_orders_cancelled": [order.pk]}


def test_marking_a_duplicate_leaves_no_work_order_open(catalogue, make_customer):
    customer = make_customer()
    first = outage(catalogue, customer)
    second = outage(catalogue, customer, at=T + MIN)
    ticket_change_status(actor=None, ticket=second, to=Status.ACKNOWLEDGED, at=T + 2 * MIN)
    ticket_change_status(actor=None, ticket=second, to=Status.DUPLICATE, duplicate_of=first, at=T + 3 * MIN)
    # a ticket with a crew out is dispatched, which is never marked a duplicate: it is cancelled instead
    dispatched = outage(catalogue, customer, at=T + 4 * MIN)
    work_order_create(actor=None, ticket=dispatched)
    with pytest.raises(ValidationError):
        ticket_change_status(actor=None, ticket=dispatched, to=Status.DUPLICATE, duplicate_of=first)
    assert WorkOrder.objects.open().filter(ticket=dispatched).count() == 1
    assert not WorkOrder.objects.open().filter(ticket__status__in=[Status.DUPLICATE, Status.CANCELLED]).exists()


def test_an_agent_without_work_order_rights_cancels_a_ticket_with_a_crew_out(catalogue, make_customer, staff):
    ticket = outage(catalogue, make_customer())
    order = work_order_create(actor=None, ticket=ticket)
    agent = staff[Role.AGENT]
    assert not agent.has_perm("tickets.change_workorder")
    ticket_change_status(actor=agent, ticket=ticket, to=Status.CANCELLED, note="Khách hủy")
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.CANCELLED


# 4. A restore time entered late ---------------------------------------------------------------------------


def test_restoring_never_resolves_a_ticket_before_it_was_received(org, make_customer, catalogue):
    customer = make_customer()
    incident = incident_open(actor=None, unit=customer.unit, cause="Sự cố", started_at=T - H)
    early = outage(catalogue, customer, at=T - 30 * MIN, incident=incident)
    late = outage(catalogue, make_customer(), at=T, incident=incident)
    incident_restore(actor=None, incident=incident, at=T - 10 * MIN)  # the real restore time, entered later
    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.resolved_at, early.acknowledged_at) == (T - 10 * MIN, T - 10 * MIN)
    assert (late.resolved_at, late.acknowledged_at, late.callback_due) == (T, T, T + 24 * H)
    assert late.events.get(kind=EventKind.STATUS).at == T
    with pytest.raises(ValidationError):
        incident_restore(actor=None, incident=incident_open(actor=None, unit=customer.unit, cause="x",
                                                            started_at=T), at=T - MIN)  # fmt: skip


# 5. Reopening: fresh clocks, a new ladder -----------------------------------------------------------------


def test_reopen_does_not_escalate_for_the_time_the_ticket_was_closed(catalogue, make_customer, dispatcher):
    ticket = outage(catalogue, make_customer())
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    assert sla_sweep(now=T + 5 * MIN)["escalations"] == 1  # contact missed at T+4: level 1
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 20 * MIN)
    callback_record(actor=None, ticket=ticket, reached=True, fix_score=2, attitude_score=3, at=T + H)
    reopened_at = T + 24 * H
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=reopened_at)
    ticket.refresh_from_db()
    assert (ticket.contact_due, ticket.resolve_due) == (reopened_at + 4 * MIN, reopened_at + 2 * H)
    assert (ticket.contact_breached, ticket.first_breach_at, ticket.escalation_level) == (False, None, 0)
    assert ticket.next_check_at == reopened_at + 4 * MIN
    earlier = ticket.events.filter(kind=EventKind.STATUS).latest("id").before["earlier_cycle"]
    assert (earlier["breached"], earlier["escalation_level"]) == (["contact_breached"], 1)
    assert sla_sweep(now=reopened_at + MIN)["escalations"] == 0
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 0


def test_reopen_does_not_breach_a_resolve_deadline_that_fell_while_resolved(catalogue, make_customer, dispatcher):
    ticket = outage(catalogue, make_customer())  # resolve by T+2h
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 30 * MIN)
    reopened_at = T + 5 * H
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=reopened_at)
    sla_sweep(now=reopened_at + MIN)
    ticket.refresh_from_db()
    assert (ticket.resolve_due, ticket.contact_due) == (reopened_at + 2 * H, T + 4 * MIN)  # contact was made
    assert (ticket.resolve_breached, ticket.escalation_level) == (False, 0)
    assert ticket.next_check_at == reopened_at + 2 * H


def test_a_reopened_ticket_climbs_the_ladder_again_without_clashing_with_the_first(
    catalogue, make_customer, dispatcher
):
    ticket = outage(catalogue, make_customer())
    assert sla_sweep(now=T + 3 * H)["escalations"] == 3  # nothing done: levels 1, 2 and 3
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 4 * H - MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 4 * H)
    reopened_at = T + 6 * H
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=reopened_at)
    assert sla_sweep(now=reopened_at + MIN)["escalations"] == 0
    assert sla_sweep(now=reopened_at + 5 * MIN)["escalations"] == 1  # contact missed again: level 1
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 1
    assert sla_sweep(now=reopened_at + 5 * MIN)["escalations"] == 0  # idempotent
    assert sla_sweep(now=reopened_at + 3 * H)["escalations"] == 2  # levels 2 and 3 of the new cycle
    ticket.refresh_from_db()
    assert (ticket.escalation_level, ticket.contact_breached, ticket.resolve_breached) == (3, True, True)
    escalations = list(
        TicketEvent.objects.filter(ticket=ticket, kind=EventKind.ESCALATED).order_by("id").values_list("cycle", "level")
    )
    assert escalations == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert ticket.cycle == 1  # the sweep reads the cycle with the row
    # The database keeps one escalation per ticket, cycle and level, whatever sweeps run at once.
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketEvent.objects.create(ticket=ticket, kind=EventKind.ESCALATED, at=reopened_at, level=2, cycle=1)
    told = OutboxMessage.objects.filter(subject=f"Escalation 1: {ticket.number}")  # the one dispatcher
    assert told.count() == 2  # once per cycle


def test_restore_while_pending_then_reopen_keeps_the_pause(org, catalogue, make_customer, dispatcher):
    customer = make_customer()
    incident = incident_open(actor=None, unit=customer.unit, cause="Sự cố", started_at=T - H)
    ticket = outage(catalogue, customer, incident=incident)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 2 * MIN)
    incident_restore(actor=None, incident=incident, at=T + 3 * H)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.paused_at, ticket.resolved_at) == (Status.RESOLVED, None, T + 3 * H)
    # the contact deadline waited with the customer, as on any move out of pending
    assert ticket.contact_due == T + 4 * MIN + (3 * H - 2 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Nhà tôi vẫn mất", at=T + 3 * H + MIN)
    sla_sweep(now=T + 3 * H + 2 * MIN)
    ticket.refresh_from_db()
    assert (ticket.escalation_level, ticket.contact_breached, ticket.resolve_breached) == (0, False, False)
    assert ticket.contact_due == T + 3 * H + 5 * MIN


def test_restore_while_pending_keeps_a_deadline_passed_before_the_pause(org, catalogue, make_customer, dispatcher):
    # the unit never called, and the contact deadline (T+4) had passed when the ticket was set pending
    customer = make_customer()
    incident = incident_open(actor=None, unit=customer.unit, cause="Sự cố", started_at=T - H)
    ticket = outage(catalogue, customer, incident=incident)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 5 * MIN)
    incident_restore(actor=None, incident=incident, at=T + 3 * H)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.paused_at, ticket.resolved_at) == (Status.RESOLVED, None, T + 3 * H)
    # the missed contact keeps its moment; the resolution, still running at the pause, waited with the customer
    assert (ticket.contact_due, ticket.resolve_due) == (T + 4 * MIN, T + 2 * H + (3 * H - 5 * MIN))
    assert ticket.resolved_at <= ticket.resolve_due


# 6. Each resolution gets its own callback -----------------------------------------------------------------


def _resolved_surveyed_reopened_resolved(catalogue, make_customer):
    ticket = outage(catalogue, make_customer())
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 20 * MIN)
    callback_record(actor=None, ticket=ticket, reached=True, fix_score=5, attitude_score=4, comment="Tốt", at=T + H)
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=T + 2 * H)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 3 * H)
    return Ticket.objects.get(pk=ticket.pk)


def test_a_ticket_resolved_again_after_reopen_gets_its_own_callback(catalogue, make_customer):
    ticket = _resolved_surveyed_reopened_resolved(catalogue, make_customer)
    assert ticket.callback_due == T + 3 * H + 24 * H
    callback = callback_record(actor=None, ticket=ticket, reached=True, fix_score=1, attitude_score=2, at=T + 4 * H)
    assert (callback.attempts, callback.fix_score, callback.completed_at) == (1, 1, T + 4 * H)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.closed_at) == (Status.CLOSED, T + 4 * H)
    reopen = ticket.events.filter(kind=EventKind.STATUS, after__status=Status.REOPENED).get()
    first = reopen.before["earlier_cycle"]["callback"]
    assert dt.datetime.fromisoformat(first.pop("completed_at")) == T + H
    assert first == {"attempts": 1, "outcome": "surveyed", "fix_score": 5, "attitude_score": 4, "comment": "Tốt",
                     "agent": None}  # fmt: skip


def test_a_ticket_resolved_again_after_reopen_is_not_closed_without_a_new_callback(catalogue, make_customer):
    ticket = _resolved_surveyed_reopened_resolved(catalogue, make_customer)
    assert not Callback.objects.filter(ticket=ticket, cycle=ticket.cycle).exists()
    before, events = snapshot(ticket), ticket.events.count()
    with pytest.raises(ValidationError):
        ticket_change_status(actor=None, ticket=ticket, to=Status.CLOSED, at=T + 3 * H + MIN)
    assert (snapshot(ticket), ticket.events.count()) == (before, events)


# 7. A pause moves a deadline counted in working days by the working time it took ----------------------


def _connection_request(catalogue, customer, at):
    """A new low-voltage connection: 5 working days."""
    return ticket_open(actor=None, category=catalogue["new-lv"], channel="portal", description="x",
                       customer=customer, at=at).ticket  # fmt: skip


def _vn(*args):
    return dt.datetime(*args, tzinfo=VN)


@pytest.mark.parametrize(
    ("taken", "paused", "resumed", "due"),
    [
        # Friday's request, due the next Friday; one working day waited (Mon → Tue): the 4 days left run Tue
        # to the next Monday, not to Saturday
        (_vn(2026, 5, 29, 10), _vn(2026, 6, 1, 10), _vn(2026, 6, 2, 10), _vn(2026, 6, 8, 10)),
        # Wednesday's request, due the next Wednesday; Friday 16:00 to Monday 16:00 over a weekend is one
        # working day waited, not three: due Thursday, not Saturday
        (_vn(2026, 5, 27, 10), _vn(2026, 5, 29, 16), _vn(2026, 6, 1, 16), _vn(2026, 6, 4, 10)),
        # waiting on Saturday only: no working time lost, the deadline stays
        (_vn(2026, 5, 29, 10), _vn(2026, 5, 30, 9), _vn(2026, 5, 30, 18), _vn(2026, 6, 5, 10)),
    ],
    ids=["one working day", "over a weekend", "on a day off"],
)
def test_a_pause_moves_a_working_day_deadline_by_the_working_time_it_took(
    catalogue, make_customer, taken, paused, resumed, due
):
    ticket = _connection_request(catalogue, make_customer(), taken)
    assert ticket.resolve_due == taken + dt.timedelta(days=7)  # five working days: the same weekday next week
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=ticket.created_at + MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=ticket.created_at + 2 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=paused)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=resumed)
    assert ticket.resolve_due == due
    assert sla_sweep(now=due - MIN)["escalations"] == 0
    assert not Ticket.objects.get(pk=ticket.pk).resolve_breached
