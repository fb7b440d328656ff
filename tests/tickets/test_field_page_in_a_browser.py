"""The field crew's page on a phone, in a real browser: an order is called off by tapping, with a reason the
page asks for before anything is sent."""

from __future__ import annotations

import pytest

from crm.models import Role
from tests.e2e.conftest import browser, issued_bills_flushable, log_in, needs_chromium, with_password  # noqa: F401
from tickets.models import Status, Ticket, WorkOrder, WorkOrderStatus
from tickets.services import ticket_open, work_order_create

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "locale": "vi-VN"}


def test_the_crew_calls_an_order_off_on_a_phone_by_tapping(live_server, browser, org, make_staff,  # noqa: F811
                                                         make_customer, catalogue):  # fmt: skip
    # given an order sent to a crew member, who opens /field/ on a phone
    crew = with_password(make_staff(Role.FIELD_CREW, [org["home"]], username="crew-phone"), "a-good-pass-c")
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "crew-phone", "a-good-pass-c")
    page.goto(f"{live_server.url}/field/")
    # then the page fits the phone's width; the reason spans the card, and the button is finger-sized like the
    # page's other steps (the field stylesheet's buttons)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    note = page.locator(f"#cancel-note-{order.pk}")
    button = page.locator(f"#cancel-{order.pk} button[value=cancelled]")
    step = page.locator(f"#order-{order.pk} button[value=acknowledged]")
    assert abs(button.bounding_box()["height"] - step.bounding_box()["height"]) <= 2
    assert button.bounding_box()["height"] >= 36
    assert note.bounding_box()["height"] >= 36 and note.bounding_box()["width"] >= 300
    # when the crew taps "call off" without a reason, the browser asks for one and nothing is sent
    button.tap()
    page.wait_for_timeout(300)
    assert not note.evaluate("n => n.validity.valid")
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ISSUED
    # when they type the reason and tap again
    note.tap()
    note.fill("Khách báo đã có điện")
    button.tap()
    page.wait_for_selector(f"#order-{order.pk}", state="detached")
    # then the order is cancelled with the reason and the ticket is back with the dispatchers
    order.refresh_from_db()
    assert (order.status, order.note) == (WorkOrderStatus.CANCELLED, "Khách báo đã có điện")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.ACKNOWLEDGED
    context.close()
