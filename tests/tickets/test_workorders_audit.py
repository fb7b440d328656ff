"""Work orders and field crews: re-routing a ticket to the unit that already works it keeps that unit's crew;
the admin's crew picker names only the staff its user sees (as the API's); a garbled row selection on a list
action is refused, never a server error; the ticket page links only the orders its reader may open; the work
orders list's column headers are all in the page's language."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from crm.models import OutboxMessage, Role, Unit
from tickets.models import Status, Ticket, WorkOrder, WorkOrderStatus
from tickets.services import ticket_open, ticket_reroute, work_order_create


def _shown(response) -> str:
    return " | ".join(str(m) for m in get_messages(response.wsgi_request))


# Re-routing -----------------------------------------------------------------------------------------------


def _kept_ticket(org, make_customer, catalogue) -> Ticket:
    """An outage call kept in Sơn Hòa (merged into Sông Hinh - Sơn Hòa): taken before the merge."""
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    assert merged.successor_id == org["other_corporation"].pk
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(org["other_corporation"])).ticket  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)
    ticket.refresh_from_db()
    return ticket


def test_rerouting_a_kept_ticket_to_its_successor_does_not_call_off_the_successors_crew(
    org, make_staff, make_customer, catalogue
):
    successor = org["other_corporation"]
    ticket = _kept_ticket(org, make_customer, catalogue)
    dispatcher = make_staff(Role.DISPATCHER, [successor])
    crew = make_staff(Role.FIELD_CREW, [successor])
    order = work_order_create(actor=dispatcher, ticket=ticket, crew=crew)
    ticket.refresh_from_db()
    assert ticket.status == Status.DISPATCHED
    messages_before = OutboxMessage.objects.count()
    # when a supervisor re-routes it to the successor (the unit whose crew is already on the way)
    ticket_reroute(actor=None, ticket=ticket, unit=successor, reason="Đơn vị đã sáp nhập")
    # then the successor's crew still goes: the order is open and still theirs, the ticket still dispatched
    order.refresh_from_db()
    ticket.refresh_from_db()
    assert (order.status, order.crew_id, order.note) == (WorkOrderStatus.ISSUED, crew.pk, "")
    assert (ticket.status, ticket.unit_id) == (Status.DISPATCHED, successor.pk)
    assert list(WorkOrder.objects.open().filter(ticket=ticket).values_list("pk", flat=True)) == [order.pk]
    # and the crew member is not told they need not go; only the successor's dispatcher hears of the move
    assert not OutboxMessage.objects.filter(dedupe_key=f"workorder:{order.pk}:off:{crew.staff_profile.pk}").exists()
    assert OutboxMessage.objects.count() - messages_before == 1
    assert "work_orders_cancelled" not in ticket.events.filter(kind="routed").get().after


def test_rerouting_a_kept_ticket_to_its_successor_keeps_an_order_left_to_the_dispatchers(
    org, make_staff, make_customer, catalogue
):
    successor = org["other_corporation"]
    ticket = _kept_ticket(org, make_customer, catalogue)
    order = work_order_create(actor=make_staff(Role.DISPATCHER, [successor]), ticket=ticket)
    ticket_reroute(actor=None, ticket=ticket, unit=successor, reason="Đơn vị đã sáp nhập")
    order.refresh_from_db()
    ticket.refresh_from_db()
    assert (order.status, order.crew_id) == (WorkOrderStatus.ISSUED, None)
    assert ticket.status == Status.DISPATCHED


def test_rerouting_to_a_sibling_still_calls_off_a_crew_that_serves_both_units(org, make_staff, outage_ticket):
    # given a crew member serving the home unit and its sibling, sent on a home unit's ticket
    crew = make_staff(Role.FIELD_CREW, [org["home"], org["sibling"]])
    order = work_order_create(actor=None, ticket=outage_ticket, crew=crew)
    # when the ticket goes to the sibling (which did not take the home unit over)
    ticket_reroute(actor=None, ticket=outage_ticket, unit=org["sibling"], reason="Sai địa bàn")
    # then the home unit's order stops (the sibling sends its own), and the ticket waits for a crew again
    order.refresh_from_db()
    outage_ticket.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED
    assert order.note == f"The ticket went to {org['sibling'].code}: Sai địa bàn"
    assert outage_ticket.status == Status.ACKNOWLEDGED
    assert OutboxMessage.objects.filter(dedupe_key=f"workorder:{order.pk}:off:{crew.staff_profile.pk}").count() == 1
    routed = outage_ticket.events.filter(kind="routed").get()
    assert routed.after["work_orders_cancelled"] == [order.pk]
    assert (routed.before["status"], routed.after["status"]) == (Status.DISPATCHED, Status.ACKNOWLEDGED)


# The crew picker ------------------------------------------------------------------------------------------


def test_the_crew_picker_does_not_name_an_account_of_another_corporation(
    client, org, make_staff, outage_ticket, staff
):
    stranger = make_staff(Role.AGENT, [org["other_corporation"]], username="nv.khac.tong.cty")
    order = work_order_create(actor=None, ticket=outage_ticket)
    client.force_login(staff[Role.DISPATCHER])
    for url, data in (
        (reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(stranger.pk)}),
        (reverse("admin:tickets_ticket_move", args=[outage_ticket.pk]), {"move": "send_crew", "crew": str(stranger.pk)}),
    ):
        response = client.post(url, data)
        assert response.status_code == 302
        shown = _shown(response)
        assert shown == "No such crew member."
        assert stranger.username not in shown
        client.cookies.pop("messages", None)  # read: the next page starts without them
    assert list(WorkOrder.objects.values_list("pk", "crew_id")) == [(order.pk, None)]


def test_the_crew_picker_still_gives_an_order_to_a_crew_member_of_the_unit(client, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket)
    crew = staff[Role.FIELD_CREW]
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(reverse("admin:tickets_workorder_assign", args=[order.pk]), {"crew": str(crew.pk)})
    assert response.status_code == 302
    assert list(WorkOrder.objects.values_list("pk", "crew_id")) == [(order.pk, crew.pk)]


def test_the_api_refuses_an_account_of_another_corporation_as_the_admin_does(
    client, org, make_staff, outage_ticket, staff
):
    stranger = make_staff(Role.AGENT, [org["other_corporation"]], username="nv.khac.tong.cty")
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        f"/api/v1/tickets/{outage_ticket.pk}/work-orders/", {"crew": stranger.username}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "crew": ["No crew member with the username nv.khac.tong.cty among those you may send."]
    }
    assert not WorkOrder.objects.exists()


# A garbled selection on a list action ------------------------------------------------------------------------


@pytest.mark.parametrize("garbled", ["abc", "99999999999999999999999", "9223372036854775808", "", "1.5"])
def test_a_garbled_selection_on_the_work_orders_action_is_refused(client, outage_ticket, staff, garbled):
    order = work_order_create(actor=None, ticket=outage_ticket)
    client.raise_request_exception = False
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        "/admin/tickets/workorder/",
        {"action": "give_to_crew", "_selected_action": [str(order.pk), garbled]},
    )
    assert response.status_code == 302
    assert "nothing was done" in _shown(response)
    assert list(WorkOrder.objects.values_list("pk", "crew_id")) == [(order.pk, None)]


@pytest.mark.parametrize("garbled", ["abc", "99999999999999999999999"])
def test_a_garbled_selection_on_send_a_crew_is_refused(client, outage_ticket, staff, garbled):
    client.raise_request_exception = False
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        "/admin/tickets/ticket/",
        {"action": "send_crew", "_selected_action": [str(outage_ticket.pk), garbled]},
    )
    assert response.status_code == 302
    assert "nothing was done" in _shown(response)
    assert not WorkOrder.objects.exists()


def test_a_garbled_selection_on_an_action_without_a_page_changes_nothing(client, outage_ticket, staff):
    # the list's "Go" button posts ``index``: the action runs at once, and is refused the same way
    client.raise_request_exception = False
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        "/admin/tickets/ticket/",
        {"action": "acknowledge", "index": "0", "_selected_action": [str(outage_ticket.pk), "x"]},
    )
    assert response.status_code == 302
    assert "nothing was done" in _shown(response)
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.NEW


def test_a_whole_selection_still_opens_the_actions_page(client, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket)
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(
        "/admin/tickets/workorder/", {"action": "give_to_crew", "_selected_action": [str(order.pk)]}
    )
    assert response.status_code == 200
    assert f'value="{order.pk}"' in response.content.decode()


# The ticket page's work orders --------------------------------------------------------------------------------


def test_the_ticket_page_does_not_link_an_order_its_reader_cannot_open(client, org, make_staff, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket, crew=staff[Role.FIELD_CREW])
    ticket_reroute(actor=None, ticket=outage_ticket, unit=org["sibling"], reason="Sai địa bàn")
    order_page = reverse("admin:tickets_workorder_change", args=[order.pk])
    ticket_page = reverse("admin:tickets_ticket_change", args=[outage_ticket.pk])
    # the sibling's dispatcher cannot open the order's page: the ticket page names it without a link
    client.force_login(make_staff(Role.DISPATCHER, [org["sibling"]]))
    assert client.get(order_page).status_code == 302
    html = client.get(ticket_page).content.decode()
    assert f"{outage_ticket.number}/{order.pk}" in html
    assert f'href="{order_page}"' not in html
    # the home unit's supervisor, who sees both, is given the link
    client.force_login(staff[Role.SUPERVISOR])
    assert client.get(order_page).status_code == 200
    html = client.get(ticket_page).content.decode()
    assert f'href="{order_page}"' in html


# The work orders list's headers -----------------------------------------------------------------------------


def test_the_work_orders_list_has_no_english_column_header(client, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket, crew=staff[Role.FIELD_CREW])
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    for role in (Role.DISPATCHER, Role.FIELD_CREW):
        client.force_login(staff[role])
        page = client.get("/admin/tickets/workorder/")
        assert page.status_code == 200
        html = page.content.decode()
        header = re.search(r'<th[^>]*class="[^"]*column-contact_minutes[^"]*"[^>]*>(.*?)</th>', html, re.S)
        assert header is not None
        text = re.sub(r"<[^>]+>", " ", header.group(1)).strip()
        assert text == "Số phút đến khi gọi khách hàng"
        assert f"/admin/tickets/workorder/{order.pk}/change/" in html
