""""Assign to…" on tickets of several units (a supervisor's company queue) offers only staff who may take every
chosen ticket, as "Send a crew (work order)…" offers only crew members serving every chosen ticket's unit: a
name offered is not then refused for half the tickets."""

from __future__ import annotations

from django.contrib.messages import get_messages

from crm.models import Role
from tickets.models import Ticket
from tickets.services import ticket_open


def test_assign_to_offers_only_staff_who_serve_every_chosen_tickets_unit(
    client, org, staff, make_staff, make_customer, catalogue
):
    home_agent = make_staff(Role.AGENT, [org["home"]])
    sibling_agent = make_staff(Role.AGENT, [org["sibling"]])
    both_agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    tickets = [
        ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                    customer=make_customer(unit, phones=[phone])).ticket
        for unit, phone in ((org["home"], "0903 100 201"), (org["sibling"], "0903 100 202"))
    ]  # fmt: skip
    supervisor = staff[Role.SUPERVISOR]  # serves the home unit: sees every unit of its company
    client.force_login(supervisor)
    chosen = {"action": "assign", "_selected_action": [t.pk for t in tickets]}
    page = client.post("/admin/tickets/ticket/", chosen, HTTP_ACCEPT_LANGUAGE="vi")
    assert page.status_code == 200
    offered = set(page.context["form"].fields["assignee"].queryset.values_list("pk", flat=True))
    assert both_agent.pk in offered
    # who is offered can take all the chosen tickets
    assert home_agent.pk not in offered and sibling_agent.pk not in offered, offered

    # and picking a name offered gives every chosen ticket to them, none refused
    response = client.post("/admin/tickets/ticket/", {**chosen, "assignee": home_agent.pk}, HTTP_ACCEPT_LANGUAGE="vi")
    refused = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
    if home_agent.pk in offered:  # as the list offers them today
        assert not refused, refused
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("assignee", flat=True)) <= {
        None, both_agent.pk
    }
