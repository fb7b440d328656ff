"""The agent's and supervisor's pages refuse what cannot be taken with the reason, change nothing and never answer
500: a NUL character in a move of the ticket page, a survey form left open while the ticket was reopened and
resolved again, the service's refusals on the new-ticket and log-a-call forms (shown on their fields, keeping
what was typed), a phone in any spelling on the call form, and a call starting at the end of the calendar."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets import services
from tickets.models import Callback, Category, Interaction, Status, Ticket, WorkOrder
from tickets.services import ticket_change_status, ticket_open


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    return client


def _open(catalogue, customer, category="outage"):
    return ticket_open(
        actor=None, category=catalogue[category], channel="phone", description="Mất điện", customer=customer
    ).ticket


def _resolved(catalogue, customer):
    ticket = _open(catalogue, customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    return ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# A NUL character typed into a move of the ticket page ---------------------------------------------------------


@pytest.mark.parametrize(
    "move, data, reason",
    [
        ("cancel", {"note": "Khách gọi\x00 nhầm"}, "Không được chứa ký tự rỗng (null)."),
        ("send_crew", {"crew": "", "note": "Đi\x00 ngay"}, "Không được chứa ký tự rỗng (null)."),
        ("duplicate", {"duplicate_of": "2026-\x000000001"}, ""),
    ],
)
def test_a_nul_character_in_a_move_of_the_ticket_page_is_refused_and_changes_nothing(
    client, staff, make_customer, catalogue, move, data, reason
):
    # given an open ticket and another one it might repeat
    _open(catalogue, make_customer(phones=["0903 000 111"]))
    ticket = _open(catalogue, make_customer())
    events = ticket.events.count()
    client.force_login(staff[Role.SUPERVISOR])
    # when the supervisor's move carries a NUL character (a paste from another program, a hand-made request)
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]), {"move": move, **data}, follow=True
    )
    # then it is refused with a reason on the ticket's page (PostgreSQL answered 500; SQLite stored the NUL)
    assert response.status_code == 200
    said = _messages(response)
    assert len(said) == 1 and said[0].startswith(reason) and "\x00" not in said[0], said
    ticket.refresh_from_db()
    assert (ticket.status, ticket.events.count()) == (Status.NEW, events)
    assert not WorkOrder.objects.filter(ticket=ticket).exists()


@pytest.mark.parametrize(
    "before, move",
    [(Status.ACKNOWLEDGED, "pending"), (Status.ACKNOWLEDGED, "resolve"), (Status.RESOLVED, "reopen")],
)
def test_a_nul_character_in_the_note_of_any_move_is_refused_and_changes_nothing(
    client, staff, make_customer, catalogue, before, move
):
    ticket = _open(catalogue, make_customer())
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    if before == Status.RESOLVED:
        ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)
    events = ticket.events.count()
    client.force_login(staff[Role.SUPERVISOR])
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]), {"move": move, "note": "Vẫn\x00 mất điện"},
        follow=True,
    )  # fmt: skip
    assert _messages(response) == ["Không được chứa ký tự rỗng (null)."]
    ticket.refresh_from_db()
    assert (ticket.status, ticket.events.count()) == (before, events)


@pytest.mark.parametrize("typed", ["abc", "2026-12", "２０２６-0000001", "2026-0000001; DROP", "1" * 5000])
def test_a_duplicates_number_that_cannot_be_a_ticket_number_is_refused_with_its_shape(
    client, staff, make_customer, catalogue, typed
):
    ticket = _open(catalogue, make_customer())
    client.force_login(staff[Role.SUPERVISOR])
    response = client.post(
        reverse("admin:tickets_ticket_move", args=[ticket.pk]), {"move": "duplicate", "duplicate_of": typed},
        follow=True,
    )  # fmt: skip
    (said,) = _messages(response)
    assert f"{timezone.localdate().year}-0000123" in said  # how a number is written, with an example
    ticket.refresh_from_db()
    assert (ticket.status, ticket.duplicate_of) == (Status.NEW, None)


def test_a_duplicate_named_by_its_number_is_still_marked(client, staff, make_customer, catalogue):
    first = _open(catalogue, make_customer(phones=["0903 000 111"]))
    second = _open(catalogue, make_customer())
    client.force_login(staff[Role.SUPERVISOR])
    client.post(
        reverse("admin:tickets_ticket_move", args=[second.pk]), {"move": "duplicate", "duplicate_of": f" {first.number} "}
    )
    second.refresh_from_db()
    assert (second.status, second.duplicate_of) == (Status.DUPLICATE, first)


# A survey form left open while the ticket was reopened and resolved again -----------------------------------


def test_a_survey_from_a_form_opened_before_a_reopen_does_not_close_the_next_resolution(
    client, staff, make_customer, catalogue
):
    agent = staff[Role.AGENT]
    ticket = _resolved(catalogue, make_customer())
    client.force_login(agent)
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    page = client.get(url)  # the agent opens the survey of the first resolution and dials
    assert page.status_code == 200 and 'name="cycle" value="0"' in page.content.decode()
    # meanwhile the customer rings the hotline: the ticket is reopened, and resolved again by the crew
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.RESOLVED, note="Thay cầu chì")
    # the agent records the answers given about the first fix, on the form opened before
    response = client.post(
        url, {"reached": "yes", "fix_score": "5", "attitude_score": "5", "comment": "Tốt", "cycle": "0"}
    )
    # then the form says the ticket changed since it was opened (as the ticket page's moves do) ...
    assert response.status_code == 400
    assert ticket.number in " ".join(response.context["form"].non_field_errors())
    # ... and the second resolution is not closed by a survey nobody asked about it
    ticket.refresh_from_db()
    assert (ticket.status, ticket.cycle) == (Status.RESOLVED, 1)
    assert not Callback.objects.filter(ticket=ticket, cycle=1).exists()
    # a survey posted without the form's resolution is the first resolution's: refused the same way
    bare = client.post(url, {"reached": "yes", "fix_score": "5", "attitude_score": "5", "comment": "Tốt"})
    assert bare.status_code == 400 and not Callback.objects.filter(ticket=ticket, cycle=1).exists()


def test_the_survey_opened_after_the_second_resolution_is_recorded_and_closes_it(
    client, staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.RESOLVED, note="Thay cầu chì")
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    assert 'name="cycle" value="1"' in client.get(url).content.decode()
    response = client.post(url, {"reached": "yes", "fix_score": "4", "attitude_score": "5", "cycle": "1"})
    assert response.status_code == 302
    callback = Callback.objects.get(ticket=ticket)
    assert (callback.cycle, callback.outcome, callback.fix_score) == (1, "surveyed", 4)
    assert Ticket.objects.get(pk=ticket.pk).status == Status.CLOSED


def test_a_survey_form_opened_before_a_reopen_is_refused_while_the_ticket_is_being_worked_again(
    client, staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    response = client.post(url, {"reached": "no", "cycle": "0"})
    assert response.status_code == 400
    assert "Chỉ gọi lại khảo sát đối với phiếu yêu cầu đã xử lý xong." in response.content.decode()
    assert not Callback.objects.filter(ticket=ticket).exists()
    assert Ticket.objects.get(pk=ticket.pk).status == Status.REOPENED


def test_the_service_refuses_an_attempt_for_an_earlier_resolution_before_counting_it(
    staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    services.callback_record(actor=staff[Role.AGENT], ticket=ticket, reached=False, cycle=0)  # attempt 1
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)
    with pytest.raises(ValidationError):
        services.callback_record(actor=staff[Role.AGENT], ticket=ticket, reached=False, cycle=0)
    assert list(Callback.objects.filter(ticket=ticket).values_list("cycle", "attempts")) == [(0, 1)]


# The new-ticket form: the service's refusals on their fields, with what the agent typed ----------------------


def test_a_contract_that_is_not_the_customers_is_refused_on_the_form_keeping_what_was_typed(
    client, staff, make_customer, catalogue
):
    customer, other = make_customer(), make_customer(phones=["0903 777 888"])
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_ticket_add"),
        {"customer": customer.pk, "contract": other.contracts.get().pk, "category": catalogue["outage"].pk,
         "channel": "phone", "priority": "normal", "description": "Mất điện từ 14 giờ, cả xóm mất điện"},
    )  # fmt: skip
    # then the form comes back with the refusal on the contract and the description the caller dictated
    assert response.status_code == 200, response.get("Location")
    form = response.context["adminform"].form
    assert form.errors["contract"] == ["Hợp đồng không thuộc khách hàng này."]
    assert "Mất điện từ 14 giờ, cả xóm mất điện" in response.content.decode()
    assert not Ticket.objects.exists() and not Interaction.objects.exists()


def test_a_suspended_category_is_refused_on_the_form_keeping_what_was_typed(
    client, staff, org, make_customer, catalogue
):
    now = timezone.now()
    services.suspension_create(
        actor=None, category=catalogue["new-lv"], units=[org["home"]], starts_at=now - dt.timedelta(hours=1),
        ends_at=now + dt.timedelta(days=7), reason="Giãn cách xã hội (Chỉ thị 16)",
    )  # fmt: skip
    client.force_login(staff[Role.AGENT])
    data = {"customer": make_customer().pk, "category": catalogue["new-lv"].pk, "channel": "phone",
            "priority": "normal", "description": "Xin cấp điện cho nhà mới xây ở hẻm 12"}  # fmt: skip
    response = client.post(reverse("admin:tickets_ticket_add"), data)
    assert response.status_code == 200, response.get("Location")
    (refusal,) = response.context["adminform"].form.errors["category"]
    assert refusal.endswith(": Giãn cách xã hội (Chỉ thị 16)")  # the reason, on the category
    assert "Xin cấp điện cho nhà mới xây ở hẻm 12" in response.content.decode()  # what the agent typed
    assert not Ticket.objects.exists()
    # the same request of another category is taken
    taken = client.post(reverse("admin:tickets_ticket_add"), {**data, "category": catalogue["outage"].pk})
    assert taken.status_code == 302 and Ticket.objects.get().category == catalogue["outage"]


def test_a_category_withdrawn_while_the_form_was_open_is_refused_on_its_field(
    client, staff, make_customer, catalogue
):
    client.force_login(staff[Role.AGENT])
    assert client.get(reverse("admin:tickets_ticket_add")).status_code == 200  # the agent picks up the call
    Category.objects.filter(pk=catalogue["billing"].pk).update(is_active=False)  # meanwhile, withdrawn
    response = client.post(
        reverse("admin:tickets_ticket_add"),
        {"customer": make_customer().pk, "category": catalogue["billing"].pk, "channel": "phone",
         "priority": "normal", "description": "Hóa đơn tháng này cao gấp đôi"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["category"] == ["Loại yêu cầu này đã ngừng áp dụng."]
    assert "Hóa đơn tháng này cao gấp đôi" in response.content.decode()
    assert not Ticket.objects.exists()


# Logging a call: the phone as people write it, refusals on the form, no 500 ------------------------------------


@pytest.mark.parametrize("typed", ["+84 903 123 456", "84-903-123-456", "0903.123.456"])
def test_the_interaction_form_takes_a_phone_in_any_spelling(client, staff, make_customer, typed):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "customer": customer.pk, "caller_phone": typed,
         "handling_seconds": "90"},
    )  # fmt: skip
    # the ticket form and the API take these spellings; the call form refused them as "at most 13 characters"
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert Interaction.objects.get().caller_phone == "+84903123456"


@pytest.mark.parametrize("typed", ["abc", "+1 212 555 0100", "0903\x00123456"])
def test_an_invalid_phone_on_the_interaction_form_is_refused_on_its_field(client, staff, make_customer, typed):
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "nuisance", "customer": make_customer().pk, "caller_phone": typed,
         "handling_seconds": "95", "note": "Gọi quấy rối, chửi nhân viên"},
    )  # fmt: skip
    # the form comes back with the reason on the phone, the note and the handling time kept
    assert response.status_code == 200, response.get("Location")
    form = response.context["adminform"].form
    assert list(form.errors) == ["caller_phone"]
    page = response.content.decode()
    assert "Gọi quấy rối, chửi nhân viên" in page and 'value="95"' in page
    assert not Interaction.objects.exists()


def test_a_unit_other_than_the_customers_is_refused_on_the_interaction_forms_unit(
    client, staff, org, make_customer
):
    client.force_login(staff[Role.SUPERVISOR])
    staff[Role.SUPERVISOR].staff_profile.units.add(org["sibling"])
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "customer": make_customer().pk,
         "unit": org["sibling"].pk, "handling_seconds": "60", "note": "Hỏi lịch cắt điện"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["unit"] == [
        f"Cuộc gọi được tính cho {org['home'].code}, đơn vị của phiếu hoặc của khách hàng; hãy để trống ô đơn vị."
    ]
    assert "Hỏi lịch cắt điện" in response.content.decode()
    assert not Interaction.objects.exists()


@pytest.mark.parametrize(
    "day, time, seconds",
    [("31/12/9999", "23:59:59", "86400"), ("31/12/9999", "23:59:59", "1"), ("01/01/2999", "08:00:00", "60")],
)
def test_a_call_starting_in_the_future_or_at_the_end_of_the_calendar_is_refused_not_a_500(
    client, staff, make_customer, day, time, seconds
):
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "customer": make_customer().pk,
         "started_at_0": day, "started_at_1": time, "handling_seconds": seconds},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["started_at"] == [
        "Cuộc gọi không thể bắt đầu ở thời điểm trong tương lai."
    ]
    assert not Interaction.objects.exists()


def test_the_callback_api_refuses_a_survey_of_an_earlier_resolution_and_takes_the_current_one(
    client, staff, make_customer, catalogue
):
    """A softphone posts the survey with the ticket's ``cycle`` it read when the agent dialled: answers about a fix
    the ticket has since been reopened from are refused, as on the admin's form; the current cycle is taken."""
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    read = client.get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert read["cycle"] == 0
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    ticket_change_status(actor=staff[Role.SUPERVISOR], ticket=ticket, to=Status.RESOLVED, note="Thay cầu chì")
    survey = {"reached": True, "fix_score": 5, "attitude_score": 5, "comment": "Tốt"}
    stale = client.post(f"/api/v1/tickets/{ticket.pk}/callback/", {**survey, "cycle": read["cycle"]},
                        content_type="application/json")  # fmt: skip
    assert stale.status_code == 400 and ticket.number in str(stale.json())
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and not Callback.objects.filter(ticket=ticket).exclude(cycle=0).exists()
    current = client.post(f"/api/v1/tickets/{ticket.pk}/callback/", {**survey, "cycle": 1},
                          content_type="application/json")  # fmt: skip
    assert current.status_code == 201, current.json()
    assert (current.json()["cycle"], current.json()["outcome"]) == (1, "surveyed")
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED


def test_a_survey_about_a_resolution_the_ticket_never_had_says_so_and_records_nothing(
    client, staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    # a cycle ahead of the ticket's (a form or integration sending a made-up resolution)
    response = client.post(url, {"reached": "yes", "fix_score": "5", "attitude_score": "5", "cycle": "3"})
    assert response.status_code == 400
    errors = " ".join(response.context["form"].non_field_errors())
    assert f"{ticket.number}" in errors and "3" in errors and "mở lại" not in errors
    ticket.refresh_from_db()
    assert (ticket.status, ticket.cycle) == (Status.RESOLVED, 0)
    assert not Callback.objects.filter(ticket=ticket).exists()
