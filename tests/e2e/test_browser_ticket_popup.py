"""Logging a call (Interactions → Add) whose ticket is not taken yet: the "+" beside the ticket field opens the
new-ticket form in a popup. Saving it must close the popup and put the new ticket in the call's field (as every
"+" of the admin does), and the call must be logged once, not once by the ticket's own intake and again by the
form the agent is filling."""

import pytest

from crm.models import Role
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tickets.models import Ticket

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_plus_beside_the_ticket_of_a_call_returns_the_new_ticket_to_the_call_form(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    with_password(make_staff(Role.AGENT, [org["home"]], username="agent-popup"), "a-good-pass-p")
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "agent-popup", "a-good-pass-p")

    page.goto(f"{live_server.url}/admin/tickets/interaction/add/")
    page.select_option("#id_disposition", "ticket")
    page.fill("#id_handling_seconds", "120")
    page.fill("#id_note", "Khách báo mất điện, lập phiếu trong cuộc gọi")
    with page.expect_popup() as opened:
        page.click("#add_id_ticket")
    popup = opened.value
    popup.set_default_timeout(15_000)
    popup.wait_for_selector("#id_description")
    popup.evaluate(
        "(pk) => { const s = document.querySelector('#id_customer');"
        " s.add(new Option('customer', pk, true, true)); }",
        str(customer.pk),
    )
    popup.select_option("#id_category", str(catalogue["outage"].pk))
    popup.select_option("#id_channel", "phone")
    popup.fill("#id_description", "Mất điện cả dãy nhà")
    popup.click("input[name=_save]")

    ticket = None
    for _ in range(50):  # the ticket is saved, then the popup answers
        page.wait_for_timeout(100)
        ticket = Ticket.objects.first()
        if ticket is not None and popup.is_closed():
            break
    assert ticket is not None
    # The popup closes itself and hands the new ticket to the call being logged.
    assert popup.is_closed(), f"the popup stayed open on {popup.url}"
    assert page.input_value("#id_ticket") == str(ticket.pk)
    context.close()
