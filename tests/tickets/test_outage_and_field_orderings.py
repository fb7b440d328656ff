"""Outages, work orders, callbacks and interactions: what happens when moves cross or come in an odd order.

Linking a call to an outage (at intake, later, while it is restored, before it starts), restoring it (who is
told, once, and the crews called off), two crews finishing together, a crew called off, a reopened ticket's
earlier survey, and the times and unit of a logged call."""

import datetime as dt
import threading
import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from core.errors import NotAllowed
from crm.dashboard_widgets import Board
from crm.models import OutboxMessage, Role
from tickets.dashboard import satisfaction
from tickets.models import (
    Callback,
    EventKind,
    Interaction,
    Status,
    Ticket,
    WorkOrder,
    WorkOrderStatus,
)
from tickets.selectors import callbacks_due
from tickets.services import (
    MESSAGE_MAX_CHARS,
    callback_record,
    incident_open,
    incident_restore,
    interaction_record,
    ticket_add_note,
    ticket_change_status,
    ticket_link_incident,
    ticket_open,
    ticket_reroute,
    work_order_advance,
    work_order_create,
)

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
H = dt.timedelta(hours=1)


def outage_call(catalogue, customer, incident=None, **kw):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, incident=incident, **kw).ticket  # fmt: skip


def snapshot(ticket):
    return model_to_dict(Ticket.objects.get(pk=ticket.pk))


# Linking a call to an outage ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_call_taken_while_the_outage_is_restored_is_not_left_open_on_a_restored_incident(
    org, make_customer, catalogue
):
    if connection.vendor != "postgresql":
        pytest.skip("two writers at once need PostgreSQL")
    # given an outage with one call, restored by a dispatcher whose transaction is still writing
    incident = incident_open(actor=None, unit=org["home"], cause="Giông lốc", started_at=timezone.now())
    customer = make_customer()
    outage_call(catalogue, customer, incident)
    restored, errors, late = threading.Event(), [], []

    def restore():
        try:
            with transaction.atomic():
                incident_restore(actor=None, incident=incident)
                restored.set()
                threading.Event().wait(1.5)  # hundreds of rows still being written
        except Exception as exc:
            errors.append(exc)
            restored.set()
        finally:
            connection.close()

    def call():
        try:
            restored.wait(10)
            late.append(outage_call(catalogue, customer).pk)  # intake looks for the covering open outage
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    # when an agent takes one more outage call of the area at that moment
    threads = [threading.Thread(target=restore), threading.Thread(target=call)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then the call waited for the restore and is not linked to the outage that is over (it stays open, to work)
    assert errors == []
    ticket = Ticket.objects.get(pk=late[0])
    assert (ticket.incident_id, ticket.status) == (None, Status.NEW)


def test_a_call_before_a_planned_outage_starts_is_not_linked_to_it(org, make_customer, catalogue):
    # given maintenance announced for tomorrow, entered ahead with its start
    customer = make_customer()
    tomorrow = timezone.now() + dt.timedelta(days=1)
    planned = incident_open(actor=None, unit=org["home"], cause="Cắt điện bảo trì", started_at=tomorrow,
                            estimated_restore_at=tomorrow + 4 * H)  # fmt: skip
    # when a customer of the area calls today about a loss of power
    ticket = outage_call(catalogue, customer)
    # then the call is not part of tomorrow's outage
    assert ticket.incident_id is None
    # and naming the planned outage is refused on its field, with no ticket taken
    with pytest.raises(ValidationError) as refused:
        outage_call(catalogue, customer, planned)
    assert "incident" in refused.value.message_dict
    assert Ticket.objects.count() == 1


def test_linking_later_keeps_the_rules_of_intake_and_the_incidents_unit_scope(
    org, make_customer, catalogue, make_staff
):
    # given calls taken before an outage of the home unit's Bến Nghé ward was entered
    outsider = make_customer(org["sibling"], ward="Phường 1", phones=["0912 777 001"])
    stranger = make_staff(Role.AGENT, [org["sibling"]])
    complaint = ticket_open(actor=stranger, category=catalogue["billing"], channel="phone",
                            description="Hóa đơn cao", customer=outsider).ticket  # fmt: skip
    agent = make_staff(Role.AGENT, [org["home"]])
    bill = ticket_open(actor=agent, category=catalogue["billing"], channel="phone", description="Hóa đơn",
                       customer=make_customer(org["home"])).ticket  # fmt: skip
    other_ward = outage_call(catalogue, make_customer(org["home"], ward="Phường Đa Kao"))
    inside = outage_call(catalogue, make_customer(org["home"]))
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố", wards=["Phường Bến Nghé"],
                             started_at=timezone.now() - H)  # fmt: skip
    planned = incident_open(actor=None, unit=org["home"], cause="Bảo trì",
                            started_at=timezone.now() + dt.timedelta(days=1))  # fmt: skip
    refused_moves = [
        (stranger, complaint, incident, NotAllowed),  # an outage of a unit the agent does not serve
        (agent, bill, incident, ValidationError),  # not an outage report
        (agent, other_ward, incident, ValidationError),  # the outage does not cover the address
        (agent, inside, planned, ValidationError),  # the outage has not started
    ]
    for actor, ticket, target, error in refused_moves:
        before, events = snapshot(ticket), ticket.events.count()
        # when it is linked later
        with pytest.raises(error):
            ticket_link_incident(actor=actor, ticket=ticket, incident=target)
        # then it is refused and nothing changed
        assert (snapshot(ticket), ticket.events.count()) == (before, events)
    # and the call the outage covers is linked, with its event
    ticket_link_incident(actor=agent, ticket=inside, incident=incident)
    assert Ticket.objects.get(pk=inside.pk).incident_id == incident.pk
    assert inside.events.get(kind=EventKind.LINKED).after == {"incident": incident.pk}


