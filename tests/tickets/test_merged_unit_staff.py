"""A ticket kept in a unit merged away (received before the merge; records keep the unit of their time) is worked
by the unit that took it over: its crews are offered and may be sent, its dispatchers are told of an order left
to them, of a job called off and of a level-1 escalation."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import OutboxMessage, Role, Unit
from crm.services import staff_update
from tickets.models import Ticket, WorkOrderStatus
from tickets.selectors import crew_choices, eligible_assignees, ticket_work_orders, units_serving
from tickets.services import (
    staff_of_unit,
    ticket_assign,
    ticket_open,
    ticket_reroute,
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


def test_a_member_of_staff_moved_to_another_unit_is_no_longer_sent_the_old_units_escalations(
    org, catalogue, make_customer, make_staff
):
    # given a dispatcher of home holding a ticket of home, then moved by an administrator to the sibling unit
    taken = dt.datetime(2026, 12, 28, 9, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    moved = _with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903000111")
    staying = _with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903000222")
    ticket = ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="Cấp điện",
                         customer=make_customer(org["home"]), at=taken).ticket  # fmt: skip
    ticket_assign(actor=moved, ticket=ticket, assignee=moved)
    staff_update(actor=None, user=moved, role=Role.DISPATCHER, units=[org["sibling"]])
    assert not Ticket.objects.for_user(moved).filter(pk=ticket.pk).exists()
    # when the contact deadline passes
    sla_sweep(now=taken + dt.timedelta(minutes=10))
    # then the level-1 escalation (the customer's phone and address) goes to home's dispatchers only
    told = OutboxMessage.objects.filter(dedupe_key__startswith=f"ticket:{ticket.pk}:escalation:1:")
    assert list(told.values_list("recipient", flat=True)) == [staying.staff_profile.phone]


# Taken and assigned by the successor's staff ------------------------------------------------------------------


def test_the_successors_agent_takes_a_ticket_kept_in_a_unit_merged_away(client, org, make_staff, kept_ticket):
    agent = make_staff(Role.AGENT, [org["other_corporation"]])
    client.force_login(agent)
    page = client.get(reverse("admin:tickets_ticket_change", args=[kept_ticket.pk])).content.decode()
    assert 'id="move-take"' in page  # README: the successor's staff work the records a merged-away unit keeps
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[kept_ticket.pk]), {"move": "take"}, follow=True
    )
    assert response.status_code == 200
    kept_ticket.refresh_from_db()
    assert kept_ticket.assignee == agent
    assert kept_ticket.events.filter(kind="assigned", actor=agent).count() == 1


def test_the_successors_dispatcher_assigns_a_ticket_kept_in_a_unit_merged_away(
    client, org, make_staff, kept_ticket
):
    successor = org["other_corporation"]
    agent, dispatcher = make_staff(Role.AGENT, [successor]), make_staff(Role.DISPATCHER, [successor])
    # the "Assign to…" page offers the successor's staff ...
    assert agent in set(eligible_assignees([kept_ticket.unit_id]))
    client.force_login(dispatcher)
    offered = client.post(
        reverse("admin:tickets_ticket_changelist"), {"action": "assign", "_selected_action": [kept_ticket.pk]}
    )
    assert f'value="{agent.pk}"' in offered.content.decode()
    # ... and the service gives it to them (it refused: "the assignee does not serve the ticket's unit")
    ticket_assign(actor=dispatcher, ticket=kept_ticket, assignee=agent)
    kept_ticket.refresh_from_db()
    assert kept_ticket.assignee == agent


def test_staff_of_another_unit_still_cannot_hold_a_ticket_kept_in_a_unit_merged_away(
    client, staff, make_staff, org, kept_ticket
):
    dispatcher = make_staff(Role.DISPATCHER, [org["other_corporation"]])
    outsider = staff[Role.AGENT]  # the home unit's: neither the merged unit nor its successor
    assert outsider not in set(eligible_assignees([kept_ticket.unit_id]))
    with pytest.raises(ValidationError) as refused:
        ticket_assign(actor=dispatcher, ticket=kept_ticket, assignee=outsider)
    assert refused.value.message_dict == {"assignee": ["The assignee does not serve the ticket's unit."]}
    kept_ticket.refresh_from_db()
    assert (kept_ticket.assignee, kept_ticket.events.filter(kind="assigned").count()) == (None, 0)


def test_a_kept_ticket_rerouted_to_the_successor_stays_with_the_successors_agent_who_holds_it(
    org, make_staff, staff, kept_ticket
):
    successor = org["other_corporation"]
    agent = make_staff(Role.AGENT, [successor])
    ticket_assign(actor=agent, ticket=kept_ticket, assignee=agent)  # taken while it was kept in the merged unit
    ticket_reroute(actor=None, ticket=kept_ticket, unit=successor, reason="Đơn vị đã sáp nhập")
    kept_ticket.refresh_from_db()
    assert (kept_ticket.unit, kept_ticket.assignee) == (successor, agent)
    # sent on to a unit the agent does not serve, it goes back to that unit's queue
    ticket_reroute(actor=None, ticket=kept_ticket, unit=org["home"], reason="Sai địa bàn")
    kept_ticket.refresh_from_db()
    assert (kept_ticket.unit, kept_ticket.assignee) == (org["home"], None)


# A call logged through the API by staff whose profile still names the merged unit ------------------------------


def test_a_call_logged_through_the_api_by_staff_of_a_merged_away_unit_is_answered_once_written(
    client, org, merged, make_staff, make_customer
):
    from django.utils import timezone

    from customers.models import Customer
    from tickets.models import Interaction

    agent = make_staff(Role.AGENT, [merged])  # served Sơn Hòa before the merge; the profile keeps it
    customer = make_customer(org["other_corporation"], phones=["0905 111 222"])
    Customer.objects.filter(pk=customer.pk).update(unit=merged)  # a customer record of the merged unit
    client.force_login(agent)
    response = client.post(
        "/api/v1/interactions/",
        {"channel": "phone", "disposition": "information", "started_at": timezone.now().isoformat(),
         "handling_seconds": 0, "customer_code": customer.code},
        content_type="application/json",
    )  # fmt: skip
    # it answered 500 after writing the call (read back through the agent's scope), and a retry logged it twice
    assert response.status_code == 201, response.content
    logged = Interaction.objects.get()
    assert (logged.unit, logged.customer_id, logged.agent) == (org["other_corporation"], customer.pk, agent)
    assert response.json()["unit_code"] == org["other_corporation"].code
