"""The outage list (*Sự cố mất điện*) and the call list (*Lượt liên hệ*) at 1366 px, as agents and supervisors
open them while callers ask when the power comes back: every column readable without scrolling sideways, the
estimated restore time and the call's ticket included, times in local time."""

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import Role
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tickets.services import incident_open, interaction_record, ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_outage_list_fits_1366_px_with_its_restore_times(live_server, browser, org, make_staff):
    with_password(make_staff(Role.AGENT, [org["home"]], username="agent-outages"), "a-good-pass-o")
    now = timezone.now()
    incident_open(
        actor=None, unit=org["home"], cause="Sự cố trạm biến áp", started_at=now - dt.timedelta(hours=1),
        estimated_restore_at=now + dt.timedelta(hours=2), wards=["Phường Bến Nghé"],
    )  # fmt: skip
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "agent-outages", "a-good-pass-o")
    page.goto(f"{live_server.url}/admin/tickets/incident/")
    page.wait_for_selector("#result_list")
    overflow = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth - r.clientWidth; }"
    )
    assert overflow <= 0, f"the outage list is {overflow}px wider than the screen"
    # The estimated restore time, what the caller asks, is on screen.
    header = page.locator("#result_list thead th.column-estimated_restore")
    box, results = header.bounding_box(), page.locator("#changelist .results").bounding_box()
    assert box["x"] + box["width"] <= results["x"] + results["width"]
    # Shown compactly in local time, the full date on hover.
    restore = timezone.localtime(now + dt.timedelta(hours=2))
    cell = page.locator("#result_list tbody td.field-estimated_restore span")
    assert cell.inner_text() == f"{restore:%d/%m %H:%M}"
    assert cell.get_attribute("title") == f"{restore:%d/%m/%Y %H:%M}"
    context.close()


def test_the_call_list_fits_1366_px_with_its_ticket(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    supervisor = with_password(
        make_staff(Role.SUPERVISOR, [org["home"]], username="sup-calls"), "a-good-pass-c"
    )
    customer = make_customer(name="Nguyễn Thị Minh Khai Phương Thảo", phones=["0903 123 456"])
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    now = timezone.now()
    interaction_record(
        actor=supervisor, channel="phone", disposition="ticket", started_at=now - dt.timedelta(minutes=5),
        ended_at=now, customer=customer, ticket=ticket, note="Khách báo mất điện cả dãy nhà",
    )  # fmt: skip
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "sup-calls", "a-good-pass-c")
    page.goto(f"{live_server.url}/admin/tickets/interaction/")
    page.wait_for_selector("#result_list")
    overflow = page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth - r.clientWidth; }"
    )
    assert overflow <= 0, f"the call list is {overflow}px wider than the screen"
    cell = page.locator("#result_list tbody td.field-ticket")
    box, results = cell.bounding_box(), page.locator("#changelist .results").bounding_box()
    assert box["x"] + box["width"] <= results["x"] + results["width"]
    assert cell.inner_text() == ticket.number
    context.close()