def test_an_outage_taken_with_the_cards_one_click_is_the_agents(client, staff, org, make_customer, catalogue):
    # given an agent keeping the tickets they take (their profile's default) and an outage on a customer's card
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    agent = staff[Role.AGENT]
    assert agent.staff_profile.assign_new_tickets
    client.force_login(agent)
    # when the agent takes the call with the card's one click
    answer = client.post(reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk]))
    # then the ticket is linked to the outage and is the agent's, as one from the new-ticket form
    assert answer.status_code == 302
    ticket = Ticket.objects.get(customer=customer)
    assert (ticket.incident_id, ticket.assignee_id) == (incident.pk, agent.pk)


def _cards_outage_form(client, customer, query=""):
    """The card's one-click "this call is about the outage" as rendered: its action and hidden fields."""
    import re

    html = client.get(reverse("admin:customers_customer_card", args=[customer.pk]) + query).content.decode()
    form = re.search(r'<form class="inline" method="post" action="([^"]*report-outage[^"]*)">(.*?)</form>', html, re.S)
    assert form is not None
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    return html, form.group(1).replace("&amp;", "&"), fields


def test_the_one_click_outage_call_from_a_screen_pop_keeps_the_number_calling(
    client, staff, org, catalogue, make_customer
):
    # The customer's primary number is a landline; they call from their mobile, which pops their card.
    customer = make_customer(phones=["028 3822 1234", "0912 000 111"])
    incident_open(actor=None, unit=org["home"], cause="Sự cố trạm biến áp",
                  started_at=timezone.now() - dt.timedelta(minutes=20))  # fmt: skip
    client.force_login(staff[Role.AGENT])
    html, action, fields = _cards_outage_form(client, customer, "?phone=0912000111")
    assert "Call from" in html
    assert fields["caller_phone"] == "+84912000111"
    # The card's one-click "this call is about the outage", as the agent presses it (its form, hidden fields too).
    answer = client.post(action, fields)
    assert answer.status_code == 302
    # back on the card, which still says who calls
    assert answer["Location"].endswith("?phone=%2B84912000111")
    ticket = Ticket.objects.get(customer=customer)
    # The number calling is the one to call back and to tell when the power is back, as the card's "New ticket".
    assert ticket.caller_phone == "+84912000111"
    assert Interaction.objects.get(ticket=ticket).caller_phone == "+84912000111"


