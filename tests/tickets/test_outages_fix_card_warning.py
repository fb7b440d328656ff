"""The card's one-click outage call warns the agent of the customer's open outage call, as the new-ticket form
does (both show the intake's warnings: README, intake "warns of an open ticket of the same category")."""

from __future__ import annotations

from django.utils import timezone

from crm.models import Role
from tickets.models import Ticket
from tickets.services import incident_open, ticket_open


def _call(catalogue, customer, category="outage"):
    return ticket_open(actor=None, category=catalogue[category], channel="phone", description="Mất điện",
                       customer=customer).ticket  # fmt: skip


def _click(client, incident, customer, **data):
    return client.post(f"/admin/tickets/ticket/report-outage/{incident.pk}/{customer.pk}/", data, follow=True)


def _warning(*numbers: str) -> str:
    return f"The customer already has an open ticket of this category: {', '.join(numbers)}"


def test_the_cards_outage_click_warns_of_the_customers_open_outage_call(client, org, make_customer, catalogue, staff):
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    first = _call(catalogue, customer)
    assert first.incident_id == incident.pk
    client.force_login(staff[Role.AGENT])
    response = _click(client, incident, customer)
    assert response.status_code == 200
    second = Ticket.objects.filter(customer=customer).exclude(pk=first.pk).get()  # the call is still taken
    assert second.incident_id == incident.pk
    shown = [str(m) for m in response.context["messages"]]
    assert _warning(first.number) in shown, shown
    assert f"Ticket {second.number} taken and linked to the outage." in shown


def test_the_new_ticket_form_shows_the_same_warning(client, org, make_customer, catalogue, staff):
    customer = make_customer()
    incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    first = _call(catalogue, customer)
    client.force_login(staff[Role.AGENT])
    response = client.post("/admin/tickets/ticket/add/", {
        "customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
        "description": "Vẫn mất điện",
    }, follow=True)  # fmt: skip
    assert _warning(first.number) in [str(m) for m in response.context["messages"]]


def test_no_warning_without_an_open_outage_call_nor_for_another_categorys_ticket(
    client, org, make_customer, catalogue, staff
):
    customer = make_customer()
    _call(catalogue, customer, category="billing")  # an open ticket of another category
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    response = _click(client, incident, customer)
    shown = [str(m) for m in response.context["messages"]]
    taken = Ticket.objects.get(customer=customer, incident=incident)
    assert shown == [f"Ticket {taken.number} taken and linked to the outage."]


def test_the_click_posted_twice_takes_one_ticket_and_warns_of_the_repeat_not_of_a_duplicate(
    client, org, make_customer, catalogue, staff
):
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    _click(client, incident, customer, submission_token="tok-1")
    again = _click(client, incident, customer, submission_token="tok-1")
    taken = Ticket.objects.get(customer=customer)
    assert [str(m) for m in again.context["messages"]] == [
        f"This call was already taken: ticket {taken.number}. No second ticket was taken."
    ]
