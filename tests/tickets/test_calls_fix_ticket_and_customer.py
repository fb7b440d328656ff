"""A call names a ticket and a customer that belong together (README): an unknown caller's ticket (no customer) of
another unit than the customer's is refused on ``ticket``, in the admin, the API and the service alike, and
nothing is logged; the same ticket with a customer of its unit (after merges) is taken."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import Role, Unit
from tickets.models import Interaction, Ticket
from tickets.services import interaction_check, interaction_record, ticket_open


def _unknown_callers_ticket(catalogue, unit):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         caller_name="Người gọi", caller_phone="0909 000 111", unit=unit).ticket  # fmt: skip
    assert ticket.customer_id is None and ticket.unit == unit
    return ticket


def _call(actor, **kw):
    now = timezone.now()
    return interaction_record(actor=actor, channel="phone", disposition="information",
                              started_at=now - dt.timedelta(minutes=1), ended_at=now, **kw)  # fmt: skip


@pytest.mark.django_db
def test_an_unknown_callers_ticket_of_another_unit_does_not_take_a_customer_of_this_one(
    org, make_staff, make_customer, catalogue, client
):
    home, sibling = org["home"], org["sibling"]
    agent = make_staff(Role.AGENT, [home, sibling])  # a call-taker serving two units
    customer = make_customer(home)
    ticket = _unknown_callers_ticket(catalogue, sibling)
    with pytest.raises(ValidationError) as refused:
        _call(agent, ticket=ticket, customer=customer)
    assert refused.value.message_dict == {"ticket": ["The ticket is not this customer's."]}
    assert Interaction.objects.count() == 0
    ticket.refresh_from_db()
    assert ticket.customer_id is None  # the ticket is left as it was
    # the sibling unit's staff see no call naming the home unit's customer
    client.force_login(make_staff(Role.AGENT, [sibling]))
    assert customer.code not in client.get("/admin/tickets/interaction/").content.decode()


@pytest.mark.django_db
def test_the_api_refuses_it_on_the_ticket_it_was_sent(org, make_staff, make_customer, catalogue, client):
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    customer = make_customer(org["home"])
    ticket = _unknown_callers_ticket(catalogue, org["sibling"])
    client.force_login(agent)
    response = client.post("/api/v1/interactions/", {
        "channel": "phone", "disposition": "information", "started_at": timezone.now().isoformat(),
        "handling_seconds": 30, "customer_code": customer.code, "ticket_number": ticket.number,
    }, content_type="application/json")  # fmt: skip
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["ticket_number"]
    assert Interaction.objects.count() == 0


@pytest.mark.django_db
def test_the_admin_form_shows_the_refusal_on_the_ticket(org, make_staff, make_customer, catalogue):
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    customer = make_customer(org["home"])
    ticket = _unknown_callers_ticket(catalogue, org["sibling"])
    now = timezone.now()
    with pytest.raises(ValidationError) as refused:
        interaction_check(actor=agent, started_at=now, ended_at=now, customer=customer, ticket=ticket)
    assert set(refused.value.message_dict) == {"ticket"}


@pytest.mark.django_db
def test_an_unknown_callers_ticket_of_the_customers_unit_takes_the_customer(org, make_staff, make_customer, catalogue):
    agent = make_staff(Role.AGENT, [org["home"]])
    customer = make_customer(org["home"])
    ticket = _unknown_callers_ticket(catalogue, org["home"])
    call = _call(agent, ticket=ticket, customer=customer)
    assert (call.unit, call.customer, call.ticket) == (org["home"], customer, ticket)


@pytest.mark.django_db
def test_an_unknown_callers_ticket_kept_in_a_merged_unit_takes_a_customer_of_its_successor(
    org, make_staff, make_customer, catalogue
):
    successor = org["other_corporation"]
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    ticket = _unknown_callers_ticket(catalogue, successor)
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)  # taken before the merge: it keeps its unit
    ticket.refresh_from_db()
    customer = make_customer(successor)
    call = _call(make_staff(Role.AGENT, [successor]), ticket=ticket, customer=customer)
    assert (call.unit, call.customer) == (successor, customer)  # one unit today: they belong together


@pytest.mark.django_db
def test_a_customers_own_ticket_in_another_unit_is_still_theirs(org, make_staff, make_customer, catalogue):
    """The unit rule is for an unknown caller's ticket only: a customer's ticket re-routed to another unit is
    still theirs, and the call follows the ticket."""
    customer = make_customer(org["home"])
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn",
                         customer=customer).ticket  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(unit=org["sibling"])
    ticket.refresh_from_db()
    call = _call(make_staff(Role.AGENT, [org["home"], org["sibling"]]), ticket=ticket, customer=customer)
    assert (call.unit, call.customer) == (org["sibling"], customer)
