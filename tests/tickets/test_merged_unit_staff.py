"""A ticket kept in a unit merged away (received before the merge; records keep the unit of their time) is worked
by the unit that took it over: its crews are offered and may be sent, its dispatchers are told of an order left
to them, of a job called off and of a level-1 escalation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import OutboxMessage, Role, Unit
from tickets.models import Ticket, WorkOrderStatus
from tickets.selectors import crew_choices, ticket_work_orders, units_serving
from tickets.services import (
    staff_of_unit,
    ticket_open,
    work_order_advance,
    work_order_assign,
    work_order_create,
)
from tickets.sla import sla_sweep


def _with_phone(user, phone):
    user.staff_profile.phone = phone
    user.staff_profile.save()
    return user


@pytest.fixture
def merged(org):
    unit = Unit.objects.get(name="Điện lực Sơn Hòa")
    assert unit.successor_id == org["other_corporation"].pk
    return unit


@pytest.fixture
def kept_ticket(org, merged, make_customer, catalogue):
    """An open outage ticket received before Sơn Hòa was merged into Sông Hinh - Sơn Hòa: it keeps its unit."""
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(org["other_corporation"])).ticket  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)  # taken before the merge
    ticket.refresh_from_db()
    return ticket


@pytest.fixture
def successor_staff(org, make_staff):
    successor = org["other_corporation"]
    return {
        "dispatcher": _with_phone(make_staff(Role.DISPATCHER, [successor]), "+84903999222"),
        "crew": _with_phone(make_staff(Role.FIELD_CREW, [successor]), "+84903000043"),
    }


def test_a_ticket_kept_in_a_unit_merged_away_can_be_sent_a_crew_of_the_unit_that_took_it_over(
    kept_ticket, successor_staff
):
    dispatcher, crew = successor_staff["dispatcher"], successor_staff["crew"]
    # then the ticket page offers the successor's crew member, who may be sent and is told
    assert str(crew.pk) in dict(crew_choices(kept_ticket.unit_id))
    order = work_order_create(actor=dispatcher, ticket=kept_ticket, crew=crew)
    assert OutboxMessage.objects.filter(dedupe_key=f"workorder:{order.pk}:{crew.staff_profile.pk}").exists()
    # and the order's page offers them too (to give it to someone else of the successor)
    rows = ticket_work_orders(ticket=kept_ticket, user=dispatcher)
    assert str(crew.pk) in dict(rows[0].crew_choices)


def test_the_merged_units_staff_are_those_of_the_unit_that_took_it_over(org, merged, successor_staff, staff):
    successor = org["other_corporation"]
    assert units_serving(merged.pk) == sorted([merged.pk, successor.pk])
    assert units_serving(org["home"].pk) == [org["home"].pk]  # a unit in service: itself
    assert [p.user for p in staff_of_unit(merged, Role.DISPATCHER)] == [successor_staff["dispatcher"]]
    assert [p.user for p in staff_of_unit(org["home"], Role.DISPATCHER)] == [staff[Role.DISPATCHER]]


def test_an_order_left_to_the_dispatchers_tells_the_successors_dispatchers(kept_ticket, successor_staff):
    dispatcher = successor_staff["dispatcher"]
    order = work_order_create(actor=dispatcher, ticket=kept_ticket)
    told = OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{order.pk}:")
    assert list(told.values_list("recipient", flat=True)) == ["+84903999222"]


def test_a_crew_calling_off_the_last_order_tells_the_successors_dispatchers(kept_ticket, successor_staff):
    dispatcher, crew = successor_staff["dispatcher"], successor_staff["crew"]
    order = work_order_create(actor=dispatcher, ticket=kept_ticket, crew=crew)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Xe hỏng")
    told = OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{order.pk}:called-off:")
    assert list(told.values_list("recipient", flat=True)) == ["+84903999222"]


def test_a_crew_of_another_unit_is_still_refused(kept_ticket, successor_staff, staff):
    # the home unit's crew member serves neither the merged unit nor its successor
    with pytest.raises(ValidationError, match="does not serve the ticket's unit"):
        work_order_create(actor=successor_staff["dispatcher"], ticket=kept_ticket, crew=staff[Role.FIELD_CREW])
    assert str(staff[Role.FIELD_CREW].pk) not in dict(crew_choices(kept_ticket.unit_id))
    assert not kept_ticket.work_orders.exists()


def test_an_order_is_given_to_the_successors_crew_from_its_page(client, kept_ticket, successor_staff):
    dispatcher, crew = successor_staff["dispatcher"], successor_staff["crew"]
    order = work_order_create(actor=dispatcher, ticket=kept_ticket)
    order = work_order_assign(actor=dispatcher, order=order, crew=crew)
    assert order.crew == crew
    client.force_login(dispatcher)
    page = client.get(reverse("admin:tickets_workorder_change", args=[order.pk])).content.decode()
    assert f'value="{crew.pk}"' in page


def test_a_level_1_escalation_tells_the_successors_dispatchers(kept_ticket, successor_staff):
    # when the ticket is not acknowledged in time
    sla_sweep(now=kept_ticket.acknowledge_due + dt.timedelta(minutes=1))
    # then the dispatchers of the unit that took it over hear of it
    told = OutboxMessage.objects.filter(dedupe_key__startswith=f"ticket:{kept_ticket.pk}:escalation:1:")
    assert list(told.values_list("recipient", flat=True)) == ["+84903999222"]
