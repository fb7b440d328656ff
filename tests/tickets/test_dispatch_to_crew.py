"""A dispatcher sends a named crew member to a ticket, or gives an open work order to another one: from the
ticket page, the lists of the admin and the API. The crew member sent is told (and only they), the one taken
off is told too, and every refusal says why and changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket, TicketEvent, WorkOrder, WorkOrderStatus
from tickets.services import ticket_open, work_order_advance, work_order_create

A_PHONE, B_PHONE = "+84903000041", "+84903000042"


def with_phone(user, phone):
    user.staff_profile.phone = phone
    user.staff_profile.save()
    return user


@pytest.fixture
def crews(org, make_staff):
    """Two field crew members of the home unit, each with a phone."""
    return (
        with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.an"), A_PHONE),
        with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.binh"), B_PHONE),
    )


@pytest.fixture
def ticket(catalogue, make_customer):
    return ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện cả xóm",
        customer=make_customer(),
    ).ticket  # fmt: skip


def told(since: int) -> list[tuple[str, str]]:
    """(recipient, subject) of the outbox messages written after message id ``since``."""
    return sorted(OutboxMessage.objects.filter(pk__gt=since).values_list("recipient", "subject"))


def last_message_id() -> int:
    return OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def page_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def send_from_ticket_page(client, ticket, crew, note=""):
    return client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]),
        {"move": "send_crew", "crew": "" if crew is None else str(crew.pk), "note": note},
    )


# The ticket page ---------------------------------------------------------------------------------------


def test_the_ticket_page_offers_the_units_active_field_crews_and_the_dispatchers(
    client, org, dispatcher, crews, ticket, make_staff
):
    # given crews of the unit, one of another unit, one who has left and an agent of the unit
    stranger = make_staff(Role.FIELD_CREW, [org["other_company"]], username="to.khac")
    gone = make_staff(Role.FIELD_CREW, [org["home"]], username="to.nghi")
    gone.is_active = False
    gone.save()
    agent = make_staff(Role.AGENT, [org["home"]], username="nv.agent")
    client.force_login(dispatcher)
    # when the dispatcher opens the ticket
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    # then "Send a crew" offers the dispatchers, then the unit's two active crew members by username
    assert page.status_code == 200
    send = next(m for m in page.context["moves"] if m.key == "send_crew")
    assert send.takes_note
    assert [value for value, _label in send.crew_choices] == ["", str(crews[0].pk), str(crews[1].pk)]
    assert send.crew_choices[0][1] == "The unit's dispatchers decide"
    html = page.content.decode()
    assert 'name="crew"' in html and "to.an" in html and "to.binh" in html
    for outsider in (stranger, gone, agent):
        assert outsider.username not in html


def test_the_dispatcher_sends_a_named_crew_and_only_that_crew_member_is_told(
    client, dispatcher, crews, ticket
):
    crew, other = crews
    client.force_login(dispatcher)
    since = last_message_id()
    # when the dispatcher sends crew member A with a note
    response = send_from_ticket_page(client, ticket, crew, note="Mang thang dài")
    # then one work order goes to A, the ticket is dispatched, and A alone is told (not B, not the dispatchers)
    assert response.status_code == 302
    order = WorkOrder.objects.get(ticket=ticket)
    assert (order.crew_id, order.status, order.note) == (crew.pk, WorkOrderStatus.ISSUED, "Mang thang dài")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.DISPATCHED
    assert told(since) == [(A_PHONE, ticket.number)]
    assert f"Work order {order} issued to to.an." in page_messages(response)
    # and A's field page lists the order, first; B's lists it too (the unit's work) but after their own
    mine = work_order_create(actor=None, ticket=ticket, crew=other)
    client.force_login(crew)
    field = client.get("/field/")
    assert field.status_code == 200
    assert [o.pk for o in field.context["orders"]] == [order.pk, mine.pk]
    assert ticket.number in field.content.decode()
    client.force_login(other)
    assert [o.pk for o in client.get("/field/").context["orders"]] == [mine.pk, order.pk]


def test_sending_no_named_crew_tells_the_units_dispatchers(client, dispatcher, crews, ticket):
    client.force_login(dispatcher)
    since = last_message_id()
    response = send_from_ticket_page(client, ticket, None)
    assert response.status_code == 302
    order = WorkOrder.objects.get(ticket=ticket)
    assert order.crew_id is None
    assert told(since) == [(dispatcher.staff_profile.phone, ticket.number)]


@pytest.mark.parametrize("who", ["other_unit", "unseen", "deactivated", "agent", "unknown"])
def test_a_crew_member_who_may_not_be_sent_is_refused_with_the_reason_and_nothing_changes(
    client, org, dispatcher, ticket, make_staff, who
):
    # given someone the dispatcher cannot send to this ticket
    if who == "other_unit":  # a crew member the dispatcher sees, of a unit not the ticket's
        dispatcher.staff_profile.units.add(org["sibling"])
        crew, reason = make_staff(Role.FIELD_CREW, [org["sibling"]]), "does not serve the ticket's unit"
    elif who == "unseen":  # of a unit the dispatcher does not see: nobody they may name, and not named
        crew, reason = make_staff(Role.FIELD_CREW, [org["other_company"]]), "No such crew member."
    elif who == "deactivated":
        crew, reason = make_staff(Role.FIELD_CREW, [org["home"]]), "account is deactivated"
        crew.is_active = False
        crew.save()
    elif who == "agent":
        crew, reason = make_staff(Role.AGENT, [org["home"]]), "is not a member of a field crew"
    else:
        crew, reason = None, "No such crew member."
    client.force_login(dispatcher)
    since = last_message_id()
    # when the page is posted naming them (a stale page, or a hand-made request)
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]),
        {"move": "send_crew", "crew": str(crew.pk) if crew else "987654", "note": ""},
    )
    # then the ticket page says why, and nothing was written
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tickets_ticket_change", args=[ticket.pk])
    shown = page_messages(response)
    assert len(shown) == 1 and reason in shown[0], shown
    assert not WorkOrder.objects.filter(ticket=ticket).exists()
    assert Ticket.objects.get(pk=ticket.pk).status == Status.NEW
    assert told(since) == []


def test_the_lists_send_a_crew_action_asks_for_the_crew_member(client, dispatcher, crews, ticket):
    crew, _other = crews
    client.force_login(dispatcher)
    changelist = reverse("admin:tickets_ticket_changelist")
    # the action first shows its page with the crew members of the unit
    page = client.post(changelist, {"action": "send_crew", "_selected_action": [ticket.pk]})
    assert page.status_code == 200
    assert [v for v, _label in page.context["form"].fields["crew"].choices] == [
        "", str(crews[0].pk), str(crews[1].pk)
    ]  # fmt: skip
    assert not WorkOrder.objects.exists()
    since = last_message_id()
    # then sends the one chosen
    done = client.post(
        changelist,
        {
            "action": "send_crew",
            "_selected_action": [ticket.pk],
            "send": "1",
            "crew": str(crew.pk),
            "note": "Gấp",
        },
    )
    assert done.status_code == 302
    order = WorkOrder.objects.get(ticket=ticket)
    assert (order.crew_id, order.note) == (crew.pk, "Gấp")
    assert told(since) == [(A_PHONE, ticket.number)]


# Giving an open work order to another crew member ------------------------------------------------------


def test_giving_an_open_order_to_another_crew_member_tells_both_and_is_recorded(
    client, dispatcher, crews, ticket
):
    crew, other = crews
    order = work_order_create(actor=dispatcher, ticket=ticket, crew=crew)
    order = work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    client.force_login(dispatcher)
    # the ticket page lists the order with whom to give it to
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    listed = page.context["work_orders"]
    assert [(o.pk, o.crew_shown) for o in listed] == [(order.pk, "Test field_crew (to.an)")]
    assert [v for v, _label in listed[0].crew_choices] == ["", str(crew.pk), str(other.pk)]
    since = last_message_id()
    # when the dispatcher gives it to B from the ticket page
    response = client.post(
        reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(other.pk), "back": "ticket"}
    )
    # then it is B's, back to issued for B to acknowledge, and both are told: B the job, A that it is off
    assert response["Location"] == reverse("admin:tickets_ticket_change", args=[ticket.pk])
    order.refresh_from_db()
    assert (order.crew_id, order.status, order.acknowledged_at) == (other.pk, WorkOrderStatus.ISSUED, None)
    assert order.note == f"Work order {ticket.number}/{order.pk}: to.an → to.binh."
    assert told(since) == [
        (A_PHONE, f"{ticket.number}: work order given to someone else"),
        (B_PHONE, ticket.number),
    ]
    off = OutboxMessage.objects.get(pk__gt=since, recipient=A_PHONE)
    assert off.body == f"Work order {ticket.number}/{order.pk} now goes to to.binh: you need not go."
    event = TicketEvent.objects.get(ticket=ticket, kind=EventKind.ASSIGNED)
    assert (event.actor_id, event.before, event.after) == (
        dispatcher.pk,
        {"work_order": order.pk, "crew": "to.an", "status": "acknowledged"},
        {"work_order": order.pk, "crew": "to.binh", "status": "issued"},
    )
    timeline = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).context["timeline"]
    assert "Work order given to to.binh" in [row["what"] for row in timeline]
    # and B's field page has it first, to acknowledge
    client.force_login(other)
    field = client.get("/field/").context["orders"]
    assert (field[0].pk, [s for s, _l in field[0].next_steps]) == (order.pk, ["acknowledged"])


def test_the_work_orders_page_and_list_give_it_to_a_crew_member(client, dispatcher, crews, ticket):
    crew, other = crews
    order = work_order_create(actor=None, ticket=ticket)
    client.force_login(dispatcher)
    page = client.get(reverse("admin:tickets_workorder_change", args=[order.pk]))
    assert page.status_code == 200
    assert [v for v, _label in page.context["crew_choices"]] == ["", str(crew.pk), str(other.pk)]
    assert reverse("admin:tickets_workorder_assign", args=[order.pk]) in page.content.decode()
    since = last_message_id()
    response = client.post(reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(crew.pk)})
    assert response["Location"] == reverse("admin:tickets_workorder_change", args=[order.pk])
    assert WorkOrder.objects.get(pk=order.pk).crew_id == crew.pk
    assert told(since) == [(A_PHONE, ticket.number)]  # nobody had it by name: nobody else to tell
    # the list's action moves it on to B
    changelist = reverse("admin:tickets_workorder_changelist")
    done = client.post(
        changelist,
        {"action": "give_to_crew", "_selected_action": [order.pk], "send": "1", "crew": str(other.pk)},
    )
    assert done.status_code == 302
    assert WorkOrder.objects.get(pk=order.pk).crew_id == other.pk


@pytest.mark.parametrize("end", [WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED])
def test_a_done_or_cancelled_order_cannot_be_given_to_anyone(client, dispatcher, crews, ticket, end):
    crew, other = crews
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    if end == WorkOrderStatus.DONE:
        for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
            work_order_advance(actor=crew, order=order, to=step)
        work_order_advance(actor=crew, order=order, to=end, resolution_code="fixed")
    else:
        work_order_advance(actor=crew, order=order, to=end, note="Khách hủy")
    before = WorkOrder.objects.filter(pk=order.pk).values().get()
    events = TicketEvent.objects.filter(ticket=ticket).count()
    since = last_message_id()
    client.force_login(dispatcher)
    # neither from the admin
    response = client.post(
        reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(other.pk)}
    )
    label = WorkOrderStatus(end).label
    assert page_messages(response) == [
        f"Work order {ticket.number}/{order.pk} is {label}: only an open work order goes to another crew member."
    ]
    # nor from the API
    refused = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": other.username}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert "only an open work order" in refused.json()["detail"][0]
    assert WorkOrder.objects.filter(pk=order.pk).values().get() == before
    assert TicketEvent.objects.filter(ticket=ticket).count() == events
    assert told(since) == []
    # and the ticket page offers no choice for it
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    assert [o.crew_choices for o in page.context["work_orders"]] == [[]]


# The API ----------------------------------------------------------------------------------------------


def test_the_api_sends_a_named_crew_and_gives_the_order_to_another(client, dispatcher, crews, ticket):
    crew, other = crews
    client.force_login(dispatcher)
    since = last_message_id()
    created = client.post(
        f"/api/v1/tickets/{ticket.pk}/work-orders/",
        {"crew": "to.an", "note": "Cột 12"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    order = WorkOrder.objects.get(ticket=ticket)
    assert (body["id"], body["ticket"], body["crew"], body["status"], body["note"], body["unit_code"]) == (
        order.pk, ticket.number, "to.an", "issued", "Cột 12", ticket.unit.code,
    )  # fmt: skip
    assert order.crew_id == crew.pk
    assert Ticket.objects.get(pk=ticket.pk).status == Status.DISPATCHED
    assert told(since) == [(A_PHONE, ticket.number)]
    # the work-order list filters by the crew's username and shows it
    listed = client.get("/api/v1/work-orders/", {"crew": "to.an"}).json()["results"]
    assert [(row["id"], row["crew"]) for row in listed] == [(order.pk, "to.an")]
    since = last_message_id()
    moved = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "TO.BINH"}, content_type="application/json"
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["crew"] == "to.binh"
    assert WorkOrder.objects.get(pk=order.pk).crew_id == other.pk
    assert [r for r, _s in told(since)] == [A_PHONE, B_PHONE]
    # a retry changes nothing and tells nobody again
    since = last_message_id()
    again = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "to.binh"}, content_type="application/json"
    )
    assert again.status_code == 200 and told(since) == []
    # without a crew the order goes to the unit's dispatchers
    unnamed = client.post(f"/api/v1/tickets/{ticket.pk}/work-orders/", {}, content_type="application/json")
    assert unnamed.status_code == 201 and unnamed.json()["crew"] is None


def test_the_api_names_the_crew_field_when_nobody_may_be_sent(client, org, dispatcher, ticket, make_staff):
    make_staff(Role.FIELD_CREW, [org["other_company"]], username="to.khac")
    gone = make_staff(Role.FIELD_CREW, [org["home"]], username="to.nghi")
    gone.is_active = False
    gone.save()
    client.force_login(dispatcher)
    since, events = last_message_id(), TicketEvent.objects.filter(ticket=ticket).count()
    for username, reason in [
        ("nobody", "No crew member with the username nobody among those you may send."),
        (
            "to.khac",
            "No crew member with the username to.khac among those you may send.",
        ),  # not in their units
        ("to.nghi", "The crew member's account is deactivated: send someone else."),
        (dispatcher.username, f"{dispatcher.username} is not a member of a field crew."),
    ]:
        refused = client.post(
            f"/api/v1/tickets/{ticket.pk}/work-orders/", {"crew": username}, content_type="application/json"
        )
        assert refused.status_code == 400, (username, refused.content)
        assert refused.json() == {"crew": [reason]}
    order = work_order_create(actor=None, ticket=ticket)
    refused = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "to.nghi"}, content_type="application/json"
    )
    assert refused.json() == {"crew": ["The crew member's account is deactivated: send someone else."]}
    missing = client.post(f"/api/v1/work-orders/{order.pk}/assign/", {}, content_type="application/json")
    assert missing.status_code == 400 and list(missing.json()) == ["crew"]
    assert WorkOrder.objects.get(pk=order.pk).crew_id is None
    assert list(WorkOrder.objects.filter(ticket=ticket).values_list("pk", flat=True)) == [order.pk]
    assert told(since) == [(dispatcher.staff_profile.phone, ticket.number)]  # the order made here, unnamed
    assert TicketEvent.objects.filter(ticket=ticket).count() == events + 2  # its acknowledged and dispatched


# Who may send crews ----------------------------------------------------------------------------------


def test_a_field_crew_member_cannot_give_orders_to_anyone(client, crews, ticket):
    crew, other = crews
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    client.force_login(crew)
    since = last_message_id()
    refused = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "to.binh"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert (
        client.post(
            f"/api/v1/tickets/{ticket.pk}/work-orders/", {}, content_type="application/json"
        ).status_code
        == 403
    )
    admin_post = client.post(
        reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(other.pk)}
    )
    assert admin_post.status_code == 403
    page = client.get(reverse("admin:tickets_workorder_change", args=[order.pk]))
    assert page.status_code == 200 and page.context["crew_choices"] == []
    ticket_page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]))
    assert "send_crew" not in [m.key for m in ticket_page.context["moves"]]
    assert [o.crew_choices for o in ticket_page.context["work_orders"]] == [[]]
    assert WorkOrder.objects.get(pk=order.pk).crew_id == crew.pk
    assert WorkOrder.objects.count() == 1
    assert told(since) == []


def test_an_agent_without_the_right_to_send_crews_gets_403(client, org, make_staff, crews, ticket):
    agent = make_staff(Role.AGENT, [org["home"]])
    order = work_order_create(actor=None, ticket=ticket)
    client.force_login(agent)
    since = last_message_id()
    created = client.post(
        f"/api/v1/tickets/{ticket.pk}/work-orders/", {"crew": "to.an"}, content_type="application/json"
    )
    assert created.status_code == 403
    moved = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "to.an"}, content_type="application/json"
    )
    assert moved.status_code == 403
    posted = send_from_ticket_page(client, ticket, crews[0])
    assert page_messages(posted) == [
        f"Ticket {ticket.number} is {Status(Ticket.objects.get(pk=ticket.pk).status).label} now: this move is not "
        "open to you on it. The page "
        "shows the moves you can make."
    ]
    assert list(WorkOrder.objects.values_list("pk", "crew_id")) == [(order.pk, None)]
    assert told(since) == []


def test_a_dispatcher_of_another_unit_cannot_reach_the_ticket_or_the_order(
    client, org, make_staff, crews, ticket
):
    outsider = make_staff(Role.DISPATCHER, [org["other_company"]])
    order = work_order_create(actor=None, ticket=ticket)
    client.force_login(outsider)
    created = client.post(f"/api/v1/tickets/{ticket.pk}/work-orders/", {}, content_type="application/json")
    assert created.status_code == 404
    moved = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": "to.an"}, content_type="application/json"
    )
    assert moved.status_code == 404
    assert (
        client.post(
            reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(crews[0].pk)}
        ).status_code
        == 404
    )
    assert list(WorkOrder.objects.values_list("pk", "crew_id")) == [(order.pk, None)]


# Pressed twice ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [True, False])
def test_send_a_crew_pressed_twice_sends_nobody_twice(client, dispatcher, crews, ticket, named):
    """A double click on the list's "Send a crew" (or two dispatchers at once: the ticket's lock makes the
    second see the first's order) issues one work order; the second says which order is already out."""
    crew = crews[0] if named else None
    client.force_login(dispatcher)
    changelist = reverse("admin:tickets_ticket_changelist")
    form = {"action": "send_crew", "_selected_action": [ticket.pk], "send": "1",
            "crew": str(crew.pk) if crew else "", "note": ""}  # fmt: skip
    first = client.post(changelist, form)
    order = WorkOrder.objects.get(ticket=ticket)
    since = last_message_id()
    events = TicketEvent.objects.filter(ticket=ticket).count()
    second = client.post(changelist, form)
    assert (first.status_code, second.status_code) == (302, 302)
    who = "to.an" if named else "the unit's dispatchers"
    # (the first press's message is still in the session: the test does not follow the redirects)
    assert page_messages(second)[-1] == (
        f"{ticket.number}: Work order {order} is already open on this ticket for {who}."
    )
    assert list(WorkOrder.objects.filter(ticket=ticket).values_list("pk", flat=True)) == [order.pk]
    assert told(since) == [] and TicketEvent.objects.filter(ticket=ticket).count() == events
    # the same from the ticket page and the API
    page = send_from_ticket_page(client, ticket, crew)
    assert page_messages(page)[-1] == f"Work order {order} is already open on this ticket for {who}."
    api = client.post(f"/api/v1/tickets/{ticket.pk}/work-orders/",
                      {"crew": crew.username if crew else None}, content_type="application/json")  # fmt: skip
    assert api.status_code == 400
    assert api.json()["crew"] == [f"Work order {order} is already open on this ticket for {who}."]
    assert WorkOrder.objects.filter(ticket=ticket).count() == 1 and told(since) == []


def test_another_crew_member_may_still_be_sent_and_an_order_not_given_to_one_already_out(
    dispatcher, crews, ticket
):
    crew, other = crews
    first = work_order_create(actor=dispatcher, ticket=ticket, crew=crew)
    second = work_order_create(actor=dispatcher, ticket=ticket, crew=other)  # a second crew beside the first
    assert WorkOrder.objects.open().filter(ticket=ticket).count() == 2
    from django.core.exceptions import ValidationError

    from tickets.services import work_order_assign

    with pytest.raises(ValidationError) as refused:
        work_order_assign(actor=dispatcher, order=second, crew=crew)
    assert refused.value.message_dict == {
        "crew": [f"Work order {first} is already open on this ticket for to.an."]
    }
    assert WorkOrder.objects.get(pk=second.pk).crew_id == other.pk
    # once the first is done, a new order may go to the same crew member
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
        work_order_advance(actor=crew, order=first, to=step)
    work_order_advance(actor=crew, order=first, to=WorkOrderStatus.DONE, resolution_code="no_fault")
    assert work_order_create(actor=dispatcher, ticket=ticket, crew=crew).crew_id == crew.pk