def test_the_one_click_outage_call_from_a_bare_card_carries_no_number(client, staff, org, catalogue, make_customer):
    customer = make_customer(phones=["028 3822 1234", "0912 000 111"])
    incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now() - dt.timedelta(minutes=5))
    client.force_login(staff[Role.AGENT])
    _html, action, fields = _cards_outage_form(client, customer)
    assert "caller_phone" not in fields
    assert client.post(action, fields).status_code == 302
    ticket = Ticket.objects.get(customer=customer)
    assert (ticket.caller_phone, Interaction.objects.get(ticket=ticket).caller_phone) == ("", "")


def test_the_one_click_outage_call_refuses_a_number_calling_that_is_not_a_phone(
    client, staff, org, catalogue, make_customer
):
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk])
    answer = client.post(url, {"caller_phone": "12ab"}, follow=True)
    assert [str(m) for m in answer.context["messages"]] == [
        "The number calling (12ab) is not a phone number: A phone number has only digits, spaces, dots, dashes, "
        "brackets and a leading +. No ticket was taken."
    ]
    assert not Ticket.objects.filter(customer=customer).exists()
    assert not Interaction.objects.filter(customer=customer).exists()


# Restoring an outage ------------------------------------------------------------------------------------


def test_restoring_tells_a_customer_who_called_twice_once(org, make_customer, catalogue):
    # given a customer who called twice about the outage, and another who called once
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    twice = make_customer(name="Khách A", phones=["0912 100 001"])
    once = make_customer(name="Khách B", phones=["0912 100 002"])
    first, second, third = (outage_call(catalogue, c, incident) for c in (twice, twice, once))
    # when the power is restored
    result = incident_restore(actor=None, incident=incident)
    # then every call is resolved and each customer gets one SMS, naming the calls they made
    assert result == {"resolved": 3, "notified": 2}
    told = dict(
        OutboxMessage.objects.filter(dedupe_key__endswith=":restored").values_list("recipient", "body")
    )
    assert told == {
        "+84912100001": f"Power is restored in your area ({first.number}, {second.number}). "
                        "Thank you for your patience.",
        "+84912100002": f"Power is restored in your area ({third.number}). Thank you for your patience.",
    }  # fmt: skip


def test_restoring_tells_a_customer_who_has_only_an_email(org, make_customer, catalogue):
    # given a customer with only an e-mail who reported the outage through the website
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    customer = make_customer(name="Khách web", phones=[], email="khach@example.vn")
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="website", description="Mất điện",
                         customer=customer, incident=incident).ticket  # fmt: skip
    # when the power is restored
    result = incident_restore(actor=None, incident=incident)
    # then they are told by e-mail
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED
    assert result == {"resolved": 1, "notified": 1}
    email = OutboxMessage.objects.get(recipient="khach@example.vn")
    assert (email.channel, email.subject) == ("email", ticket.number)


def test_a_reopened_outage_ticket_restored_again_tells_the_customer_again(org, catalogue, make_customer):
    # given an outage ticket resolved by its incident's restore (the customer told by SMS)
    customer = make_customer(phones=["0912 345 678"])
    first = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=T - H)
    ticket = outage_call(catalogue, customer, first, at=T)
    assert incident_restore(actor=None, incident=first, at=T + H) == {"resolved": 1, "notified": 1}
    # and, the power gone again that evening, the ticket reopened and linked to the new outage
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=T + 5 * H)
    second = incident_open(actor=None, unit=org["home"], cause="Sự cố máy biến áp", started_at=T + 4 * H)
    ticket_link_incident(actor=None, ticket=ticket, incident=second)
    # when the second outage is restored
    result = incident_restore(actor=None, incident=second, at=T + 7 * H)
    # then the ticket is resolved again and the customer is told again
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED
    assert result == {"resolved": 1, "notified": 1}
    assert OutboxMessage.objects.filter(recipient="+84912345678", body__contains="restored").count() == 2


