"""The agent's path in a real browser (Playwright driving the system's Chromium, headless):
log in, look up a caller by phone, open the card, take a ticket, see it in the queue."""

import os
import shutil

import pytest

from crm.models import Role
from tickets.models import Ticket

CHROMIUM = os.environ.get("TONGDAI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}: install Debian's chromium"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield browser
        browser.close()


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
    page.wait_for_selector("#lookup-results")
    assert page.locator("#lookup-results tbody tr").count() == 1
    page.click(f"#lookup-results a:has-text('{customer.code}')")
    page.wait_for_selector("#card-code")
    assert page.inner_text("#card-code") == customer.code

    page.click("#card-tickets a.button")
    page.wait_for_selector("#id_description")
    page.select_option("#id_category", str(catalogue["outage"].pk))
    page.fill("#id_description", "Mất điện cả dãy nhà từ 14 giờ")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")

    ticket = Ticket.objects.get()
    assert (ticket.customer_id, ticket.created_by_id, ticket.unit_id) == (
        customer.pk,
        agent.pk,
        customer.unit_id,
    )
    page.goto(f"{live_server.url}/admin/tickets/ticket/?queue=open")
    assert ticket.number in page.inner_text("#result_list")
