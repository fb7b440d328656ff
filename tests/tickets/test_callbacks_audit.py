"""The callback flow: what the agent writes about an unanswered call is kept, scores without an answer are
refused; an SLA policy calls back within at least 1 hour; a ticket outside the agent's units is "not found" in
the interface's language (page and API); a resolved ticket waiting for its callback runs only that clock."""

import datetime as dt
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets.models import Callback, EventKind, SlaPolicy, Status, TicketEvent
from tickets.selectors import ticket_clocks
from tickets.services import callback_record, sla_policy_create, ticket_change_status, ticket_open

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
NOT_IN_YOUR_UNITS = "Không có phiếu yêu cầu này trong các đơn vị của bạn."


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    client.raise_request_exception = False
    return client


def _resolved(catalogue, customer, at=None):
    ticket = ticket_open(
        actor=None,
        category=catalogue["outage"],
        channel="phone",
        description="Mất điện",
        customer=customer,
        at=at,
    ).ticket
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=at and at + MIN)
    return ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=at and at + 20 * MIN)


def _notes(ticket):
    return list(ticket.events.filter(kind=EventKind.CALLBACK).order_by("id").values_list("note", flat=True))


# 1. An unanswered attempt's comment --------------------------------------------------------------------------


def test_the_comment_typed_with_an_unanswered_attempt_is_kept_on_its_event(
    client, staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    note = "Thuê bao tạm thời không liên lạc được; số máy có thể sai"
    response = client.post(url, {"reached": "no", "comment": note, "fix_score": "", "attitude_score": ""})
    assert response.status_code == 302
    callback = Callback.objects.get(ticket=ticket)
    assert (callback.attempts, callback.outcome, callback.comment) == (1, "", "")  # the callback is not over
    assert _notes(ticket) == [note]  # the attempt's note, for the next agent to call


def test_the_api_keeps_the_comment_of_an_unanswered_attempt(client, staff, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/callback/", {"reached": False, "comment": "Tắt máy"},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 201
    assert (response.json()["attempts"], response.json()["outcome"]) == (1, "")
    assert _notes(ticket) == ["Tắt máy"]


def test_an_unreachable_callback_keeps_each_attempts_note_and_the_last_as_its_comment(
    staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    agent = staff[Role.AGENT]
    for comment in ("Số máy sai", "", "Vẫn tắt máy"):
        callback = callback_record(actor=agent, ticket=ticket, reached=False, comment=comment)
    ticket.refresh_from_db()
    assert (callback.attempts, callback.outcome, callback.comment) == (3, "unreachable", "Vẫn tắt máy")
    assert ticket.status == Status.CLOSED
    assert _notes(ticket) == ["Số máy sai", "", "Vẫn tắt máy"]


def test_a_survey_keeps_its_comment_on_the_callback_and_its_event(staff, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    callback = callback_record(actor=staff[Role.AGENT], ticket=ticket, reached=True, fix_score=4, attitude_score=5,
                               comment="Sửa nhanh")  # fmt: skip
    assert (callback.outcome, callback.fix_score, callback.attitude_score, callback.comment) == (
        "surveyed", 4, 5, "Sửa nhanh"
    )  # fmt: skip
    assert _notes(ticket) == ["Sửa nhanh"]


def test_scores_without_an_answer_are_refused_by_the_service_and_nothing_is_recorded(
    staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    events = TicketEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        callback_record(
            actor=staff[Role.AGENT], ticket=ticket, reached=False, fix_score=3, comment="Không nghe máy"
        )
    assert list(refused.value.message_dict) == ["fix_score"]
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    assert not Callback.objects.exists() and TicketEvent.objects.count() == events


def test_scores_ticked_with_no_answer_are_refused_on_the_form_beside_the_scores(
    client, staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[ticket.pk])
    response = client.post(
        url, {"reached": "no", "fix_score": "2", "attitude_score": "4", "comment": "Tắt máy"}
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"fix_score", "attitude_score"}
    assert "Chỉ ghi điểm khi khách hàng nghe máy" in errors["fix_score"][0]
    assert not Callback.objects.exists() and _notes(ticket) == []
    # the form offers "no score" to clear a score ticked by mistake; then the attempt is recorded with its note
    page = response.content.decode()
    assert re.search(r'<input type="radio" name="fix_score" value=""', page)
    again = client.post(url, {"reached": "no", "fix_score": "", "attitude_score": "", "comment": "Tắt máy"})
    assert again.status_code == 302
    assert Callback.objects.get(ticket=ticket).attempts == 1 and _notes(ticket) == ["Tắt máy"]


def test_scores_sent_with_reached_false_are_refused_by_the_api(client, staff, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    response = client.post(f"/api/v1/tickets/{ticket.pk}/callback/",
                           {"reached": False, "attitude_score": 1}, content_type="application/json")  # fmt: skip
    assert response.status_code == 400
    assert list(response.json()) == ["attitude_score"]
    assert not Callback.objects.exists() and _notes(ticket) == []


# 2. The callback target of an SLA policy ----------------------------------------------------------------------


def _form(category, **changes):
    return {
        "category": category.pk, "valid_from_0": "01/01/2030", "valid_from_1": "00:00:00",
        "acknowledge_minutes": "3", "contact_minutes": "4", "resolve_working_days": "4", "callback_hours": "24",
        "escalate_level2_minutes": "30", "escalate_level3_minutes": "120", **changes,
    }  # fmt: skip


def test_a_policy_calling_back_within_0_hours_is_refused_on_its_field(client, staff, catalogue):
    client.force_login(staff[Role.ADMINISTRATOR])
    before = SlaPolicy.objects.count()
    answer = client.post(
        reverse("admin:tickets_slapolicy_add"), _form(catalogue["new-lv"], callback_hours="0")
    )
    assert answer.status_code == 200  # the form again, with the reason on callback_hours
    form = answer.context["adminform"].form
    assert list(form.errors) == ["callback_hours"]
    assert form.errors["callback_hours"] == [
        "Tối thiểu 1 giờ: nếu là 0, mọi cuộc gọi lại khảo sát sẽ bị quá hạn ngay khi yêu cầu được xử lý xong."
    ]
    assert SlaPolicy.objects.count() == before
    # 1 hour is a target
    saved = client.post(
        reverse("admin:tickets_slapolicy_add"), _form(catalogue["new-lv"], callback_hours="1")
    )
    assert saved.status_code == 302
    assert (
        SlaPolicy.objects.get(
            category=catalogue["new-lv"], valid_from=dt.datetime(2030, 1, 1, tzinfo=VN)
        ).callback_hours
        == 1
    )


def test_the_policy_service_refuses_a_callback_target_of_0_hours(staff, catalogue):
    before = SlaPolicy.objects.count()
    with pytest.raises(ValidationError) as refused:
        sla_policy_create(
            actor=staff[Role.ADMINISTRATOR], category=catalogue["billing"],
            valid_from=timezone.now() + dt.timedelta(days=1), resolve_minutes=60, callback_hours=0,
        )  # fmt: skip
    assert list(refused.value.message_dict) == ["callback_hours"]
    assert SlaPolicy.objects.count() == before


def test_the_database_refuses_a_new_policy_calling_back_within_0_hours(catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("the CHECK constraint is PostgreSQL's (SQLite would copy the table whole to add it)")
    before = SlaPolicy.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        SlaPolicy.objects.create(category=catalogue["billing"], valid_from=timezone.now() + dt.timedelta(days=1),
                                 resolve_minutes=60, callback_hours=0)  # fmt: skip
    assert SlaPolicy.objects.count() == before


# 3. The 404 page in the interface's language ------------------------------------------------------------------


def test_the_survey_form_of_a_ticket_outside_the_agents_units_says_so_in_vietnamese(
    client, org, make_staff, make_customer, catalogue, settings
):
    settings.DEBUG = False  # as served: Django's page_not_found renders templates/404.html
    ticket = _resolved(catalogue, make_customer())  # the home unit's
    client.force_login(make_staff(Role.AGENT, [org["sibling"]]))
    response = client.get(reverse("admin:tickets_ticket_callback", args=[ticket.pk]))
    page = response.content.decode()
    assert response.status_code == 404
    assert "Not Found" not in page and "The requested resource was not found" not in page
    assert re.search(r'<html[^>]*lang="vi"', page)
    assert f'<p id="not-found-reason">{NOT_IN_YOUR_UNITS}</p>' in page  # the view's own reason
    assert "Không tìm thấy" in page and "Về trang đầu" in page
    assert not Callback.objects.exists()


def test_a_404_without_a_reason_shows_no_class_name_nor_djangos_english(client, staff, settings):
    settings.DEBUG = False
    client.force_login(staff[Role.AGENT])
    # an unknown address (admin, site), an admin app the agent does not see, a file of get_object_or_404: the
    # last two with Django's English reason
    for url in (
        "/admin/no-such-page/",
        "/khong-co-trang-nay/",
        "/admin/billing/",
        "/tickets/attachments/999999/",
    ):
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 404, url
        assert 'id="not-found-reason"' not in page, url
        for english in (
            "Http404",
            "Resolver404",
            "Not Found",
            "admin page does not exist",
            "matches the given query",
        ):
            assert english not in page, (url, english)
        assert re.search(r'<html[^>]*lang="vi"', page) and "Không tìm thấy" in page


# 4. The API's 404 --------------------------------------------------------------------------------------------


def test_the_callback_api_on_a_ticket_outside_the_agents_units_answers_in_vietnamese(
    client, org, make_staff, make_customer, catalogue
):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(make_staff(Role.AGENT, [org["sibling"]]))
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/callback/", {"reached": False}, content_type="application/json"
    )
    assert response.status_code == 404
    assert json.loads(response.content) == {"detail": "Không tìm thấy."}
    assert not Callback.objects.exists()


def test_every_api_detail_not_found_answers_in_the_callers_language(client, staff, make_customer, catalogue):
    ticket = _resolved(catalogue, make_customer())
    client.force_login(staff[Role.AGENT])
    for url in (f"/api/v1/tickets/{ticket.pk + 1000}/", f"/api/v1/customers/{10**9}/"):
        response = client.get(url)
        assert (response.status_code, response.json()) == (404, {"detail": "Không tìm thấy."}), url
        english = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
        assert (english.status_code, english.json()) == (404, {"detail": "Not found."}), url


# 5. The clocks of a resolved ticket waiting for its callback ---------------------------------------------------


def test_a_resolved_tickets_missed_contact_clock_stops_counting_while_it_waits_for_its_callback(
    catalogue, make_customer
):
    ticket = _resolved(catalogue, make_customer(), at=T)  # acknowledged at once, resolved without calling
    later = T + dt.timedelta(hours=20)  # the callback still due, 4 h 20 min left
    waiting = {row["label"]: row["state"] for row in ticket_clocks(ticket=ticket, now=later)}
    assert waiting == {
        "acknowledge by": "done at 01/06/2026 14:01",
        "contact the customer by": "—",  # no longer a countdown: the ticket is resolved
        "resolve by": "done at 01/06/2026 14:20",
        "call back by": "4 h 20 min left",  # the one clock still running
    }
    # once the callback closes the ticket, the missed contact reads the same
    for _attempt in range(3):
        callback_record(actor=None, ticket=ticket, reached=False, at=later)
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    after = {row["label"]: row["state"] for row in ticket_clocks(ticket=ticket, now=later)}
    assert after["contact the customer by"] == waiting["contact the customer by"] == "—"
    assert after["call back by"] == "done at 02/06/2026 10:00"


def test_a_resolved_tickets_callback_clock_counts_overdue_once_it_passes(catalogue, make_customer):
    ticket = _resolved(catalogue, make_customer(), at=T)
    rows = {row["label"]: row for row in ticket_clocks(ticket=ticket, now=T + dt.timedelta(hours=26))}
    assert (rows["call back by"]["state"], rows["call back by"]["late"]) == ("overdue by 1 h 40 min", True)
    assert rows["contact the customer by"]["state"] == "—"