def test_restoring_calls_off_the_crews_sent_to_its_calls(client, org, make_customer, catalogue, staff):
    # given an outage call a crew was sent to
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    ticket = outage_call(catalogue, make_customer(), incident)
    crew = staff[Role.FIELD_CREW]
    crew.staff_profile.phone = "+84903000077"
    crew.staff_profile.save()
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket, crew=crew)
    # when the power is restored
    incident_restore(actor=staff[Role.DISPATCHER], incident=incident)
    # then the ticket is resolved, the order cancelled with the reason, and the crew told
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED
    order.refresh_from_db()
    assert (order.status, order.note) == (WorkOrderStatus.CANCELLED, "Power restored")
    resolved = ticket.events.get(kind=EventKind.STATUS, after__status=Status.RESOLVED)
    assert resolved.after["work_orders_cancelled"] == [order.pk]
    told = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:off:{crew.staff_profile.pk}")
    assert (told.recipient, told.body) == ("+84903000077", "Power restored")
    # and the order is off the crew's page
    client.force_login(crew)
    assert ticket.number not in client.get("/field/").content.decode()


# Work orders --------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_crews_finishing_the_last_two_orders_at_once_resolve_the_ticket(
    org, make_customer, catalogue, make_staff, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("two writers at once need PostgreSQL")
    # given two crews sent to one call, both having called the customer
    crews = [make_staff(Role.FIELD_CREW, [org["home"]]) for _ in range(2)]
    ticket = outage_call(catalogue, make_customer())
    orders = [work_order_create(actor=None, ticket=ticket, crew=crew) for crew in crews]
    for order, crew in zip(orders, crews, strict=True):
        for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
            order = work_order_advance(actor=crew, order=order, to=step)
    # each crew's transaction, having written its order "done", waits (a while) for the other to write its own:
    # without a lock taken before, both write, neither sees the other's, and nobody resolves the ticket
    saved = {order.pk: threading.Event() for order in orders}
    original_save = WorkOrder.save

    def save_then_wait_for_the_other(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        if self.status == WorkOrderStatus.DONE:
            saved[self.pk].set()
            for pk, event in saved.items():
                if pk != self.pk:
                    event.wait(2)

    monkeypatch.setattr(WorkOrder, "save", save_then_wait_for_the_other)
    errors = []

    def finish(order, crew):
        try:
            work_order_advance(actor=crew, order=order, to=WorkOrderStatus.DONE, resolution_code="fixed")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    # when both press "done" at once
    threads = [threading.Thread(target=finish, args=pair) for pair in zip(orders, crews, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then both orders are done and the ticket is resolved, once
    assert errors == []
    assert set(WorkOrder.objects.filter(ticket=ticket).values_list("status", flat=True)) == {
        WorkOrderStatus.DONE
    }
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED
    assert ticket.events.filter(kind=EventKind.STATUS, after__status=Status.RESOLVED).count() == 1


def test_a_crew_calling_off_the_only_order_takes_the_ticket_back_to_acknowledged(outage_ticket_sent, staff):
    ticket, order = outage_ticket_sent
    crew = staff[Role.FIELD_CREW]
    # when the crew cancels the only open order of the dispatched ticket
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Xe hỏng")
    # then the ticket is acknowledged again, for the dispatcher to send a crew, and its event says why
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    event = ticket.events.filter(kind=EventKind.STATUS).latest("id")
    assert (event.before, event.after) == (
        {"status": Status.DISPATCHED},
        {"status": Status.ACKNOWLEDGED, "work_orders_cancelled": [order.pk]},
    )
    assert event.note == "No crew is sent any more: Xe hỏng"
    # and a crew sent again dispatches it again
    work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket, crew=crew)
    assert Ticket.objects.get(pk=ticket.pk).status == Status.DISPATCHED


def test_a_crew_calling_off_one_of_two_orders_leaves_the_ticket_dispatched(outage_ticket_sent, staff):
    ticket, order = outage_ticket_sent
    work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket)  # a second crew is on the way
    events = ticket.events.count()
    work_order_advance(
        actor=staff[Role.FIELD_CREW], order=order, to=WorkOrderStatus.CANCELLED, note="Xe hỏng"
    )
    assert Ticket.objects.get(pk=ticket.pk).status == Status.DISPATCHED
    assert ticket.events.count() == events


def test_a_ticket_rerouted_away_from_its_crew_is_acknowledged_for_the_new_units_dispatcher(
    outage_ticket_sent, staff, org
):
    ticket, order = outage_ticket_sent
    # when a supervisor sends the dispatched ticket to another unit (its crew is called off)
    ticket_reroute(actor=None, ticket=ticket, unit=org["sibling"], reason="Sai địa bàn")
    # then the ticket waits for the new unit's crew, acknowledged, and the re-routing says so
    ticket.refresh_from_db()
    assert (ticket.status, ticket.unit_id) == (Status.ACKNOWLEDGED, org["sibling"].pk)
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.CANCELLED
    routed = ticket.events.get(kind=EventKind.ROUTED)
    assert routed.before["status"] == Status.DISPATCHED
    assert routed.after["status"] == Status.ACKNOWLEDGED
    assert routed.after["work_orders_cancelled"] == [order.pk]


@pytest.fixture
def outage_ticket_sent(catalogue, make_customer, staff):
    ticket = outage_call(catalogue, make_customer())
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket, crew=staff[Role.FIELD_CREW])
    assert Ticket.objects.get(pk=ticket.pk).status == Status.DISPATCHED
    return Ticket.objects.get(pk=ticket.pk), order


