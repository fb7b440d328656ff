"""The same form posted twice (a double click, a browser resubmit, two tabs on the same page): each admin form that
writes on a ticket carries a one-time token drawn with the page, and the second post of the same page writes
nothing (no second SMS to the customer, no second ticket for one call, no second callback attempt). A form posted
without a token (an old page, a script) is taken as before."""

from __future__ import annotations

import datetime as dt
import html
import re
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets import services
from tickets.models import Callback, IntakeKey, Interaction, Status, Ticket, TicketEvent, TicketNote
from tickets.services import incident_open, ticket_change_status, ticket_open


def _hidden_inputs(page: str) -> dict[str, str]:
    """Every hidden input the page's form carries (its form token among them), as the browser posts it."""
    found = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) != "csrfmiddlewaretoken":
            found[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return found


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def ticket(make_customer, catalogue):
    customer = make_customer(phones=["0903 555 666"])
    return ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=customer
    ).ticket


def _note_page_data(client, url: str, body: str) -> dict[str, str]:
    page = client.get(url)
    data = _hidden_inputs(page.content.decode())
    prefixes = {f.formset.prefix for f in page.context["inline_admin_formsets"]}
    add_note = next(p for p in prefixes if p.startswith("notes") and p != "notes")
    add_file = next(p for p in prefixes if p.startswith("attachments") and p != "attachments")
    for prefix, total in (("notes", "0"), ("attachments", "0"), (add_note, "1"), (add_file, "1")):
        data.update({f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1"})  # fmt: skip
    data.update({f"{add_note}-0-body": body, f"{add_note}-0-to_customer": "on"})
    assert data.get(f"{add_note}-0-submission_token"), "the write box carries its one-time token"
    return data


def test_a_message_to_the_customer_posted_twice_sends_one_sms(client, staff, ticket):
    # given an agent on the ticket page writing a message to the customer
    client.force_login(staff[Role.AGENT])
    url = f"/admin/tickets/ticket/{ticket.pk}/change/"
    data = _note_page_data(client, url, "Chiều nay 15h thợ sẽ đến")
    # when the same form is posted twice (a double click on "Save", a resubmit after a slow answer)
    client.post(url, data)
    second = client.post(url, data, follow=True)
    # then the customer gets the message once, the ticket shows it once, and the page says it was already sent
    sent = OutboxMessage.objects.filter(body__contains="Chiều nay 15h thợ sẽ đến")
    assert sent.count() == 1, f"{sent.count()} SMS sent to the customer for one message"
    assert TicketNote.objects.filter(ticket=ticket, to_customer=True).count() == 1
    assert TicketEvent.objects.filter(ticket=ticket, kind="message").count() == 1
    assert any("already sent" in m for m in _messages(second)), _messages(second)


def test_the_same_message_drawn_again_is_a_second_message(client, staff, ticket):
    # given the agent who sent a message and opens the page again to send it once more, on purpose
    client.force_login(staff[Role.AGENT])
    url = f"/admin/tickets/ticket/{ticket.pk}/change/"
    client.post(url, _note_page_data(client, url, "Chiều nay 15h thợ sẽ đến"))
    client.post(url, _note_page_data(client, url, "Chiều nay 15h thợ sẽ đến"))
    # then each page drawn is one message
    assert OutboxMessage.objects.filter(body__contains="Chiều nay 15h thợ sẽ đến").count() == 2
    assert TicketNote.objects.filter(ticket=ticket, to_customer=True).count() == 2


def test_the_service_writes_a_token_once_and_without_one_as_before(ticket):
    first = services.ticket_add_note(actor=None, ticket=ticket, body="Đã ghi nhận", to_customer=True, token="a1")
    again = services.ticket_add_note(actor=None, ticket=ticket, body="Đã ghi nhận", to_customer=True, token="a1")
    assert again.pk == first.pk
    assert first.submission_key == "a1"
    assert OutboxMessage.objects.filter(body__contains="Đã ghi nhận").count() == 1
    # without a token (a script, an old page) every call writes, as it always did
    services.ticket_add_note(actor=None, ticket=ticket, body="Ghi chú nội bộ")
    services.ticket_add_note(actor=None, ticket=ticket, body="Ghi chú nội bộ")
    assert TicketNote.objects.filter(ticket=ticket, body="Ghi chú nội bộ").count() == 2
    assert TicketNote.objects.filter(ticket=ticket, submission_key__isnull=True).count() == 2


def _outage_form(client, customer, incident) -> dict[str, str]:
    """The card's "take the call as part of this outage" form, as drawn (with its token)."""
    page = client.get(reverse("admin:customers_customer_card", args=[customer.pk])).content.decode()
    action = reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk])
    form = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', page, re.S)
    assert form is not None, "the card offers the outage one-click"
    data = _hidden_inputs(form.group(1))
    assert data.get("submission_token")
    return data


