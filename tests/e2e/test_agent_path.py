"""The agent's path in a real browser (Playwright driving the system's Chromium, headless):
log in, look up a caller by phone, open the card, take a ticket (it opens, numbered and assigned to the
agent), see it in the queue."""

import pytest

from crm.models import Role
from tests.e2e.conftest import needs_chromium
from tickets.models import Ticket

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_agent_finds_the_caller_takes_a_ticket_and_sees_it_in_the_queue(live_server, browser, org, make_staff,
                                                                         make_customer, catalogue):  # fmt: skip
    agent = make_staff(Role.AGENT, [org["home"]], username="agent22")
    agent.set_password("a-good-pass-22")
    agent.save()
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    page = browser.new_page(locale="en-US")
    page.set_default_timeout(15_000)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "agent22")
    page.fill("#id_password", "a-good-pass-22")
    page.click("input[type=submit]")
    page.fill("#caller-lookup-module input[name=q]", "84-903-123-456")
    page.click("#caller-lookup-module input[type=submit]")
    page.wait_for_selector("#card-code")  # one exact match: the card opens at once
    assert page.inner_text("#card-code") == customer.code

    page.click("#card-tickets a.button")
    page.wait_for_selector("#id_description")
    page.select_option("#id_category", str(catalogue["outage"].pk))
    page.fill("#id_description", "Mất điện cả dãy nhà từ 14 giờ")
    page.click("input[name=_save]")
    page.wait_for_selector("#ticket-moves")  # the new ticket's own page, its number in the message

    ticket = Ticket.objects.get()
    assert f"Ticket {ticket.number} created." in page.inner_text(".messagelist")
    assert (ticket.customer_id, ticket.created_by_id, ticket.unit_id, ticket.assignee_id) == (
        customer.pk,
        agent.pk,
        customer.unit_id,
        agent.pk,
    )
    page.goto(f"{live_server.url}/admin/tickets/ticket/?queue=open")
    assert ticket.number in page.inner_text("#result_list")