def test_the_field_page_answers_a_garbled_order_number_with_not_found(
    client, staff, catalogue, make_customer
):
    order = work_order_create(actor=None, ticket=outage_call(catalogue, make_customer()))
    client.raise_request_exception = False
    client.force_login(staff[Role.FIELD_CREW])
    for garbled in ("12abc", "", "١٢", "9" * 40):
        assert client.post("/field/", {"order": garbled, "to": "acknowledged"}).status_code == 404
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ISSUED


# Callbacks ----------------------------------------------------------------------------------------------


def test_reopening_a_ticket_keeps_its_earlier_survey_in_the_satisfaction_figures(
    make_customer, catalogue, staff
):
    # given an unhappy customer's survey of a resolved ticket
    agent = staff[Role.AGENT]
    ticket = outage_call(catalogue, make_customer())
    ticket_change_status(actor=agent, ticket=ticket, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=agent, ticket=ticket, to=Status.RESOLVED)
    callback_record(actor=agent, ticket=ticket, reached=True, fix_score=1, attitude_score=2)
    today = timezone.localdate()

    def board():
        return Board(staff[Role.ADMINISTRATOR], today - dt.timedelta(days=1), today + dt.timedelta(days=1))

    assert (satisfaction(board())["responses"], satisfaction(board())["avg_fix"]) == (1, 1.0)
    # when the customer calls again and the ticket is reopened
    ticket_change_status(actor=agent, ticket=ticket, to=Status.REOPENED, note="Vẫn mất điện")
    # then the survey they answered still counts
    after = satisfaction(board())
    assert (after["responses"], after["avg_fix"], after["avg_attitude"]) == (1, 1.0, 2.0)
    # and the next resolution gets a callback of its own, counted beside the first
    ticket_change_status(actor=agent, ticket=ticket, to=Status.RESOLVED)
    due = {t.pk: t.attempts for t in callbacks_due(user=agent)}
    assert due == {ticket.pk: 0}
    second = callback_record(actor=agent, ticket=ticket, reached=True, fix_score=5, attitude_score=4)
    assert sorted(Callback.objects.filter(ticket=ticket).values_list("cycle", "fix_score")) == [
        (0, 1),
        (1, 5),
    ]
    assert second.cycle == 1
    both = satisfaction(board())
    assert (both["responses"], both["avg_fix"], both["avg_attitude"]) == (2, 3.0, 3.0)


# Interactions -------------------------------------------------------------------------------------------


