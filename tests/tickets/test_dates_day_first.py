"""The ticket page's deadlines and timeline, in Vietnamese, write a moment as it is typed and as record titles
give it: day first, 08/12/2026 05:20 (Django's own Vietnamese short format reads 05:20 08-12-2026)."""

import re

from django.urls import reverse
from django.utils import formats, timezone, translation

from core.times import local_stamp
from crm.models import Role
from tickets.services import ticket_open


def test_the_ticket_page_writes_its_deadlines_and_timeline_day_first_in_vietnamese(
    client, staff, make_customer, catalogue
):
    agent = staff[Role.AGENT]
    ticket = ticket_open(
        actor=agent, category=catalogue["outage"], channel="phone", description="Mất điện", customer=make_customer()
    ).ticket  # fmt: skip
    client.force_login(agent)
    page = client.get(
        reverse("admin:tickets_ticket_change", args=[ticket.pk]), HTTP_ACCEPT_LANGUAGE="vi"
    ).content.decode()
    due = local_stamp(ticket.acknowledge_due)
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", due)
    assert f"<td>{due}</td>" in page
    assert f"<td>{local_stamp(ticket.events.earliest('at').at)}</td>" in page  # the timeline
    assert not re.search(r"\d\d:\d\d \d\d-\d\d-\d{4}", page)
    with translation.override("vi"):
        assert formats.date_format(timezone.localdate(), "SHORT_DATE_FORMAT") == timezone.localdate().strftime(
            "%d/%m/%Y"
        )
