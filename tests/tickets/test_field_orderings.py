"""Outages and work orders when the field's moves come in an odd order (the field audit): two crews on one
fault finishing in either order, a crew sent to a reopened call, a planned outage called off, a customer who
called twice from two numbers, the language the customers and crews are told in, and an outage form refused on
its field."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from crm.dashboard_widgets import Board
from crm.models import OutboxMessage, Role
from tickets import dashboard
from tickets.models import EventKind, Incident, Status, Ticket, TicketEvent, WorkOrder, WorkOrderStatus
from tickets.services import (
    incident_open,
    incident_restore,
    ticket_change_status,
    ticket_open,
    work_order_advance,
    work_order_create,
)


def outage_call(catalogue, customer, incident=None, **kw) -> Ticket:
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, incident=incident, **kw).ticket  # fmt: skip


def _finish(crew, order):
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED):
        work_order_advance(actor=crew, order=order, to=step)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.DONE, resolution_code="fixed")


# 1. One crew done, the other called off -------------------------------------------------------------------


def test_one_crew_done_and_the_other_called_off_leaves_the_ticket_resolved(
    staff, make_staff, org, outage_ticket, dispatcher
):
    # given two crews sent to one fault
    a = staff[Role.FIELD_CREW]
    b = make_staff(Role.FIELD_CREW, [org["home"]], username="crew.b")
    first = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=a)
    second = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=b)
    # when crew A fixes it, and crew B, no longer needed, calls its own order off
    _finish(a, first)
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED  # B's order is still open
    work_order_advance(actor=b, order=second, to=WorkOrderStatus.CANCELLED, note="Đội A đã xử lý xong")
    # then the fault is fixed: the ticket is resolved with A's resolution, as if B had called off first
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.RESOLVED
    assert outage_ticket.resolved_at is not None and outage_ticket.callback_due is not None
    resolved = TicketEvent.objects.get(ticket=outage_ticket, kind=EventKind.STATUS, after__status=Status.RESOLVED)
    assert resolved.note == "Fault fixed"
    assert list(WorkOrder.objects.filter(ticket=outage_ticket).order_by("pk").values_list("status", flat=True)) == [
        WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED,
    ]  # fmt: skip
    # and the dispatchers are not asked to send a crew again to a fault already fixed
    assert not OutboxMessage.objects.filter(dedupe_key__contains=":called-off:").exists()
    assert not TicketEvent.objects.filter(ticket=outage_ticket, after__status=Status.ACKNOWLEDGED,
                                          after__has_key="work_orders_cancelled").exists()  # fmt: skip


def test_the_last_crew_called_off_with_no_job_done_still_goes_back_to_acknowledged(
    staff, outage_ticket, dispatcher
):
    # given one crew sent, which calls its order off (nobody has fixed anything)
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Xe hỏng")
    # then the ticket needs a crew again, and the dispatchers are told so
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED
    told = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:called-off:{dispatcher.staff_profile.pk}")
    assert told.body.endswith("No crew is sent any more.")


def test_a_job_done_before_the_ticket_was_reopened_does_not_resolve_it_again(
    staff, make_staff, org, outage_ticket
):
    # given a fault fixed by crew A, the ticket resolved, then reopened (the power went off again)
    a = staff[Role.FIELD_CREW]
    b = make_staff(Role.FIELD_CREW, [org["home"]], username="crew.b")
    _finish(a, work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=a))
    ticket_change_status(actor=staff[Role.AGENT], ticket=outage_ticket, to=Status.REOPENED, note="Lại mất điện")
    # when crew B is sent and calls its order off
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=b)
    work_order_advance(actor=b, order=order, to=WorkOrderStatus.CANCELLED, note="Không cần đi")
    # then the earlier cycle's job does not count: the new fault needs a crew
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED


# 5. A crew sent to a reopened ticket -----------------------------------------------------------------------


def test_sending_a_crew_to_a_reopened_ticket_makes_it_dispatched(staff, outage_ticket):
    # given an outage call resolved, then reopened (the power went off again)
    agent = staff[Role.AGENT]
    ticket_change_status(actor=agent, ticket=outage_ticket, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=agent, ticket=outage_ticket, to=Status.RESOLVED)
    ticket_change_status(actor=agent, ticket=outage_ticket, to=Status.REOPENED, note="Lại mất điện")
    # when the dispatcher sends a crew
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    # then the ticket is dispatched (README: "A ticket becomes dispatched only by sending a crew")
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED
    # and when that crew calls the job off, it goes back to acknowledged: nobody is sent any more
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Không vào được")
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED


# 3. A planned outage called off ------------------------------------------------------------------------------


def test_a_called_off_planned_outage_is_not_counted_as_restored_in_zero_minutes(client, org, staff):
    # given a planned outage for tomorrow, called off today (the maintenance will not happen), and an outage
    # of today restored after 30 minutes
    tomorrow = timezone.now() + dt.timedelta(days=1)
    planned = incident_open(actor=None, unit=org["home"], cause="Bảo trì lưới", started_at=tomorrow)
    assert incident_restore(actor=None, incident=planned)["called_off"] == 1
    start = timezone.now() - dt.timedelta(minutes=30)
    real = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=start)
    incident_restore(actor=None, incident=real, at=start + dt.timedelta(minutes=30))
    # when the manager reads the outage restore figures for a period covering both
    today = timezone.localdate()
    figures = dashboard.outages(Board(staff[Role.MANAGER], today - dt.timedelta(days=1), today + dt.timedelta(days=2)))
    # then only the outage that happened counts
    assert {k: figures[k] for k in ("count", "restored", "within_2h", "avg_restore_minutes")} == {
        "count": 1, "restored": 1, "within_2h": 1, "avg_restore_minutes": 30.0,
    }  # fmt: skip
    # and the called-off outage is closed at its start, marked called off
    planned.refresh_from_db()
    assert planned.restored_at == tomorrow and planned.called_off_at is not None
    assert list(Incident.objects.happened()) == [real]
    # and the outage list says "called off" where it would say when the power came back
    client.force_login(staff[Role.DISPATCHER])
    rows = {r.pk: r for r in client.get("/admin/tickets/incident/").context["cl"].result_list}
    admin = client.get("/admin/tickets/incident/").context["cl"].model_admin
    assert (admin.restored(rows[planned.pk]), admin.minutes_to_restore(rows[planned.pk])) == ("called off", None)
    assert admin.minutes_to_restore(rows[real.pk]) == 30


def test_the_database_refuses_an_outage_called_off_but_open(org):
    incident = incident_open(actor=None, unit=org["home"], cause="Bảo trì", started_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(called_off_at=timezone.now())
    assert Incident.objects.get(pk=incident.pk).called_off_at is None


# 4. One message per customer -------------------------------------------------------------------------------


def test_a_customer_who_called_twice_from_two_numbers_is_told_once(org, make_customer, catalogue):
    # given one customer who reported the outage twice: from their own phone, then from a neighbour's
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    customer = make_customer(phones=["0912 100 001"])
    first = outage_call(catalogue, customer, incident)
    second = outage_call(catalogue, customer, incident, caller_phone="+84912100777")
    # when the power is restored
    result = incident_restore(actor=None, incident=incident)
    # then (README: "once per customer and incident") the customer gets one message naming both calls, at the
    # address of their first call
    assert result == {"resolved": 2, "notified": 1}
    sms = OutboxMessage.objects.get(dedupe_key__endswith=":restored")
    assert (sms.recipient, sms.dedupe_key) == (
        "+84912100001", f"incident:{incident.pk}:ticket:{first.pk}:restored"
    )
    assert sms.body == (
        f"Power is restored in your area ({first.number}, {second.number}). Thank you for your patience."
    )


# 2. The centre's language -----------------------------------------------------------------------------------


def test_the_customers_sms_does_not_follow_the_dispatchers_browser_language(
    client, settings, staff, org, make_customer, catalogue
):
    # given the centre's language, Vietnamese, and an outage with one customer's call, a crew sent to it
    settings.LANGUAGE_CODE = "vi"
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    ticket = outage_call(catalogue, make_customer(phones=["0912 100 001"]), incident)
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=ticket, crew=crew)
    # when a dispatcher whose browser reads English restores it from the admin
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(staff[Role.DISPATCHER])
    response = client.post("/admin/tickets/incident/", {"action": "restore_now", "_selected_action": [incident.pk]},
                           follow=True)  # fmt: skip
    # then the page answers the dispatcher in English
    assert [str(m) for m in response.context["messages"]] == ["1 ticket(s) resolved and their customers told."]
    # and the customer, the crew and the ticket's record are in the centre's language, not in the dispatcher's
    sms = OutboxMessage.objects.get(dedupe_key__endswith=":restored")
    assert sms.body == (
        f"Khu vực của Quý khách đã có điện trở lại (mã yêu cầu {ticket.number}). Cảm ơn Quý khách đã kiên nhẫn "
        "chờ đợi."
    )
    off = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:off:{crew.staff_profile.pk}")
    assert off.body == "Đã có điện trở lại"
    event = TicketEvent.objects.get(ticket=ticket, after__status=Status.RESOLVED)
    assert event.note == "Đã có điện trở lại"


def test_staff_notices_of_the_work_order_services_are_in_the_centres_language(
    settings, staff, make_staff, org, outage_ticket, dispatcher
):
    # given the centre's language, Vietnamese, and a crew sent by a dispatcher working in English
    settings.LANGUAGE_CODE = "vi"
    translation.activate("en")
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    # when the crew calls the order off
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Xe hỏng")
    # then the dispatchers are told in Vietnamese, as is the notice the crew got of the job
    sent = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:{crew.staff_profile.pk}")
    assert "điện thoại" in sent.body and "phone" not in sent.body, sent.body
    told = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:called-off:{dispatcher.staff_profile.pk}")
    assert "called off" not in told.body and told.body.startswith("Phiếu công tác"), told.body
    # and a refusal still answers in the language of the one who asked
    with pytest.raises(ValidationError, match="cannot become"):
        work_order_advance(actor=crew, order=order, to=WorkOrderStatus.DONE, resolution_code="fixed")


# 6. The outage form -------------------------------------------------------------------------------------------


def test_an_outage_estimate_before_its_start_is_refused_on_the_form(client, staff, org):
    # given a dispatcher entering an outage whose estimated restore is yesterday
    client.force_login(staff[Role.DISPATCHER])
    now = timezone.localtime()
    data = {"unit": org["home"].pk, "cause": "Giông", "started_at_0": now.strftime("%Y-%m-%d"),
            "started_at_1": now.strftime("%H:%M:%S"), "wards": [], "feeder_code": "XT-471",
            "transformer_code": "", "estimated_restore_at_0": (now - dt.timedelta(days=1)).strftime("%Y-%m-%d"),
            "estimated_restore_at_1": "10:00:00"}  # fmt: skip
    # when the form is saved
    response = client.post("/admin/tickets/incident/add/", data)
    # then the form comes back with what was typed and the service's refusal beside its field
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    assert form.errors == {"estimated_restore_at": ["The estimate is before the start."]}
    assert (form.data["cause"], form.data["feeder_code"]) == ("Giông", "XT-471")
    # and nothing was entered
    assert not Incident.objects.exists()
