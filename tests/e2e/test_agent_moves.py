"""The agent's moves in a real browser, in Vietnamese: wait for the customer and resume from the ticket page,
call a customer back from the callbacks-due queue and record the survey, log a call."""

import pytest

from crm.models import Role
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tickets.models import Callback, Interaction, Status, Ticket
from tickets.services import ticket_change_status, ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_agent_pends_and_resumes_a_ticket_records_a_callback_survey_and_logs_a_call(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    # given an agent, an acknowledged ticket and a resolved one of their unit
    agent = with_password(make_staff(Role.AGENT, [org["home"]], username="agent-moves"), "a-good-pass-m")
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    working = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                          customer=customer).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=working, to=Status.ACKNOWLEDGED)
    done = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Chập điện",
                       customer=customer).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=done, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=None, ticket=done, to=Status.RESOLVED)
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live_server, "agent-moves", "a-good-pass-m")

    # pending the customer, then resume, from the ticket page
    page.goto(f"{live_server.url}/admin/tickets/ticket/{working.pk}/change/")
    page.fill("#move-pending input[name=note]", "Chờ khách gửi ảnh công tơ")
    page.click("#move-pending button")
    page.wait_for_selector("#move-resume")
    assert "tạm dừng: đang chờ khách hàng" in page.inner_text("#ticket-clocks")
    assert Ticket.objects.get(pk=working.pk).status == Status.PENDING_CUSTOMER
    page.click("#move-resume button")
    page.wait_for_selector("#move-pending")
    assert "Tiếp tục xử lý (khách hàng đã phản hồi) — xong." in page.inner_text(".messagelist")
    assert Ticket.objects.get(pk=working.pk).status == Status.IN_PROGRESS
    assert "Chờ khách gửi ảnh công tơ" in page.inner_text("#ticket-timeline")

    # the callback survey, one click from the queue on the home page
    page.goto(f"{live_server.url}/admin/")
    page.click("#callbacks-due-link")
    page.wait_for_selector("#callbacks-due")
    assert done.number in page.inner_text("#callbacks-due") and working.number not in page.inner_text("#callbacks-due")
    page.click("#callbacks-due a.callback-survey")
    page.wait_for_selector("#callback-form")
    page.check("#callback-form input[name=reached][value=yes]")
    page.check("#callback-form input[name=fix_score][value='4']")
    page.check("#callback-form input[name=attitude_score][value='5']")
    page.fill("#callback-form textarea[name=comment]", "Nhân viên nhiệt tình")
    page.click("#callback-form input[type=submit]")
    page.wait_for_selector("#callbacks-due")
    assert f"Đã ghi khảo sát phiếu {done.number}; phiếu đã đóng." in page.inner_text(".messagelist")
    callback = Callback.objects.get(ticket=done)
    assert (callback.outcome, callback.fix_score, callback.attitude_score, callback.agent_id) == (
        "surveyed", 4, 5, agent.pk,
    )  # fmt: skip
    assert Ticket.objects.get(pk=done.pk).status == Status.CLOSED

    # a call that gave information only, logged with its handling time
    page.goto(f"{live_server.url}/admin/tickets/interaction/add/")
    page.select_option("#id_disposition", "information")
    page.fill("#id_handling_seconds", "90")
    page.fill("#id_note", "Hỏi lịch cắt điện")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    assert "Đã ghi cuộc gọi." in page.inner_text(".messagelist")
    call = Interaction.objects.get(note="Hỏi lịch cắt điện")
    assert (call.agent_id, call.unit_id, call.disposition, call.handling_seconds) == (
        agent.pk, org["home"].pk, "information", 90,
    )  # fmt: skip
    context.close()
