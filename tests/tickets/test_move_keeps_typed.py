"""A move of the ticket page refused by its service opens the page again with what was typed in its form (the
duplicate's number, the reason, the crew member and the note), once: the agent corrects it instead of typing it
again; a move that succeeds leaves the forms empty."""

from __future__ import annotations

import re

from django.urls import reverse

from crm.models import Role
from tickets.models import Status, WorkOrder
from tickets.services import ticket_change_status, ticket_open


def _open(catalogue, customer):
    return ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer
    ).ticket


def _form(page: str, key: str) -> str:
    return page.split(f'id="move-{key}"')[1].split("</form>")[0]


def test_a_refused_duplicate_keeps_the_typed_number_and_reason_once(client, staff, make_customer, catalogue):
    ticket = _open(catalogue, make_customer())
    client.force_login(staff[Role.SUPERVISOR])
    page_url = reverse("admin:tickets_ticket_change", args=[ticket.pk])
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]),
        {"move": "duplicate", "duplicate_of": "2026-9999999"},
        follow=True,
    )  # fmt: skip
    assert response.redirect_chain[-1][0] == page_url
    form = _form(response.content.decode(), "duplicate")
    assert 'value="2026-9999999"' in form
    ticket.refresh_from_db()
    assert (ticket.status, ticket.duplicate_of) == (Status.NEW, None)
    # Shown once: the next visit's forms are empty.
    again = _form(client.get(page_url).content.decode(), "duplicate")
    assert 'value="2026-9999999"' not in again


def test_a_refused_crew_keeps_the_picked_crew_member_and_the_note(client, org, make_staff, make_customer, catalogue):
    make_staff(Role.FIELD_CREW, [org["home"]], username="to.an")
    crew = make_staff(Role.FIELD_CREW, [org["home"]], username="to.binh")
    ticket = _open(catalogue, make_customer())
    client.force_login(make_staff(Role.DISPATCHER, [org["home"]], username="dp.home"))
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]),
        {"move": "send_crew", "crew": str(crew.pk), "note": "Mang thang\x00 dài"},
        follow=True,
    )  # fmt: skip
    assert not WorkOrder.objects.filter(ticket=ticket).exists()
    form = _form(response.content.decode(), "send_crew")
    assert re.findall(r'<option value="(\d*)" selected>', form) == [str(crew.pk)]
    assert 'value="Mang thang dài"' in form


def test_a_move_that_succeeds_leaves_the_forms_empty(client, staff, make_customer, catalogue):
    ticket = _open(catalogue, make_customer())
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    client.force_login(staff[Role.SUPERVISOR])
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]), {"move": "pending", "note": "Chờ khách gửi ảnh"},
        follow=True,
    )  # fmt: skip
    ticket.refresh_from_db()
    assert ticket.status == Status.PENDING_CUSTOMER
    assert "Chờ khách gửi ảnh" not in "".join(
        _form(response.content.decode(), m.key) for m in response.context["moves"] if not m.link
    )
