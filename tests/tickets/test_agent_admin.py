"""The call-centre agent's day in the admin, through the Django test client (in Vietnamese, the interface's
language): callbacks, interactions, the moves on the ticket page, saving a new ticket, intake from the card."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Role
from tickets.models import Callback, Status, Ticket
from tickets.services import ticket_change_status, ticket_open


@pytest.fixture
def client(client):
    """The test client speaking Vietnamese, as the centre's staff do (the tests' settings default to English)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    return client


@pytest.fixture
def agent(staff):
    return staff[Role.AGENT]


def _resolved(catalogue, customer, description="Mất điện"):
    ticket = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description=description, customer=customer
    ).ticket
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    return ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# 5. Callbacks -------------------------------------------------------------------------------------------


def test_the_callbacks_due_queue_lists_the_resolved_tickets_of_the_agents_units_with_one_click_to_the_survey(
    client, agent, org, make_customer, catalogue
):
    # given two resolved tickets in the agent's unit and one in another corporation
    mine = [_resolved(catalogue, make_customer(phones=[f"0903 000 10{i}"])) for i in range(2)]
    theirs = _resolved(catalogue, make_customer(org["other_corporation"], phones=["0903 999 000"]))
    client.force_login(agent)
    client.get(reverse("admin:tickets_ticket_callbacks"))  # warm the session and the permissions
    # when
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("admin:tickets_ticket_callbacks"))
    # then
    page = response.content.decode()
    assert response.status_code == 200
    assert "Đến hạn gọi lại khảo sát" in page
    assert all(t.number in page for t in mine) and theirs.number not in page
    assert "0903 000 100" in page  # the phone to call
    for ticket in mine:
        assert reverse("admin:tickets_ticket_callback", args=[ticket.pk]) in page
    # as many queries with twice the tickets: the page reads tickets, phones and callbacks in one go each
    for i in range(2):
        _resolved(catalogue, make_customer(phones=[f"0903 000 20{i}"]))
    with CaptureQueriesContext(connection) as more:
        assert client.get(reverse("admin:tickets_ticket_callbacks")).content.decode().count("callback-survey") == 4
    assert len(more) == len(queries), [q["sql"] for q in more.captured_queries]


def test_recording_the_survey_from_the_admin_closes_the_ticket(client, agent, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    form = client.get(url)
    assert form.status_code == 200 and "mức hài lòng về kết quả xử lý (1–5)" in form.content.decode()
    response = client.post(
        url, {"reached": "yes", "fix_score": "4", "attitude_score": "5", "comment": "Ổn"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("admin:tickets_ticket_callbacks")
    assert f"Đã ghi khảo sát phiếu {ticket.number}; phiếu đã đóng." in _messages(response)
    callback = Callback.objects.get(ticket=ticket)
    assert (callback.outcome, callback.fix_score, callback.attitude_score, callback.comment, callback.agent) == (
        "surveyed", 4, 5, "Ổn", agent,
    )  # fmt: skip
    assert Ticket.objects.get(pk=ticket.pk).status == Status.CLOSED


def test_a_survey_without_scores_is_refused_on_the_form_and_changes_nothing(client, agent, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    response = client.post(reverse("admin:tickets_ticket_callback", args=[ticket.pk]), {"reached": "yes"})
    assert response.status_code == 400
    assert "Hãy chấm điểm từ 1 đến 5." in response.content.decode()
    assert not Callback.objects.filter(ticket=ticket).exists()
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED


def test_three_unanswered_calls_make_the_customer_unreachable_and_close_the_ticket(
    client, agent, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    said = [_messages(client.post(url, {"reached": "no"}, follow=True))[-1] for _ in range(3)]
    assert said == [
        f"{ticket.number}: đã ghi lần gọi 1 không liên lạc được; hãy gọi lại sau.",
        f"{ticket.number}: đã ghi lần gọi 2 không liên lạc được; hãy gọi lại sau.",
        f"{ticket.number}: không liên lạc được sau 3 lần gọi; phiếu đã đóng.",
    ]
    callback = Callback.objects.get(ticket=ticket)
    assert (callback.attempts, callback.outcome) == (3, "unreachable")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.CLOSED
    again = client.post(url, {"reached": "no"})  # a fourth attempt on the closed ticket is refused
    assert again.status_code == 400
    assert "Chỉ gọi lại khảo sát đối với phiếu yêu cầu đã xử lý xong." in again.content.decode()
    assert Callback.objects.get(ticket=ticket).attempts == 3


def test_close_refuses_a_resolved_ticket_with_no_callback_and_changes_nothing(client, agent, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    response = client.post(
        reverse("admin:tickets_ticket_changelist"),
        {"action": "close", "_selected_action": [ticket.pk]},
        follow=True,
    )
    assert (
        f"{ticket.number}: Chưa thể đóng phiếu {ticket.number} khi chưa ghi kết quả gọi lại (khảo sát, hoặc "
        "không liên lạc được sau 3 lần gọi)."
    ) in _messages(response)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.closed_at) == (Status.RESOLVED, None)
    assert ticket.events.filter(after__status="closed").count() == 0


def test_the_callback_api_records_the_survey_and_refuses_a_bad_score(client, agent, org, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    theirs = _resolved(catalogue, make_customer(org["other_corporation"], phones=["0903 999 000"]))
    client.force_login(agent)
    bad = client.post(f"/api/v1/tickets/{ticket.pk}/callback/", {"reached": True, "fix_score": 6},
                      content_type="application/json")  # fmt: skip
    assert bad.status_code == 400 and "fix_score" in bad.json()
    assert not Callback.objects.filter(ticket=ticket).exists()
    other = client.post(f"/api/v1/tickets/{theirs.pk}/callback/", {"reached": False}, content_type="application/json")
    assert other.status_code == 404
    done = client.post(
        f"/api/v1/tickets/{ticket.pk}/callback/",
        {"reached": True, "fix_score": 3, "attitude_score": 4, "comment": "Sửa chậm"},
        content_type="application/json",
    )
    assert done.status_code == 201, done.content
    body = done.json()
    assert (body["ticket"], body["ticket_status"], body["outcome"], body["fix_score"], body["attitude_score"]) == (
        ticket.number, "closed", "surveyed", 3, 4,
    )  # fmt: skip
    again = client.post(f"/api/v1/tickets/{ticket.pk}/callback/", {"reached": False}, content_type="application/json")
    assert again.status_code == 400


def test_a_manager_may_not_record_a_callback(client, staff, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.MANAGER])
    assert client.get(reverse("admin:tickets_ticket_callback", args=[ticket.pk])).status_code == 403
    api = client.post(f"/api/v1/tickets/{ticket.pk}/callback/", {"reached": False}, content_type="application/json")
    assert api.status_code == 403
    assert not Callback.objects.filter(ticket=ticket).exists()
