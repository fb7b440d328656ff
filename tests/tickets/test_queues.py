"""The ticket queues (the ticket changelist): the columns an agent needs with the time left to the next
deadline, a constant number of queries whatever the rows, and a page that refreshes itself (a script file)."""

import datetime as dt
import re
from pathlib import Path

from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from crm.models import Role
from tickets import selectors
from tickets.models import Ticket
from tickets.services import ticket_assign, ticket_change_status, ticket_open

URL = "admin:tickets_ticket_changelist"


def _columns(page) -> list[str]:
    return [re.sub(r"\s+", " ", c).strip() for c in re.findall(r'<th scope="col" class="[^"]*column-(\w+)', page)]


def test_the_queue_shows_the_columns_an_agent_needs_with_the_time_left(client, staff, make_customer, catalogue):
    customer = make_customer(name="Phạm Thị Lan")
    agent = staff[Role.AGENT]
    at = timezone.now() - dt.timedelta(minutes=2)
    ticket = ticket_open(
        actor=agent, category=catalogue["outage"], channel="zalo", description="Mất điện", customer=customer, at=at
    ).ticket  # fmt: skip
    ticket_assign(actor=agent, ticket=ticket, assignee=agent)
    client.force_login(agent)
    response = client.get(reverse(URL), {"queue": "open"})
    page = response.content.decode()
    assert _columns(page) == [
        "number", "who", "category", "status", "unit_code", "channel", "received", "time_left", "level",
        "assignee",
    ]  # fmt: skip
    row = page.split(f">{ticket.number}</a>")[1].split("</tr>")[0]
    assert f"{customer.code} Phạm Thị Lan" in row and ticket.unit.code in row and "Zalo" in row
    assert agent.username in row
    # Acknowledge is due 3 minutes after intake (the default policy): 1 minute left, the earliest deadline.
    assert selectors.next_deadline(ticket) == ("acknowledge", ticket.acknowledge_due)
    assert re.search(r'class="due soon" title="[^"]+">[12] min left<', row), row
    ticket_change_status(actor=agent, ticket=ticket, to="acknowledged")
    ticket.refresh_from_db()
    assert selectors.next_deadline(ticket)[1] == ticket.contact_due  # the next target not yet met
    Ticket.objects.filter(pk=ticket.pk).update(contact_due=timezone.now() - dt.timedelta(hours=1, minutes=5))
    row = client.get(reverse(URL)).content.decode().split(f">{ticket.number}</a>")[1].split("</tr>")[0]
    assert re.search(r'class="due late" title="[^"]+">1 h [56] min late<', row), row


def test_the_time_left_waits_while_the_customer_is_awaited_and_ends_with_the_ticket(staff, make_customer, catalogue):
    from django.contrib.admin import site

    columns = site.get_model_admin(Ticket)
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="app", description="Hóa đơn", customer=make_customer()
    ).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to="acknowledged")
    ticket_change_status(actor=None, ticket=ticket, to="pending_customer")
    ticket.refresh_from_db()
    assert "waiting for the customer" in columns.time_left(ticket)
    ticket_change_status(actor=None, ticket=ticket, to="in_progress")
    ticket_change_status(actor=None, ticket=ticket, to="resolved")
    ticket.refresh_from_db()
    assert selectors.next_deadline(ticket) is None and columns.time_left(ticket) == "—"
    assert selectors.duration_text(dt.timedelta(days=2, hours=3, minutes=4)) == "2 d 3 h"
    with translation.override("vi"):
        assert selectors.duration_text(dt.timedelta(hours=1, minutes=20)) == "1 giờ 20 phút"


def test_the_queue_reads_a_constant_number_of_queries_for_1_or_30_rows(client, staff, make_customer, catalogue):
    agent = staff[Role.SUPERVISOR]
    customers = [make_customer(name=f"Khách {i}", phones=[f"0903 000 {i:03d}"]) for i in range(3)]
    first = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="x", customer=customers[0]
    ).ticket  # fmt: skip
    ticket_assign(actor=agent, ticket=first, assignee=agent)
    client.force_login(agent)
    with CaptureQueriesContext(connection) as one:
        response = client.get(reverse(URL))
    assert len(response.context["cl"].result_list) == 1
    for i in range(29):
        ticket = ticket_open(
            actor=None, category=catalogue["billing" if i % 2 else "meter"], channel="app", description="y",
            customer=customers[i % 3], unit=None,
        ).ticket  # fmt: skip
        if i % 3 == 0:
            ticket_assign(actor=agent, ticket=ticket, assignee=agent)
    with CaptureQueriesContext(connection) as thirty:
        response = client.get(reverse(URL))
    assert len(response.context["cl"].result_list) == 30
    assert len(one) == len(thirty), [q["sql"] for q in thirty.captured_queries]


def test_the_queue_refreshes_itself_from_a_script_file_under_the_policy(client, staff):
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse(URL), {"queue": "open", "status": "new"})
    page = response.content.decode()
    tag = re.search(r'<script src="([^"]+queue_refresh\.js)" data-refresh-seconds="30" defer></script>', page)
    assert tag, "the queue's page loads the refresh script"
    assert "/static/tickets/queue.css" in page
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    script = Path(finders.find("tickets/queue_refresh.js")).read_text(encoding="utf-8")
    # It reloads the page's own address (so the filters stay) and waits while the user types or selects.
    assert "window.location.replace(window.location.href" in script
    assert "activeElement" in script and "action-select:checked" in script
    # The change page of a ticket does not refresh itself (an agent writes there).
    assert "queue_refresh.js" not in client.get(reverse("admin:tickets_ticket_add")).content.decode()


def test_the_escalation_filter_names_who_hears_of_each_level_and_reads_no_levels_from_the_tickets(
    client, staff, make_customer, catalogue
):
    supervisor = staff[Role.SUPERVISOR]
    opened = [
        ticket_open(actor=None, category=catalogue["outage"], channel="app", description=f"Sự cố {i}",
                    customer=make_customer(phones=[f"0903 400 00{i}"])).ticket
        for i in range(3)
    ]  # fmt: skip
    Ticket.objects.filter(pk=opened[1].pk).update(escalation_level=2)
    client.force_login(supervisor)
    with translation.override("vi"), CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(URL), {"escalation_level__exact": "2"}, HTTP_ACCEPT_LANGUAGE="vi")
    assert [t.pk for t in response.context["cl"].result_list] == [opened[1].pk]
    page = response.content.decode()
    assert "2: giám sát viên của công ty" in page and "Chưa chuyển cấp" in page
    assert not any("DISTINCT" in q["sql"] and "escalation_level" in q["sql"] for q in ctx.captured_queries)
    not_escalated = client.get(reverse(URL), {"escalation_level__exact": "0"}).context["cl"].result_list
    assert {t.pk for t in not_escalated} == {opened[0].pk, opened[2].pk}
