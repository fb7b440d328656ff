"""The interactions list in Vietnamese: every column is headed in the interface's language, the handling time too
("handling time (seconds)", as the call form labels it), and the column shows the seconds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import Role
from tickets.services import interaction_log


@pytest.mark.django_db
def test_the_interactions_list_heads_its_handling_time_column_in_vietnamese(client, org, staff):
    agent = staff[Role.AGENT]
    now = timezone.now()
    interaction_log(actor=agent, channel="phone", started_at=now - dt.timedelta(seconds=95), ended_at=now,
                    disposition="information", unit=org["home"])  # fmt: skip
    client.force_login(staff[Role.SUPERVISOR])
    page = client.get("/admin/tickets/interaction/", HTTP_ACCEPT_LANGUAGE="vi")
    assert page.status_code == 200
    headers = [str(h["text"]) for h in page.context["result_headers"]]
    assert "Handling seconds" not in headers, headers
    assert "thời gian xử lý (giây)" in headers, headers
    assert '<td class="field-handling">95</td>' in page.content.decode()


@pytest.mark.django_db
def test_the_column_reads_in_english_in_english(client, staff):
    client.force_login(staff[Role.SUPERVISOR])
    page = client.get("/admin/tickets/interaction/", HTTP_ACCEPT_LANGUAGE="en")
    headers = [str(h["text"]) for h in page.context["result_headers"]]
    assert "handling time (seconds)" in headers, headers
