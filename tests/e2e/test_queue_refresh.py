"""The ticket queue in a browser at 1366 px: every column fits, and the page reloads itself every 30 seconds at
its own address (filters kept), but not while the agent is typing in the search box (the browser's clock is
driven by Playwright, so the test does not wait 30 real seconds)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Role
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tickets.services import ticket_assign, ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_queue_fits_1366_px_and_refreshes_itself_keeping_its_filters(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    agent = with_password(make_staff(Role.AGENT, [org["home"]], username="agent-queue"), "a-good-pass-q")
    customer = make_customer(name="Nguyễn Thị Minh Khai Phương", phones=["0903 123 456"])
    for channel in ("phone", "zalo", "website"):
        ticket = ticket_open(
            actor=agent, category=catalogue["outage"], channel=channel, description="Mất điện", customer=customer,
            at=timezone.now(),
        ).ticket  # fmt: skip
        ticket_assign(actor=agent, ticket=ticket, assignee=agent)
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.clock.install()
    log_in(page, live_server, "agent-queue", "a-good-pass-q")
    queue = f"{live_server.url}/admin/tickets/ticket/?channel__exact=phone&queue=open"
    page.goto(queue)
    assert page.locator("#result_list tbody tr").count() == 1
    # Every column readable without scrolling sideways at 1366 px.
    overflow = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth - r.clientWidth; }"
    )
    assert overflow <= 0, f"the queue is {overflow}px wider than the screen"
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert len(headers) == 11  # the tick box and the ten columns

    page.evaluate("() => { window.notReloaded = true; }")
    page.clock.run_for(31_000)
    page.wait_for_function("() => window.notReloaded === undefined")
    page.wait_for_load_state()
    assert page.url == queue  # the same queue and filters
    assert page.locator("#result_list tbody tr").count() == 1

    # While the agent types in the search box, the page waits.
    page.evaluate("() => { window.notReloaded = true; }")
    page.click("#searchbar")
    page.keyboard.type("2026")
    page.clock.run_for(31_000)
    assert page.evaluate("() => window.notReloaded") is True
    assert page.input_value("#searchbar") == "2026"
    # Nor while a ticket's number is selected (to copy it); once the agent is done, it reloads.
    page.evaluate(
        "() => { document.activeElement.blur(); const r = document.createRange();"
        " r.selectNodeContents(document.querySelector('th.field-number a'));"
        " window.getSelection().removeAllRanges(); window.getSelection().addRange(r); }"
    )
    page.clock.run_for(31_000)
    assert page.evaluate("() => window.notReloaded") is True
    page.evaluate("() => { window.getSelection().removeAllRanges(); }")
    page.clock.run_for(6_000)
    page.wait_for_function("() => window.notReloaded === undefined")
    assert not [e for e in errors if "Content-Security-Policy" in e or "Content Security Policy" in e]
    context.close()
