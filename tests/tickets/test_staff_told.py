"""Who on the staff is told of a ticket: working staff only. A member of staff whose account is deactivated has
left, and is sent nothing (a ticket's notice holds the customer's code, phone and address)."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from crm.models import OutboxMessage, Role
from tickets.models import Status, Ticket, WorkOrder, WorkOrderStatus
from tickets.services import (
    ticket_assign,
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
    work_order_create,
)
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def outage(catalogue, customer, at=T):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, at=at).ticket  # fmt: skip


def with_phone(user, phone):
    user.staff_profile.phone = phone
    user.staff_profile.save()
    return user


def deactivate(user):
    user.is_active = False
    user.save()


def test_a_deactivated_dispatcher_is_not_sent_the_customers_phone_and_address(
    org, catalogue, make_customer, make_staff
):
    # given two dispatchers of the unit, one of whom has left
    with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903000001")
    deactivate(with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903000002"))
    # when a ticket is taken in the unit
    outage(catalogue, make_customer(phones=["0912 345 678"]))
    # then only the working dispatcher is sent the notice
    assert list(OutboxMessage.objects.values_list("recipient", flat=True)) == ["+84903000001"]


def test_a_deactivated_supervisor_is_not_sent_escalations(org, catalogue, make_customer, make_staff):
    # given a supervisor of the company who has left, and one still working
    with_phone(make_staff(Role.SUPERVISOR, [org["sibling"]]), "+84903000011")
    deactivate(with_phone(make_staff(Role.SUPERVISOR, [org["home"]]), "+84903000012"))
    ticket = outage(catalogue, make_customer())
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    # when the ticket breaches and climbs to level 2
    sla_sweep(now=T + H)
    # then the level-2 escalation goes to the working supervisor only
    level2 = OutboxMessage.objects.filter(dedupe_key__contains=":escalation:2:")
    assert list(level2.values_list("recipient", flat=True)) == ["+84903000011"]


def test_an_assignee_who_has_left_is_not_sent_the_first_escalation(org, catalogue, make_customer, make_staff):
    # given a ticket assigned to an agent whose account is then deactivated, and a working dispatcher
    with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903000021")
    agent = with_phone(make_staff(Role.AGENT, [org["home"]]), "+84903000022")
    ticket = outage(catalogue, make_customer())
    ticket_assign(actor=None, ticket=ticket, assignee=agent)
    deactivate(agent)
    # when the ticket breaches
    sla_sweep(now=T + 10 * MIN)
    # then the level-1 escalation goes to the dispatcher only
    level1 = OutboxMessage.objects.filter(dedupe_key__contains=":escalation:1:")
    assert list(level1.values_list("recipient", flat=True)) == ["+84903000021"]


def test_a_crew_member_who_has_left_is_not_sent_out_and_not_told(org, catalogue, make_customer, make_staff):
    # given a crew member sent to a call, whose account is then deactivated
    crew = with_phone(make_staff(Role.FIELD_CREW, [org["home"]]), "+84903000031")
    ticket = outage(catalogue, make_customer())
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    assert OutboxMessage.objects.filter(recipient="+84903000031").count() == 1
    deactivate(crew)
    # when the call is cancelled (its order with it)
    ticket_change_status(actor=None, ticket=ticket, to=Status.CANCELLED, note="Khách báo nhầm")
    # then the order is cancelled without a message to them
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.CANCELLED
    assert OutboxMessage.objects.filter(recipient="+84903000031").count() == 1
    # and they cannot be sent to another call: refused on the field, nothing written
    other = outage(catalogue, make_customer())
    orders, messages = WorkOrder.objects.count(), OutboxMessage.objects.count()
    with pytest.raises(ValidationError) as refused:
        work_order_create(actor=None, ticket=other, crew=crew)
    assert list(refused.value.message_dict) == ["crew"]
    assert (WorkOrder.objects.count(), OutboxMessage.objects.count()) == (orders, messages)
    assert Ticket.objects.get(pk=other.pk).status == Status.NEW
