"""A change page names the records it refers to (a ticket's assignee, an interaction's agent, a correction's
proposer) as links only for those who may open their pages (``crm.admin_base.RelatedShown``); for anyone else
the name is plain text, never a link to a page that refuses them (403)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Adjustment, Invoice
from crm.models import Role
from tickets import services as services_t
from tickets.services import ticket_open

CHANGE_LINK = re.compile(r'href="(/admin/\w+/\w+/\d+/change/)"')


def _page(client, user, url):
    client.force_login(user)
    answer = client.get(url, HTTP_ACCEPT_LANGUAGE="vi")
    assert answer.status_code == 200
    return answer.content.decode()


def _refused_links(client, html) -> list[str]:
    """The links to records' pages on the page that refuse the person reading it."""
    return [href for href in sorted(set(CHANGE_LINK.findall(html))) if client.get(href).status_code == 403]


def _user_link(user) -> str:
    return f'href="{reverse("admin:auth_user_change", args=[user.pk])}"'


def _readonly_value(html, field) -> str:
    """What a change page shows for a read-only field (its ``field-<name>`` row's ``readonly`` box)."""
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, field
    return match.group(1).strip()


@pytest.fixture
def assigned_ticket(staff, make_customer, catalogue):
    agent = staff[Role.AGENT]
    ticket = ticket_open(
        actor=agent,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn cao",
        customer=make_customer(),
    ).ticket
    services_t.ticket_assign(actor=agent, ticket=ticket, assignee=agent)
    return ticket


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.DISPATCHER])
def test_the_ticket_page_names_the_assignee_without_a_link_the_reader_is_refused(
    client, staff, assigned_ticket, role
):
    html = _page(client, staff[role], reverse("admin:tickets_ticket_change", args=[assigned_ticket.pk]))
    assert _refused_links(client, html) == []
    agent = staff[Role.AGENT]
    assert _readonly_value(html, "assignee") == agent.username
    assert _user_link(agent) not in html
    # the records they may open stay links: the customer, the category
    customer_url = reverse("admin:customers_customer_change", args=[assigned_ticket.customer_id])
    assert _readonly_value(html, "customer") == f'<a href="{customer_url}">{assigned_ticket.customer}</a>'


def test_the_administrator_still_reaches_the_assignees_account_from_the_ticket(
    client, staff, assigned_ticket
):
    html = _page(
        client, staff[Role.ADMINISTRATOR], reverse("admin:tickets_ticket_change", args=[assigned_ticket.pk])
    )
    agent = staff[Role.AGENT]
    url = reverse("admin:auth_user_change", args=[agent.pk])
    assert _readonly_value(html, "assignee") == f'<a href="{url}">{agent.username}</a>'
    assert client.get(url).status_code == 200


def test_the_interaction_page_names_the_agent_without_a_link_for_the_manager(client, staff, make_customer):
    customer, agent = make_customer(), staff[Role.AGENT]
    now = timezone.now()
    interaction = services_t.interaction_log(
        actor=agent, channel="phone", started_at=now, ended_at=now, disposition="information",
        unit=customer.unit, customer=customer,
    )  # fmt: skip
    html = _page(
        client, staff[Role.MANAGER], reverse("admin:tickets_interaction_change", args=[interaction.pk])
    )
    assert _refused_links(client, html) == []
    assert _readonly_value(html, "agent") == agent.username
    assert _user_link(agent) not in html


def test_the_callback_page_names_the_agent_without_a_link_for_the_billing_clerk(
    client, staff, make_customer, catalogue
):
    agent = staff[Role.AGENT]
    ticket = ticket_open(
        actor=agent,
        category=catalogue["billing"],
        channel="phone",
        description="Hóa đơn cao",
        customer=make_customer(),
    ).ticket
    services_t.ticket_change_status(actor=agent, ticket=ticket, to="acknowledged")
    services_t.ticket_change_status(actor=agent, ticket=ticket, to="resolved")
    callback = services_t.callback_record(actor=agent, ticket=ticket, reached=False)
    html = _page(
        client, staff[Role.BILLING_CLERK], reverse("admin:tickets_callback_change", args=[callback.pk])
    )
    assert _refused_links(client, html) == []
    assert _readonly_value(html, "agent") == agent.username
    assert _user_link(agent) not in html


def test_the_work_order_page_names_the_crew_member_without_a_link_for_the_dispatcher(
    client, staff, assigned_ticket
):
    crew = staff[Role.FIELD_CREW]
    order = services_t.work_order_create(actor=staff[Role.DISPATCHER], ticket=assigned_ticket, crew=crew)
    html = _page(client, staff[Role.DISPATCHER], reverse("admin:tickets_workorder_change", args=[order.pk]))
    assert _refused_links(client, html) == []
    assert _readonly_value(html, "crew") == crew.username
    assert _user_link(crew) not in html


def test_the_invoices_corrections_name_their_clerks_without_a_link_for_the_billing_clerk(
    client, staff, two_customers
):
    mine, _theirs = two_customers
    invoice = Invoice.objects.get(customer=mine, adjusts=None, corrections__isnull=False)
    correction = Adjustment.objects.get(original=invoice)
    html = _page(
        client, staff[Role.BILLING_CLERK], reverse("admin:billing_invoice_change", args=[invoice.pk])
    )
    assert _refused_links(client, html) == []
    for field in ("proposed_by", "decided_by"):
        clerk = getattr(correction, field)
        cell = re.search(rf'<td class="field-{field}">\s*<p>(.*?)</p>', html, re.S)
        assert cell and cell.group(1).strip() == clerk.username
        assert _user_link(clerk) not in html


def test_a_users_own_token_page_names_its_user_and_maker_without_links_they_would_be_refused(client, staff):
    from crm.tokens import api_token_create

    agent, administrator = staff[Role.AGENT], staff[Role.ADMINISTRATOR]
    token, _secret = api_token_create(actor=administrator, user=agent, name="softphone", days=30)
    url = reverse("admin:crm_apitoken_change", args=[token.pk])
    html = _page(client, agent, url)
    assert _refused_links(client, html) == []
    assert _user_link(agent) not in html and _user_link(administrator) not in html
    assert agent.username in _readonly_value(html, "user")
    # the administrator, who may open both accounts, still reaches them from the token
    html = _page(client, administrator, url)
    assert _user_link(agent) in html and _user_link(administrator) in html
