"""What the browser audit found, shown faster through the Django test client (in Vietnamese): a new ticket saved
from the "+" beside a call's ticket field answers the popup; "Save and add another" opens an empty form; record
titles name their times in local time; the outage and call lists show compact local times without the
navigation sidebar (their fit at 1366 px is checked in a browser, tests/e2e/test_browser_outage_list_1366.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from core.times import local_stamp
from crm.models import Role
from tickets.models import Interaction, Ticket
from tickets.services import incident_open, interaction_record, ticket_add_note, ticket_open


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    return client


@pytest.fixture
def agent(staff):
    return staff[Role.AGENT]


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _new_ticket(customer, catalogue, **extra):
    return {
        "customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
        "description": "Mất điện cả dãy nhà", "call_started_at": timezone.now().isoformat(), **extra,
    }  # fmt: skip


def _local(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute)))


def test_a_new_ticket_saved_in_the_popup_of_a_call_hands_the_ticket_to_the_calls_field(
    client, agent, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(agent)
    url = reverse("admin:tickets_ticket_add") + "?_to_field=id&_popup=1"
    response = client.post(url, _new_ticket(customer, catalogue, _popup="1", _to_field="id", _save="Lưu lại"))
    ticket = Ticket.objects.get()
    # Django's popup answer: the page that closes the popup and puts the ticket in the opener's field.
    assert response.status_code == 200
    assert "admin/popup_response.html" in [t.name for t in response.templates]
    data = json.loads(response.context["popup_response_data"])
    assert data == {"value": str(ticket.pk), "obj": ticket.number}
    # the ticket is for the call being logged in the opener: its intake logs no second call
    assert not Interaction.objects.filter(ticket=ticket).exists()
    # a phone ticket taken on its own page logs its call, once
    client.post(reverse("admin:tickets_ticket_add"), _new_ticket(customer, catalogue, _save="Lưu lại"))
    other = Ticket.objects.exclude(pk=ticket.pk).get()
    assert Interaction.objects.filter(ticket=other).count() == 1


def test_save_and_add_another_opens_an_empty_new_ticket_form_after_naming_the_number(
    client, agent, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(agent)
    response = client.post(
        reverse("admin:tickets_ticket_add"), _new_ticket(customer, catalogue, _addanother="1"), follow=True
    )
    ticket = Ticket.objects.get()
    assert response.redirect_chain == [(reverse("admin:tickets_ticket_add"), 302)]
    assert f"Đã tạo phiếu {ticket.number}." in _messages(response)
    assert response.context["adminform"].form.instance.pk is None  # a blank form for the next caller
    assert Interaction.objects.filter(ticket=ticket).count() == 1


def test_save_and_continue_and_the_plain_save_open_the_new_ticket(client, agent, make_customer, catalogue):
    customer = make_customer()
    client.force_login(agent)
    for button in ("_continue", "_save"):
        response = client.post(
            reverse("admin:tickets_ticket_add"), _new_ticket(customer, catalogue, **{button: "1"})
        )
        ticket = Ticket.objects.order_by("-pk").first()
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:tickets_ticket_change", args=[ticket.pk])
    assert Ticket.objects.count() == 2


def test_local_stamp_names_a_moment_in_local_time():
    at = dt.datetime(2026, 12, 6, 21, 30, 5, tzinfo=dt.UTC)  # 04:30 of the 7th in Hồ Chí Minh City
    assert local_stamp(at) == "07/12/2026 04:30"
    assert local_stamp(at, seconds=True) == "07/12/2026 04:30:05"
    assert local_stamp(None) == ""


def test_outage_note_event_and_call_titles_are_in_local_time(org, staff, make_customer, catalogue):
    supervisor = staff[Role.SUPERVISOR]
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    started = _local(yesterday, 4, 30)  # 21:30 UTC of the day before
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm biến áp", started_at=started)
    assert str(incident) == f"PE0100 {yesterday:%d/%m/%Y} 04:30 Sự cố trạm biến áp"
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    note = ticket_add_note(actor=supervisor, ticket=ticket, body="Đã gọi khách")
    assert str(note).endswith(f"@ {timezone.localtime(note.created_at):%d/%m/%Y %H:%M}")
    event = ticket.events.get(kind="created")
    assert str(event).endswith(f"@ {timezone.localtime(event.at):%d/%m/%Y %H:%M}")
    call = interaction_record(
        actor=supervisor, channel="phone", disposition="information", started_at=started,
        ended_at=started + dt.timedelta(minutes=2), unit=org["home"],
    )  # fmt: skip
    assert str(call).endswith(f"{yesterday:%d/%m/%Y} 04:30")


def test_the_outage_list_shows_its_times_compactly_in_local_time_without_the_sidebar(client, org, staff):
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    incident_open(
        actor=None, unit=org["home"], cause="Sự cố trạm biến áp", started_at=_local(yesterday, 4, 30),
        estimated_restore_at=_local(yesterday, 23, 45),
    )  # fmt: skip
    client.force_login(staff[Role.SUPERVISOR])
    page = client.get(reverse("admin:tickets_incident_changelist")).content.decode()
    assert f'<span title="{yesterday:%d/%m/%Y} 04:30">{yesterday:%d/%m} 04:30</span>' in page
    assert f'<span title="{yesterday:%d/%m/%Y} 23:45">{yesterday:%d/%m} 23:45</span>' in page
    assert "column-estimated_restore" in page
    assert "tickets/lists.css" in page and 'id="nav-sidebar"' not in page


def test_the_call_list_names_the_customer_and_the_ticket_compactly(client, agent, make_customer, catalogue):
    customer = make_customer(name="Nguyễn Thị Minh Khai Phương Thảo")
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    started = timezone.localtime() - dt.timedelta(minutes=3)
    interaction_record(
        actor=agent, channel="phone", disposition="ticket", started_at=started, ended_at=timezone.now(),
        customer=customer, ticket=ticket,
    )  # fmt: skip
    client.force_login(agent)
    page = client.get(reverse("admin:tickets_interaction_changelist")).content.decode()
    assert f'<span title="{started:%d/%m/%Y %H:%M}">{started:%d/%m %H:%M}</span>' in page
    assert f'<span class="cell" title="{customer}">{customer}</span>' in page
    assert f">{ticket.number}<" in page
    assert "tickets/lists.css" in page and 'id="nav-sidebar"' not in page
