"""A billing clerk takes billing requests on the phone (``tickets.add_ticket``): the admin's new-ticket form and the
card's one-click outage call take the ticket and log its call, which the clerk's role may now log
(``tickets.add_interaction``, ``crm/roles.py``). An account that may take a ticket but not log a call still takes
it; its call is quietly not logged, never refused after the ticket was taken."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from crm.roles import group_name, sync_role_groups
from tickets.models import Interaction, Ticket
from tickets.services import incident_open


def _intake(client, customer, catalogue):
    return client.post(
        reverse("admin:tickets_ticket_add") + f"?customer={customer.pk}",
        {"customer": customer.pk, "category": catalogue["billing"].pk, "channel": "phone", "priority": "normal",
         "description": "Hóa đơn tháng này cao bất thường", "call_started_at": timezone.now().isoformat()},
    )  # fmt: skip


@pytest.mark.django_db
def test_the_clerks_group_may_log_calls_after_the_sync(staff):
    sync_role_groups()
    codenames = set(Group.objects.get(name=group_name(Role.BILLING_CLERK)).permissions.values_list("codename", flat=True))
    assert {"add_ticket", "add_interaction"} <= codenames
    assert staff[Role.BILLING_CLERK].has_perm("tickets.add_interaction")


@pytest.mark.django_db
def test_a_billing_clerk_takes_a_phone_ticket_in_the_admin(client, org, staff, make_customer, catalogue):
    clerk = staff[Role.BILLING_CLERK]
    assert clerk.has_perm("tickets.add_ticket")
    customer = make_customer()
    client.force_login(clerk)
    assert client.get(reverse("admin:tickets_ticket_add") + f"?customer={customer.pk}").status_code == 200
    response = _intake(client, customer, catalogue)
    assert response.status_code == 302, response.status_code
    ticket = Ticket.objects.get(customer=customer)
    # the call is logged as the clerk's, for the customer's unit, like an agent's phone intake
    call = Interaction.objects.get(ticket=ticket)
    assert (call.agent, call.unit, call.customer, call.disposition) == (clerk, org["home"], customer, "ticket")


@pytest.mark.django_db
def test_a_billing_clerks_outage_click_on_the_card_takes_the_call(client, org, staff, make_customer, catalogue):
    clerk = staff[Role.BILLING_CLERK]
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(clerk)
    response = client.post(f"/admin/tickets/ticket/report-outage/{incident.pk}/{customer.pk}/", {})
    assert response.status_code == 302
    shown = [str(m) for m in response.wsgi_request._messages]
    ticket = Ticket.objects.get(customer=customer)
    assert ticket.incident_id == incident.pk
    assert f"Ticket {ticket.number} taken and linked to the outage." in shown, shown
    assert not any("not allowed" in m for m in shown), shown
    assert Interaction.objects.filter(ticket=ticket, agent=clerk, unit=org["home"]).count() == 1


@pytest.fixture
def taker_without_calls(org, make_staff):
    """A clerk whose account holds its own group: the clerk's permissions without logging calls."""
    user = make_staff(Role.BILLING_CLERK, [org["home"]])
    own = Group.objects.create(name="clerks who log no calls")
    own.permissions.set(
        Group.objects.get(name=group_name(Role.BILLING_CLERK)).permissions.exclude(codename="add_interaction")
    )
    user.groups.set([own])
    user = type(user).objects.get(pk=user.pk)  # no cached permissions
    assert user.has_perm("tickets.add_ticket") and not user.has_perm("tickets.add_interaction")
    return user


@pytest.mark.django_db
def test_an_account_that_may_not_log_calls_takes_the_phone_ticket_without_its_call(
    client, taker_without_calls, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(taker_without_calls)
    response = _intake(client, customer, catalogue)
    assert response.status_code == 302, response.status_code
    assert Ticket.objects.filter(customer=customer).count() == 1
    assert Interaction.objects.count() == 0


@pytest.mark.django_db
def test_an_account_that_may_not_log_calls_is_told_the_outage_ticket_it_took(
    client, org, taker_without_calls, make_customer, catalogue
):
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(taker_without_calls)
    response = client.post(f"/admin/tickets/ticket/report-outage/{incident.pk}/{customer.pk}/", {})
    shown = [str(m) for m in response.wsgi_request._messages]
    ticket = Ticket.objects.get(customer=customer)
    assert f"Ticket {ticket.number} taken and linked to the outage." in shown, shown
    assert not any("not allowed" in m for m in shown), shown
    assert Interaction.objects.count() == 0