def test_the_outage_one_click_posted_twice_takes_one_ticket(client, staff, org, make_customer, catalogue):
    # given an agent on the card of a customer calling about an outage under way
    customer = make_customer(phones=["0903 555 777"])
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk])
    data = {**_outage_form(client, customer, incident), "caller_phone": "0903 555 777"}
    # when "report the outage" is clicked twice for the one call
    client.post(url, data)
    second = client.post(url, data, follow=True)
    # then one call makes one ticket and one logged call, and the second click says which ticket it already is
    tickets = Ticket.objects.filter(customer=customer)
    assert tickets.count() == 1
    assert Interaction.objects.filter(customer=customer).count() == 1
    assert any(f"already taken: ticket {tickets.get().number}" in m for m in _messages(second)), _messages(second)


def test_the_outage_one_click_drawn_again_is_another_call(client, staff, org, make_customer, catalogue):
    # given the card opened anew for a second call of the same customer
    customer = make_customer(phones=["0903 555 777"])
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk])
    client.post(url, _outage_form(client, customer, incident))
    client.post(url, _outage_form(client, customer, incident))
    # then each card drawn takes its call (the outage rules decide; the token does not merge two calls)
    assert Interaction.objects.filter(customer=customer).count() == Ticket.objects.filter(customer=customer).count()
    assert IntakeKey.objects.filter(owner=staff[Role.AGENT]).count() == Ticket.objects.filter(
        customer=customer
    ).count()


def test_the_new_ticket_form_posted_twice_takes_one_ticket_for_one_call(client, staff, make_customer, catalogue):
    # given an agent who opened the new-ticket form for a caller (the form stamps when the call was picked up)
    customer = make_customer(phones=["0903 555 888"])
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_add") + f"?customer={customer.pk}"
    page = client.get(url)
    data = _hidden_inputs(page.content.decode())
    assert data.get("submission_token")
    data.update({"customer": customer.pk, "category": catalogue["billing"].pk, "channel": "phone",
                 "priority": "normal", "description": "Hóa đơn tháng này cao bất thường"})  # fmt: skip
    # when the same form is posted twice (double click on "Save", or a resubmit after a slow answer)
    first = client.post(url, data)
    second = client.post(url, data, follow=True)
    assert first.status_code == 302
    # then there is one ticket (and one logged call) for the one call, and the repeat names it
    tickets = Ticket.objects.filter(customer=customer)
    assert tickets.count() == 1, "two tickets for one call"
    assert Interaction.objects.filter(customer=customer).count() == 1
    assert second.redirect_chain[-1][0].endswith(f"/admin/tickets/ticket/{tickets.get().pk}/change/")
    assert any(f"already taken: ticket {tickets.get().number}" in m for m in _messages(second)), _messages(second)


def test_the_new_ticket_form_without_a_token_is_taken_as_before(client, staff, make_customer, catalogue):
    customer = make_customer(phones=["0903 555 888"])
    client.force_login(staff[Role.AGENT])
    data = {"customer": customer.pk, "category": catalogue["billing"].pk, "channel": "phone",
            "priority": "normal", "description": "Hóa đơn tháng này cao bất thường"}  # fmt: skip
    assert client.post(reverse("admin:tickets_ticket_add"), data).status_code == 302
    assert Ticket.objects.filter(customer=customer).count() == 1
    assert not IntakeKey.objects.exists()


@pytest.fixture
def resolved(make_customer, catalogue):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)
    return ticket


def test_an_unanswered_callback_posted_twice_counts_one_attempt(client, staff, resolved):
    # given a resolved ticket whose survey form an agent opened
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_callback", args=[resolved.pk])
    data = _hidden_inputs(client.get(url).content.decode())
    assert data.get("attempts") == "0"
    data.update({"reached": "no", "comment": "Thuê bao không liên lạc được"})
    # when the one unanswered call is recorded with a double click
    client.post(url, data)
    second = client.post(url, data)
    # then one attempt is counted, and the second post says another attempt was recorded meanwhile
    callback = Callback.objects.get(ticket=resolved)
    assert callback.attempts == 1
    assert callback.outcome == ""
    assert TicketEvent.objects.filter(ticket=resolved, kind="callback").count() == 1
    assert second.status_code == 400
    assert "Another attempt was recorded meanwhile" in second.content.decode()
    # and the form drawn again records the next attempt
    data = {**_hidden_inputs(client.get(url).content.decode()), "reached": "no"}
    assert data["attempts"] == "1"
    assert client.post(url, data).status_code == 302
    assert Callback.objects.get(ticket=resolved).attempts == 2


def test_a_callback_recorded_by_a_colleague_meanwhile_is_refused_and_changes_nothing(resolved):
    services.callback_record(actor=None, ticket=resolved, reached=False, attempts=0)
    with pytest.raises(ValidationError, match="Another attempt was recorded meanwhile"):
        services.callback_record(actor=None, ticket=resolved, reached=True, fix_score=5, attitude_score=5,
                                 attempts=0)  # fmt: skip
    callback = Callback.objects.get(ticket=resolved)
    assert (callback.attempts, callback.outcome, callback.fix_score) == (1, "", None)
    resolved.refresh_from_db()
    assert resolved.status == Status.RESOLVED
    # without the count (the API, an old page) each call is an attempt, as before
    services.callback_record(actor=None, ticket=resolved, reached=False)
    assert Callback.objects.get(ticket=resolved).attempts == 2


