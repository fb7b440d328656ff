"""The call-centre agent's day in the admin, through the Django test client (in Vietnamese, the interface's
language): callbacks, interactions, the moves on the ticket page, saving a new ticket, intake from the card."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets import services
from tickets.models import Callback, Interaction, Status, Ticket
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


# 6. Interactions ----------------------------------------------------------------------------------------


def test_an_agent_logs_a_call_from_the_admin_with_its_handling_time(client, agent, make_customer):
    customer = make_customer()
    client.force_login(agent)
    form = client.get(reverse("admin:tickets_interaction_add"))
    assert form.status_code == 200 and "thời gian xử lý (giây)" in form.content.decode()
    started = timezone.localtime() - dt.timedelta(minutes=5)
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {
            "channel": "phone", "disposition": "nuisance", "customer": customer.pk, "caller_phone": "0903 123 456",
            "started_at_0": started.strftime("%d/%m/%Y"), "started_at_1": started.strftime("%H:%M:%S"),
            "handling_seconds": "95", "note": "Gọi quấy rối",
        },
        follow=True,
    )  # fmt: skip
    assert "Đã ghi cuộc gọi." in _messages(response), response.content.decode()[:3000]
    logged = Interaction.objects.get()
    assert (logged.agent, logged.customer, logged.unit, logged.disposition, logged.handling_seconds) == (
        agent, customer, customer.unit, "nuisance", 95,
    )  # fmt: skip
    assert (logged.caller_phone, logged.note) == ("+84903123456", "Gọi quấy rối")


def test_a_call_logged_once_over_with_its_start_left_empty_ended_when_it_was_logged(client, agent, make_customer):
    customer = make_customer()
    client.force_login(agent)
    before = timezone.now()
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "customer": customer.pk, "handling_seconds": "90"},
        follow=True,
    )  # fmt: skip
    assert "Đã ghi cuộc gọi." in _messages(response)
    logged = Interaction.objects.get()
    assert before - dt.timedelta(seconds=90) <= logged.started_at <= timezone.now() - dt.timedelta(seconds=90)
    assert logged.ended_at - logged.started_at == dt.timedelta(seconds=90)


def test_a_call_of_an_agent_of_several_units_with_no_one_named_asks_for_the_unit_and_logs_nothing(
    client, org, make_staff
):
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    client.force_login(agent)
    now = timezone.localtime()
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "started_at_0": now.strftime("%d/%m/%Y"),
         "started_at_1": now.strftime("%H:%M:%S"), "handling_seconds": "30"},
    )  # fmt: skip
    # the form comes back with the question on its unit field, keeping what was typed
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["unit"] == ["Hãy chọn đơn vị mà cuộc gọi liên quan."]
    assert not Interaction.objects.exists()


def test_a_softphone_posts_the_call_to_the_api(client, agent, org, make_customer):
    customer = make_customer()
    theirs = make_customer(org["other_corporation"], phones=["0903 999 000"])
    client.force_login(agent)
    started = timezone.now() - dt.timedelta(minutes=3)
    payload = {"channel": "phone", "disposition": "information", "started_at": started.isoformat(),
               "handling_seconds": 120, "customer_code": customer.code, "caller_phone": "0903123456"}  # fmt: skip
    response = client.post("/api/v1/interactions/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["customer_code"], body["unit_code"], body["handling_seconds"], body["agent"]) == (
        customer.code, customer.unit.code, 120, agent.username,
    )  # fmt: skip
    refused = client.post("/api/v1/interactions/", {**payload, "customer_code": theirs.code},
                          content_type="application/json")  # fmt: skip
    assert refused.status_code == 400 and "customer_code" in refused.json()
    backwards = client.post("/api/v1/interactions/", {**payload, "handling_seconds": None,
                            "ended_at": (started - dt.timedelta(seconds=1)).isoformat()},
                            content_type="application/json")  # fmt: skip
    assert backwards.status_code == 400
    assert Interaction.objects.count() == 1
    listed = client.get("/api/v1/interactions/")
    assert [row["id"] for row in listed.json()["results"]] == [body["id"]]


def test_a_manager_cannot_log_calls(client, staff):
    client.force_login(staff[Role.MANAGER])
    assert client.get(reverse("admin:tickets_interaction_add")).status_code == 403
    now = timezone.now().isoformat()
    response = client.post("/api/v1/interactions/", {"channel": "phone", "disposition": "information",
                           "started_at": now, "ended_at": now, "unit_code": "PE0100"}, content_type="application/json")  # fmt: skip
    assert response.status_code == 403
    assert not Interaction.objects.exists()


def test_intake_from_the_card_logs_the_call_from_the_moment_the_form_opened(client, agent, make_customer, catalogue):
    customer = make_customer()
    client.force_login(agent)
    opened = timezone.now() - dt.timedelta(minutes=2)
    response = client.post(
        reverse("admin:tickets_ticket_add") + f"?customer={customer.pk}",
        {"customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
         "description": "Mất điện cả dãy", "call_started_at": opened.isoformat()},
        follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    ticket = Ticket.objects.get()
    call = Interaction.objects.get()
    assert (call.ticket, call.customer, call.agent, call.disposition, call.channel) == (
        ticket, customer, agent, "ticket", "phone",
    )  # fmt: skip
    assert 115 <= call.handling_seconds <= 180


# 7. and 8. The ticket page: clocks, moves, timeline ------------------------------------------------------


def _open_ticket(catalogue, customer, **kw):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, **kw).ticket  # fmt: skip


def _move(client, ticket, move, **data):
    return client.post(reverse("admin:tickets_ticket_move", args=[ticket.pk]), {"move": move, **data}, follow=True)


def test_the_ticket_page_shows_deadlines_with_time_left_the_timeline_notes_and_the_moves_open_now(
    client, agent, make_customer, catalogue
):
    ticket = _open_ticket(catalogue, make_customer())
    services.ticket_add_note(actor=agent, ticket=ticket, body="Khách hẹn 15 giờ")
    client.force_login(agent)
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert "Thời hạn" in page and "Hạn xử lý xong" in page and re.search(r"còn 1 giờ 5\d phút", page)
    assert "Diễn biến" in page and "Khách hẹn 15 giờ" in page
    moves = re.findall(r'<input type="hidden" name="move" value="([a-z_]+)">', page)
    assert moves == ["take", "acknowledge", "contact", "duplicate", "cancel"]
    # a manager sees the ticket, and no button
    client.force_login(agent.__class__.objects.get(staff_profile__role=Role.MANAGER))
    assert 'name="move"' not in client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()


def test_pending_the_customer_then_resume_from_the_ticket_page(client, agent, make_customer, catalogue):
    ticket = _open_ticket(catalogue, make_customer())
    client.force_login(agent)
    assert f"{ticket.number}: Tiếp nhận — xong." in _messages(_move(client, ticket, "acknowledge"))
    response = _move(client, ticket, "pending", note="Chờ khách gửi ảnh công tơ")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.paused_at is not None, ticket.next_check_at) == (Status.PENDING_CUSTOMER, True, None)
    page = response.content.decode()
    assert "tạm dừng: đang chờ khách hàng" in page
    assert re.findall(r'name="move" value="([a-z_]+)"', page) == ["take", "contact", "resume", "resolve", "cancel"]
    _move(client, ticket, "resume")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.paused_at) == (Status.IN_PROGRESS, None)
    assert list(ticket.events.filter(kind="status").values_list("after__status", flat=True)) == [
        "acknowledged", "pending_customer", "in_progress",
    ]  # fmt: skip


def test_cancel_without_a_reason_is_refused_with_the_reason_and_changes_nothing(client, agent, make_customer, catalogue):
    ticket = _open_ticket(catalogue, make_customer())
    client.force_login(agent)
    response = _move(client, ticket, "cancel", note="  ")
    assert "Hãy nêu lý do." in _messages(response)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.events.count()) == (Status.NEW, 1)
    _move(client, ticket, "cancel", note="Khách gọi nhầm")
    ticket.refresh_from_db()
    assert ticket.status == Status.CANCELLED
    assert ticket.events.get(kind="status").note == "Khách gọi nhầm"


def test_mark_duplicate_by_number_within_the_users_units_only(client, agent, org, make_customer, catalogue):
    customer = make_customer()
    first, second = _open_ticket(catalogue, customer), _open_ticket(catalogue, customer)
    theirs = _open_ticket(catalogue, make_customer(org["other_corporation"], phones=["0903 999 000"]))
    client.force_login(agent)
    refused = _move(client, second, "duplicate", duplicate_of=theirs.number)
    assert f"Không có phiếu số “{theirs.number}” trong các đơn vị của bạn." in _messages(refused)
    second.refresh_from_db()
    assert (second.status, second.duplicate_of) == (Status.NEW, None)
    _move(client, second, "duplicate", duplicate_of=first.number)
    second.refresh_from_db()
    assert (second.status, second.duplicate_of) == (Status.DUPLICATE, first)


def test_reopen_needs_a_reason_and_a_move_not_open_now_is_refused(client, agent, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    not_now = _move(client, ticket, "pending")
    assert (
        f"Phiếu {ticket.number} hiện ở trạng thái Đã xử lý xong: bạn không thể thực hiện thao tác này trên phiếu. Trang "
        "phiếu cho thấy những thao tác bạn có thể làm." in _messages(not_now)
    )
    assert "Hãy nêu lý do." in _messages(_move(client, ticket, "reopen"))
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    _move(client, ticket, "reopen", note="Khách báo vẫn mất điện")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.resolved_at) == (Status.REOPENED, None)


def test_take_from_the_ticket_page_assigns_it_to_me(client, agent, make_customer, catalogue):
    ticket = _open_ticket(catalogue, make_customer())
    client.force_login(agent)
    _move(client, ticket, "take")
    ticket.refresh_from_db()
    assert ticket.assignee == agent


def test_the_status_api_marks_a_duplicate_by_number(client, agent, make_customer, catalogue):
    customer = make_customer()
    first, second = _open_ticket(catalogue, customer), _open_ticket(catalogue, customer)
    client.force_login(agent)
    unknown = client.post(f"/api/v1/tickets/{second.pk}/status/", {"status": "duplicate", "duplicate_of": "2020-9"},
                          content_type="application/json")  # fmt: skip
    assert unknown.status_code == 400 and "duplicate_of" in unknown.json()
    done = client.post(f"/api/v1/tickets/{second.pk}/status/", {"status": "duplicate", "duplicate_of": first.number},
                       content_type="application/json")  # fmt: skip
    assert done.status_code == 200 and done.json()["status"] == "duplicate"
    assert Ticket.objects.get(pk=second.pk).duplicate_of == first


# 9. Saving a new ticket -------------------------------------------------------------------------------


def _add_ticket(client, customer, catalogue, **extra):
    data = {"customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
            "description": "Mất điện cả dãy", **extra}  # fmt: skip
    return client.post(reverse("admin:tickets_ticket_add"), data, follow=True)


def test_saving_a_new_ticket_names_its_number_opens_it_and_gives_it_to_the_agent(
    client, agent, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(agent)
    response = _add_ticket(client, customer, catalogue)
    ticket = Ticket.objects.get()
    assert response.redirect_chain == [(reverse("admin:tickets_ticket_change", args=[ticket.pk]), 302)]
    assert f"Đã tạo phiếu {ticket.number}." in _messages(response)
    assert ticket.assignee == agent
    assert list(ticket.events.values_list("kind", flat=True)) == ["created", "assigned"]


def test_an_agent_who_turned_the_option_off_and_a_supervisor_leave_the_ticket_to_the_queue(
    client, agent, staff, make_customer, catalogue
):
    customer = make_customer()
    agent.staff_profile.assign_new_tickets = False
    agent.staff_profile.save()
    client.force_login(agent)
    _add_ticket(client, customer, catalogue)
    client.force_login(staff[Role.SUPERVISOR])
    response = _add_ticket(client, customer, catalogue, description="Lần hai")
    assert response.status_code == 200
    assert list(Ticket.objects.order_by("id").values_list("assignee", flat=True)) == [None, None]


def test_the_option_is_on_for_new_staff_and_changed_on_the_staff_profile(client, agent, staff):
    assert agent.staff_profile.assign_new_tickets is True
    client.force_login(staff[Role.ADMINISTRATOR])
    profile = agent.staff_profile
    url = reverse("admin:crm_staffprofile_change", args=[profile.pk])
    page = client.get(url).content.decode()
    assert "Giao cho tôi các phiếu tôi tiếp nhận" in page
    response = client.post(url, {"role": Role.AGENT, "units": [u.pk for u in profile.units.all()], "phone": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    profile.refresh_from_db()
    assert (profile.assign_new_tickets, profile.role) == (False, Role.AGENT)  # an unticked box is "off"


# 10. Intake from the card, the lookup and the screen pop ------------------------------------------------


def test_the_screen_pop_lands_on_the_card_whose_new_ticket_carries_the_number_calling_and_the_only_contract(
    client, agent, make_customer, catalogue
):
    customer = make_customer(phones=["0903 123 456", "0912 000 111"])
    client.force_login(agent)
    # when the softphone opens the lookup with the caller id (the customer's second number)
    response = client.get(reverse("admin:customers_customer_lookup") + "?phone=0912000111", follow=True)
    # then the card opens in one step, saying who calls
    card = reverse("admin:customers_customer_card", args=[customer.pk])
    assert response.redirect_chain == [(f"{card}?phone=%2B84912000111", 302)]
    page = response.content.decode()
    assert "Cuộc gọi từ số 0912 000 111" in page
    contract = customer.contracts.get()
    new_ticket = re.search(r'href="(/admin/tickets/ticket/add/\?[^"]+)"', page).group(1).replace("&amp;", "&")
    assert f"customer={customer.pk}" in new_ticket and f"contract={contract.pk}" in new_ticket
    assert "caller_phone=%2B84912000111" in new_ticket
    # and the new-ticket form comes prefilled with them
    form = client.get(new_ticket)
    initial = form.context["adminform"].form.initial
    assert (int(initial["customer"]), int(initial["contract"]), initial["caller_phone"]) == (
        customer.pk, contract.pk, "+84912000111",
    )  # fmt: skip


def test_the_card_without_a_call_offers_the_primary_phone_and_no_contract_when_there_are_two(
    client, agent, make_customer
):
    from customers import services as customer_services

    customer = make_customer(phones=["0903 123 456"])
    customer_services.contract_create(actor=None, customer=customer, purpose="Kinh doanh",
                                      start_date=timezone.localdate(), status="active")  # fmt: skip
    client.force_login(agent)
    page = client.get(reverse("admin:customers_customer_card", args=[customer.pk])).content.decode()
    new_ticket = re.search(r'href="(/admin/tickets/ticket/add/\?[^"]+)"', page).group(1)
    assert "caller_phone=%2B84903123456" in new_ticket and "contract=" not in new_ticket


def test_an_unknown_number_offers_a_new_ticket_for_this_caller_prefilled_with_the_phone(
    client, agent, make_customer, catalogue
):
    make_customer(phones=["0903 123 456"])
    client.force_login(agent)
    response = client.get(reverse("admin:customers_customer_lookup"), {"phone": "0988 777 666"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Tạo phiếu mới cho người gọi này (0988 777 666)" in page
    link = re.search(r'id="lookup-new-caller"><a class="button" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    form = client.get(link)
    initial = form.context["adminform"].form.initial
    assert (initial["caller_phone"], initial["unit"]) == ("+84988777666", agent.staff_profile.units.get().pk)
    response = client.post(
        link,
        {"caller_phone": initial["caller_phone"], "unit": initial["unit"], "category": catalogue["outage"].pk,
         "channel": "phone", "priority": "normal", "description": "Mất điện, chưa có hợp đồng"},
        follow=True,
    )  # fmt: skip
    ticket = Ticket.objects.get()
    assert f"Đã tạo phiếu {ticket.number}." in _messages(response)
    assert (ticket.customer, ticket.caller_phone, ticket.unit_id, ticket.assignee) == (
        None, "+84988777666", initial["unit"], agent,
    )  # fmt: skip


def test_several_customers_on_one_number_are_listed_not_opened(client, agent, make_customer):
    first = make_customer(name="Lê Văn Một", phones=["0903 123 456"])
    second = make_customer(name="Lê Văn Hai", phones=["0903 123 456"])
    client.force_login(agent)
    response = client.get(reverse("admin:customers_customer_lookup"), {"phone": "0903123456"})
    assert response.status_code == 200
    assert {c.pk for c in response.context["found"].customers} == {first.pk, second.pk}


def test_a_move_from_a_stale_page_says_what_the_ticket_is_now(client, agent, staff, make_customer, catalogue):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    client.force_login(agent)
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk])).content.decode()
    assert 'id="move-resolve"' in page
    # a dispatcher cancels it meanwhile; the agent presses "Resolve" on the page they had open
    ticket_change_status(actor=staff[Role.DISPATCHER], ticket=ticket, to=Status.CANCELLED, note="Khách báo nhầm")
    said = _messages(_move(client, ticket, "resolve"))
    assert any(f"Phiếu {ticket.number} hiện ở trạng thái Đã hủy" in message for message in said), said
    assert Ticket.objects.get(pk=ticket.pk).status == Status.CANCELLED
