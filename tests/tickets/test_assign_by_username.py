"""``POST /api/v1/tickets/<id>/assign/`` reads its assignee as the API's crew field reads a username: whatever its
case, among the active staff of the units the caller sees, with one refusal for anyone else."""

from __future__ import annotations

from crm.models import Role
from tickets.models import Ticket
from tickets.services import ticket_open


def _ticket(catalogue, customer):
    return ticket_open(
        actor=None,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn cao",
        customer=customer,
    ).ticket


def _assign(client, ticket, username):
    return client.post(
        f"/api/v1/tickets/{ticket.pk}/assign/", {"assignee": username}, content_type="application/json"
    )


def test_staff_of_other_corporations_an_account_that_left_and_nobody_are_refused_alike(
    client, org, staff, make_staff, make_customer, catalogue
):
    """The refusal must not tell who works where, nor who has left: a username of another corporation's staff,
    a deactivated one of the caller's own unit and an unknown one get the same answer, and the ticket stays
    unassigned."""
    ticket = _ticket(catalogue, make_customer())
    elsewhere = make_staff(Role.AGENT, [org["other_corporation"]], username="nv.xa")
    gone = make_staff(Role.AGENT, [org["home"]], username="nv.nghi")
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    client.force_login(staff[Role.DISPATCHER])
    answers = {
        name: _assign(client, ticket, name) for name in (elsewhere.username, gone.username, "nv.khong-co")
    }
    assert {name: response.status_code for name, response in answers.items()} == dict.fromkeys(answers, 400)
    assert {name: response.json() for name, response in answers.items()} == {
        name: {"assignee": [f"No member of staff of the units you see has the username {name}."]}
        for name in answers
    }
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None


def test_the_assignee_is_read_whatever_the_case_of_the_username(
    client, org, staff, make_staff, make_customer, catalogue
):
    """``NV.Lan`` is ``nv.lan``, as the crew field reads it."""
    ticket = _ticket(catalogue, make_customer())
    agent = make_staff(Role.AGENT, [org["home"]], username="nv.lan")
    client.force_login(staff[Role.DISPATCHER])
    response = _assign(client, ticket, " NV.Lan ")
    assert response.status_code == 200, response.json()
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == agent.pk


def test_staff_the_caller_sees_but_who_do_not_serve_the_ticket_are_refused_by_the_service(
    client, org, staff, make_staff, make_customer, catalogue
):
    """A supervisor sees the whole company: an agent of another unit of it is found, and the service says they
    do not serve the ticket's unit; nothing changes."""
    ticket = _ticket(catalogue, make_customer())
    sibling = org["home"].company.units.exclude(pk=org["home"].pk).first()
    neighbour = make_staff(Role.AGENT, [sibling], username="nv.ben")
    client.force_login(staff[Role.SUPERVISOR])
    response = _assign(client, ticket, neighbour.username)
    assert response.status_code == 400
    assert response.json() == {"assignee": ["The assignee does not serve the ticket's unit."]}
    assert Ticket.objects.get(pk=ticket.pk).assignee_id is None