def test_the_api_refuses_a_call_that_lasts_a_month_or_ends_in_the_future(client, staff, make_customer):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    start = timezone.now() - dt.timedelta(minutes=5)
    for end, why in (
        (start + dt.timedelta(days=30), "A call lasts at most 24 hours."),
        (start + dt.timedelta(hours=2), "A call cannot end in the future: log it when it is over."),
    ):
        answer = client.post(
            "/api/v1/interactions/",
            {"channel": "phone", "disposition": "information", "customer_code": customer.code,
             "started_at": start.isoformat(), "ended_at": end.isoformat()},
            content_type="application/json",
        )  # fmt: skip
        assert (answer.status_code, answer.json()) == (400, {"ended_at": [why]})
    assert not Interaction.objects.exists()


def test_the_service_refuses_the_same_call_from_the_admin_as_from_the_api(staff, make_customer):
    start = timezone.now() - dt.timedelta(minutes=5)
    with pytest.raises(ValidationError) as refused:
        interaction_record(actor=staff[Role.AGENT], channel="phone", disposition="information",
                           started_at=start, ended_at=start + dt.timedelta(hours=25), customer=make_customer())  # fmt: skip
    assert refused.value.message_dict == {"ended_at": ["A call lasts at most 24 hours."]}
    assert not Interaction.objects.exists()


def test_a_call_about_a_ticket_counts_for_the_tickets_unit_and_another_unit_named_is_refused(
    client, org, make_staff, make_customer, catalogue
):
    # given an agent serving two units and a ticket of one of them
    agent = make_staff(Role.AGENT, [org["home"], org["sibling"]])
    ticket = outage_call(catalogue, make_customer(org["home"]))
    client.force_login(agent)
    now = timezone.now()
    call = {"channel": "phone", "disposition": "ticket", "ticket_number": ticket.number,
            "started_at": (now - dt.timedelta(seconds=90)).isoformat(), "handling_seconds": 60}  # fmt: skip
    # when the softphone names the other unit
    answer = client.post("/api/v1/interactions/", {**call, "unit_code": org["sibling"].code},
                         content_type="application/json")  # fmt: skip
    # then it is refused on that field, and nothing is logged
    assert answer.status_code == 400
    assert list(answer.json()) == ["unit_code"]
    assert not Interaction.objects.exists()
    # and without it, or naming the ticket's unit, the call counts for the ticket's unit
    for extra in ({}, {"unit_code": org["home"].code}):
        answer = client.post("/api/v1/interactions/", {**call, **extra}, content_type="application/json")
        assert (answer.status_code, answer.json()["unit_code"]) == (201, org["home"].code)
    assert set(Interaction.objects.values_list("unit_id", flat=True)) == {org["home"].pk}


# Messages typed in decomposed Unicode -------------------------------------------------------------------


def test_a_message_to_the_customer_typed_in_decomposed_unicode_is_counted_by_its_letters(
    catalogue, make_customer, staff
):
    # given 400 letters (under the 480 a message may hold) typed with a keyboard that writes decomposed Unicode
    ticket = outage_call(catalogue, make_customer(phones=["0912 345 678"]))
    written = ("Điện lực đã khắc phục sự cố, xin quý khách thông cảm. " * 8)[:399] + "."
    typed = unicodedata.normalize("NFD", written)
    assert len(written) == 400 < MESSAGE_MAX_CHARS < len(typed)
    # when the agent sends it
    note = ticket_add_note(actor=staff[Role.AGENT], ticket=ticket, body=typed, to_customer=True)
    # then it is taken, kept and sent composed
    sms = OutboxMessage.objects.get(dedupe_key=f"ticket-note:{note.pk}")
    assert (note.body, sms.body) == (written, f"{ticket.number}: {written}")


def test_a_description_typed_in_decomposed_unicode_is_kept_composed_and_cut_between_letters(
    catalogue, make_customer, dispatcher
):
    written = (
        "Mất điện từ sáng, cột điện đầu hẻm bị nghiêng, dây võng xuống sát mái tôn nhà số 12 và 14 bên cạnh."
    )
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone",
                         description=unicodedata.normalize("NFD", written), customer=make_customer()).ticket  # fmt: skip
    assert Ticket.objects.get(pk=ticket.pk).description == written
    notice = OutboxMessage.objects.get(recipient=dispatcher.staff_profile.phone)
    assert notice.body.endswith(f"; {written}")
