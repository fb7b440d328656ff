"""Times named in the titles of records are the centre's local time (Asia/Ho_Chi_Minh), as every other time on
the page: an outage that began at 04:30 is not shown as 21:30 of the day before in its page's title and
breadcrumbs, and a note written on a ticket is not stamped seven hours early in the ticket's notes."""

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import Role
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tickets.services import incident_open, ticket_add_note, ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_outage_page_and_the_ticket_notes_name_their_times_in_local_time(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    supervisor = with_password(
        make_staff(Role.SUPERVISOR, [org["home"]], username="sup-utc"), "a-good-pass-u"
    )
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    started = timezone.make_aware(dt.datetime.combine(yesterday, dt.time(4, 30)))  # 04:30 local = 21:30 UTC
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm biến áp", started_at=started)
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    note = ticket_add_note(actor=supervisor, ticket=ticket, body="Đã gọi khách, hẹn 15 giờ")
    context = browser.new_context(locale="vi-VN", viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "sup-utc", "a-good-pass-u")

    page.goto(f"{live_server.url}/admin/tickets/incident/{incident.pk}/change/")
    utc = f"{started.astimezone(dt.UTC):%Y-%m-%d %H:%M}"
    shown = page.title() + " " + page.inner_text(".breadcrumbs")
    assert utc not in shown, f"the outage's start is shown in UTC: {shown!r}"
    assert "04:30" in shown

    page.goto(f"{live_server.url}/admin/tickets/ticket/{ticket.pk}/change/")
    notes = page.inner_text("#notes-group")
    assert "Đã gọi khách, hẹn 15 giờ" in notes
    written_utc = f"{note.created_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}"
    assert written_utc not in notes, f"the note is stamped in UTC: {notes!r}"
    context.close()