def test_the_call_form_posted_twice_logs_one_call(client, staff, make_customer):
    # given an agent logging a call they just handled, on the form as drawn (with its token)
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_interaction_add")
    data = _hidden_inputs(client.get(url).content.decode())
    assert data.get("submission_token")
    started = timezone.localtime() - dt.timedelta(minutes=5)
    data.update({
        "channel": "phone", "disposition": "nuisance", "customer": customer.pk, "caller_phone": "0903 123 456",
        "started_at_0": started.strftime("%d/%m/%Y"), "started_at_1": started.strftime("%H:%M:%S"),
        "handling_seconds": "95", "note": "Gọi quấy rối",
    })  # fmt: skip
    # when the form is posted twice
    first = client.post(url, data)
    second = client.post(url, data, follow=True)
    assert first.status_code == 302
    # then the one call is logged once, and the second post says so
    call = Interaction.objects.get(agent=staff[Role.AGENT])
    assert (call.handling_seconds, call.disposition, call.customer) == (95, "nuisance", customer)
    assert any("already logged" in m for m in _messages(second)), _messages(second)
    # a form drawn again is another call
    data["submission_token"] = _hidden_inputs(client.get(url).content.decode())["submission_token"]
    assert client.post(url, data).status_code == 302
    assert Interaction.objects.filter(agent=staff[Role.AGENT]).count() == 2


def test_the_call_service_logs_a_token_once_per_agent(staff, make_customer):
    customer = make_customer()
    now = timezone.now()
    call = {"channel": "phone", "disposition": "nuisance", "customer": customer, "note": "Gọi quấy rối",
            "started_at": now - dt.timedelta(minutes=2), "ended_at": now}  # fmt: skip
    first = services.interaction_record(actor=staff[Role.AGENT], token="t1", **call)
    assert services.interaction_record(actor=staff[Role.AGENT], token="t1", **call).pk == first.pk
    assert first.submission_key == "t1"
    # another agent's form has its own tokens; without a token every call is logged, as before
    services.interaction_record(actor=staff[Role.SUPERVISOR], token="t1", **call)
    services.interaction_record(actor=staff[Role.AGENT], **call)
    services.interaction_record(actor=staff[Role.AGENT], **call)
    assert Interaction.objects.filter(agent=staff[Role.AGENT]).count() == 3
    assert Interaction.objects.filter(agent=staff[Role.SUPERVISOR]).count() == 1


def _race(action, n: int = 4) -> tuple[list, list]:
    barrier = threading.Barrier(n)
    results: list = []
    errors: list = []

    def run():
        barrier.wait()
        try:
            results.append(action())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_message_posted_at_once_is_sent_once(make_customer, catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("two posts at once need PostgreSQL's concurrent transactions")
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                         customer=make_customer(phones=["0903 555 666"])).ticket  # fmt: skip
    results, errors = _race(lambda: services.ticket_add_note(
        actor=None, ticket=ticket, body="Chiều nay 15h thợ sẽ đến", to_customer=True, token="race-1"
    ))  # fmt: skip
    assert errors == []
    assert len({note.pk for note in results}) == 1
    assert TicketNote.objects.filter(ticket=ticket).count() == 1
    assert OutboxMessage.objects.filter(body__contains="Chiều nay 15h thợ sẽ đến").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_call_posted_at_once_is_logged_once(staff, make_customer):
    if connection.vendor != "postgresql":
        pytest.skip("two posts at once need PostgreSQL's concurrent transactions")
    customer = make_customer()
    now = timezone.now()
    results, errors = _race(lambda: services.interaction_record(
        actor=staff[Role.AGENT], channel="phone", disposition="nuisance", customer=customer,
        started_at=now - dt.timedelta(minutes=2), ended_at=now, token="race-1",
    ))  # fmt: skip
    assert errors == []
    assert len({call.pk for call in results}) == 1
    assert Interaction.objects.filter(agent=staff[Role.AGENT]).count() == 1


def test_the_callback_api_sent_twice_with_the_attempts_seen_counts_one_attempt(client, staff, resolved):
    client.force_login(staff[Role.AGENT])
    url = f"/api/v1/tickets/{resolved.pk}/callback/"
    body = {"reached": False, "comment": "Tắt máy", "attempts": 0}
    first = client.post(url, body, content_type="application/json")
    second = client.post(url, body, content_type="application/json")
    assert first.status_code == 201 and first.json()["attempts"] == 1
    assert second.status_code == 400
    assert "Another attempt was recorded meanwhile" in second.content.decode()
    assert Callback.objects.get(ticket=resolved).attempts == 1
    assert TicketEvent.objects.filter(ticket=resolved, kind="callback").count() == 1
