import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from crm.models import OutboxMessage, Role, Unit
from customers.models import Customer
from tests.organisation import merge
from tickets.models import Callback, CallbackOutcome, Disposition, EventKind, Incident, Status, Ticket
from tickets.selectors import incidents_for_customer, outages_to_link
from tickets.services import (
    callback_record,
    incident_open,
    incident_restore,
    interaction_log,
    ticket_change_status,
    ticket_link_incident,
    ticket_open,
    ticket_reroute,
)


def test_an_incident_covers_its_wards_and_the_card_offers_it(client, staff, org, make_customer, catalogue):
    inside = make_customer(ward="Phường Bến Nghé")
    outside = make_customer(ward="Phường Đa Kao", name="Lê Văn B", phones=["0912 000 001"])
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm biến áp", wards=["Phường Bến Nghé"],
                             started_at=timezone.now())  # fmt: skip
    assert incidents_for_customer(inside) == [incident]
    assert incidents_for_customer(outside) == []
    client.force_login(staff[Role.AGENT])
    card = client.get(f"/admin/customers/customer/{inside.pk}/card/")
    outages = next(s for s in card.context["card"].sections if s.key == "outages")
    assert outages.rows[0][0] == "Sự cố trạm biến áp"
    _label, url, method = outages.actions[0]
    assert method == "post"
    # one click: the call becomes an outage ticket linked to the incident
    assert client.post(url).status_code == 302
    ticket = Ticket.objects.get()
    assert (ticket.customer, ticket.incident, ticket.category.code) == (inside, incident, "outage")


def test_the_virtual_assistant_asks_whether_a_customer_has_an_outage(client, staff, org, make_customer):
    customer = make_customer(phones=["0903 123 456"])
    client.force_login(staff[Role.AGENT])
    assert client.get("/api/v1/outages/status", {"phone": "0903123456"}).json()["outage"] is False
    incident_open(actor=None, unit=org["home"], cause="Cắt điện sửa chữa", started_at=timezone.now(),
                  estimated_restore_at=timezone.now() + dt.timedelta(hours=1))  # fmt: skip
    by_phone = client.get("/api/v1/outages/status", {"phone": "+84 903 123 456"}).json()
    by_code = client.get("/api/v1/outages/status", {"customer_code": customer.code}).json()
    assert by_phone["outage"] is True and by_code == by_phone
    assert by_phone["incidents"][0]["cause"] == "Cắt điện sửa chữa"
    assert client.get("/api/v1/outages/status", {"phone": "abc"}).status_code == 400
    assert client.get("/api/v1/outages/status").status_code == 400


def test_restoring_resolves_the_linked_tickets_and_tells_their_customers(org, make_customer, catalogue):
    started = timezone.now() - dt.timedelta(minutes=95)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=started)
    customers = [make_customer(name=f"Khách {i}", phones=[f"0912 100 00{i}"]) for i in range(3)]
    tickets = [ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x", customer=c,
                           incident=incident).ticket for c in customers]  # fmt: skip
    ticket_change_status(actor=None, ticket=tickets[0], to=Status.ACKNOWLEDGED)
    result = incident_restore(actor=None, incident=incident, at=started + dt.timedelta(minutes=90))
    assert result == {"resolved": 3, "notified": 3}
    incident.refresh_from_db()
    assert incident.restore_minutes == 90
    assert set(Ticket.objects.values_list("status", flat=True)) == {Status.RESOLVED}
    assert OutboxMessage.objects.filter(dedupe_key__endswith=":restored").count() == 3
    with pytest.raises(ValidationError):
        incident_restore(actor=None, incident=incident)
    assert OutboxMessage.objects.filter(dedupe_key__endswith=":restored").count() == 3


def test_restoring_tells_a_customer_with_only_a_landline_by_email_and_one_without_email_not_at_all(
    org, make_customer, catalogue
):
    # given an outage with calls from two customers whose only phone is a landline, one with an e-mail
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    with_email = make_customer(name="Khách A", phones=["(028) 3822 1234"], email="khach.a@example.vn")
    without = make_customer(name="Khách B", phones=["(028) 3822 5678"])
    for customer in (with_email, without):
        ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x", customer=customer,
                    incident=incident)  # fmt: skip
    # when the power is restored
    incident_restore(actor=None, incident=incident)
    # then the first is told by e-mail, and nothing is written for the second (no SMS reaches a landline)
    told = OutboxMessage.objects.filter(dedupe_key__endswith=":restored")
    assert list(told.values_list("channel", "recipient")) == [("email", "khach.a@example.vn")]


@pytest.mark.django_db(transaction=True)
def test_a_storm_of_500_calls_is_taken_linked_and_notified(org, make_customer, catalogue, make_staff):
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Giông lốc", started_at=timezone.now())
    workers = 8 if connection.vendor == "postgresql" else 1  # SQLite has a single writer
    errors, per_worker = [], 500 // workers + (1 if 500 % workers else 0)
    done = []

    def take(n):
        try:
            for i in range(n):
                done.append(ticket_open(actor=None, category=catalogue["outage"], channel="phone",
                                        description=f"Mất điện {i}", customer=customer, incident=incident).ticket.pk)  # fmt: skip
        except Exception as exc:  # the test's point: there must be none
            errors.append(exc)
        finally:
            if workers > 1:
                connection.close()

    counts = [per_worker] * (workers - 1) + [500 - per_worker * (workers - 1)]
    threads = [threading.Thread(target=take, args=(n,)) for n in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(done) == 500 == Ticket.objects.filter(incident=incident).count()
    assert Ticket.objects.values("number").distinct().count() == 500
    assert OutboxMessage.objects.filter(recipient=dispatcher.username).count() == 500
    assert incident_restore(actor=None, incident=incident)["resolved"] == 500


def test_callback_survey_closes_the_ticket_and_three_misses_mean_unreachable(make_customer, catalogue, staff):
    agent = staff[Role.AGENT]
    first, second = (
        ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                    customer=make_customer(name=n, phones=[p])).ticket
        for n, p in (("A", "0912 000 101"), ("B", "0912 000 102"))
    )  # fmt: skip
    with pytest.raises(ValidationError):
        callback_record(
            actor=agent, ticket=first, reached=True, fix_score=5, attitude_score=5
        )  # not resolved yet
    for ticket in (first, second):
        ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
        ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED)
    with pytest.raises(ValidationError):
        callback_record(actor=agent, ticket=first, reached=True, fix_score=6, attitude_score=5)
    assert not Callback.objects.exists()
    survey = callback_record(
        actor=agent, ticket=first, reached=True, fix_score=4, attitude_score=5, comment="Nhanh"
    )
    assert (survey.outcome, survey.fix_score, survey.attitude_score) == (CallbackOutcome.SURVEYED, 4, 5)
    assert Ticket.objects.get(pk=first.pk).status == Status.CLOSED
    for _attempt in range(3):
        missed = callback_record(actor=agent, ticket=second, reached=False)
    assert (missed.outcome, missed.attempts) == (CallbackOutcome.UNREACHABLE, 3)
    assert Ticket.objects.get(pk=second.pk).status == Status.CLOSED
    assert second.events.filter(kind=EventKind.CALLBACK).count() == 3


def test_interactions_keep_handling_time_and_refuse_bad_times(make_customer, staff, org):
    start = timezone.now()
    call = interaction_log(actor=staff[Role.AGENT], channel="phone", started_at=start,
                           ended_at=start + dt.timedelta(seconds=185), disposition=Disposition.NUISANCE,
                           unit=org["home"], customer=make_customer(), caller_phone="0903 123 456")  # fmt: skip
    assert (call.handling_seconds, call.caller_phone) == (185, "+84903123456")
    with pytest.raises(ValidationError):
        interaction_log(actor=staff[Role.AGENT], channel="phone", started_at=start, ended_at=start - dt.timedelta(seconds=1),
                        disposition=Disposition.DROPPED, unit=org["home"])  # fmt: skip


def test_restoring_takes_the_same_queries_for_few_and_many_tickets(org, make_customer, catalogue):
    from django.test.utils import CaptureQueriesContext

    counts = []
    for n in (1, 4):
        incident = incident_open(actor=None, unit=org["home"], cause=f"Sự cố {n}", started_at=timezone.now())
        for i in range(n):
            customer = make_customer(name=f"Khách {n}-{i}", phones=[f"0913 {n}00 00{i}"])
            ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x", customer=customer,
                        incident=incident)  # fmt: skip
        with CaptureQueriesContext(connection) as ctx:
            assert incident_restore(actor=None, incident=incident)["notified"] == n
        counts.append(len(ctx))
    assert counts[0] == counts[1]


def test_the_outage_form_offers_only_the_units_in_service_today(client, org, make_staff):
    # given a supervisor of the unit that took over Sơn Hòa, who still sees Sơn Hòa's old records
    successor = org["other_corporation"]
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    supervisor = make_staff(Role.SUPERVISOR, [successor])
    assert Unit.objects.for_user(supervisor).filter(pk=merged.pk).exists()
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    client.force_login(supervisor)
    # when they open the outage form and search its unit field
    form = client.get(reverse("admin:tickets_incident_add")).context["adminform"].form
    found = client.get(
        form.fields["unit"].widget.widget.get_url(),
        {"app_label": "tickets", "model_name": "incident", "field_name": "unit", "term": "Hòa"},
    ).json()["results"]
    # then the unit merged away is not offered; its successor is
    offered = set(form.fields["unit"].queryset.values_list("pk", flat=True))
    assert successor.pk in offered and merged.pk not in offered
    assert str(successor.pk) in {row["id"] for row in found}
    assert str(merged.pk) not in {row["id"] for row in found}
    # and an outage posted on it anyway is refused on the field, nothing created
    started = timezone.localtime() - dt.timedelta(minutes=5)
    response = client.post(
        reverse("admin:tickets_incident_add"),
        {"unit": merged.pk, "cause": "Sự cố", "started_at_0": started.strftime("%Y-%m-%d"),
         "started_at_1": started.strftime("%H:%M:%S")},
    )  # fmt: skip
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["unit"]
    assert not Incident.objects.exists()


def test_an_outage_in_a_unit_merged_away_is_refused_naming_its_successor(org):
    # given Sơn Hòa, merged into its successor
    merged = Unit.objects.get(name="Điện lực Sơn Hòa")
    successor = merged.successor
    # when an outage is entered on it
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        incident_open(actor=None, unit=merged, cause="Sự cố", started_at=timezone.now())
    # then it is refused on the unit, naming the unit to enter it in; nothing is created
    assert refused.value.message_dict == {
        "unit": [f"Unit {merged.code} was merged into {successor.code}; enter its outages in {successor.code}."]
    }
    assert not Incident.objects.exists()


def test_an_outage_in_a_closed_unit_is_refused(org):
    # given a unit closed yesterday, merged into none
    closed = org["sibling"]
    Unit.objects.filter(pk=closed.pk).update(valid_to=timezone.localdate() - dt.timedelta(days=1))
    closed.refresh_from_db()
    # when an outage is entered on it
    with translation.override("en"), pytest.raises(ValidationError) as refused:
        incident_open(actor=None, unit=closed, cause="Sự cố", started_at=timezone.now())
    # then it is refused, nothing created
    assert refused.value.message_dict == {"unit": [f"Unit {closed.code} is not in service today."]}
    assert not Incident.objects.exists()


def test_a_ticket_rerouted_to_another_unit_leaves_the_old_units_outage(org, make_customer, catalogue, staff):
    """The outage is the old unit's: restoring it no longer resolves the re-routed ticket nor tells its customer
    that the power is back; the re-route's event keeps which outage it left."""
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    linked, stays = (ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                                 customer=make_customer(phones=[f"0912 200 00{i}"]), incident=incident).ticket
                     for i in range(2))  # fmt: skip
    ticket_reroute(actor=staff[Role.SUPERVISOR], ticket=linked, unit=org["sibling"], reason="Thuộc lưới Quận 3")
    linked.refresh_from_db()
    assert (linked.unit, linked.incident) == (org["sibling"], None)
    routed = linked.events.get(kind=EventKind.ROUTED)
    assert (routed.before["incident"], routed.after["incident"]) == (incident.pk, None)
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    assert Ticket.objects.get(pk=linked.pk).status == Status.NEW
    assert Ticket.objects.get(pk=stays.pk).status == Status.RESOLVED


def test_an_outage_open_when_its_unit_is_merged_still_takes_the_calls_of_its_customers(
    org, catalogue, make_customer
):
    # given an outage open in the sibling unit when the sibling is merged into home (the feeder still down)
    home, sibling = org["home"], org["sibling"]
    customer = make_customer(sibling, phones=["0903 222 333"])
    incident = incident_open(actor=None, unit=sibling, cause="Sự cố tuyến trung thế",
                             started_at=timezone.now() - dt.timedelta(hours=2))  # fmt: skip
    merge(sibling, home, timezone.localdate() - dt.timedelta(days=1))
    customer = Customer.objects.get(pk=customer.pk)  # as the next request reads it
    # then the card shows it, and the customer's outage call is linked to it
    assert [i.pk for i in incidents_for_customer(customer)] == [incident.pk]
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    assert (ticket.unit, ticket.incident_id) == (home, incident.pk)
    # and its restore resolves the call and tells the customer
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED


def test_an_outage_of_the_unit_serving_a_merged_units_customer_is_offered_with_the_one_left_open(
    org, make_customer
):
    # given the sibling merged into home, one outage left open in the sibling and a later one entered in home
    home, sibling = org["home"], org["sibling"]
    customer = make_customer(sibling, phones=["0903 222 333"])
    older = incident_open(actor=None, unit=sibling, cause="Sự cố cũ", started_at=timezone.now() - dt.timedelta(hours=3))
    merge(sibling, home, timezone.localdate() - dt.timedelta(days=1))
    newer = incident_open(actor=None, unit=Unit.objects.get(pk=home.pk), cause="Sự cố",
                          started_at=timezone.now() - dt.timedelta(hours=1))  # fmt: skip
    # then both cover the customer, the latest started first
    assert incidents_for_customer(Customer.objects.get(pk=customer.pk)) == [newer, older]


def test_an_unknown_callers_ticket_kept_in_a_merged_unit_can_be_linked_to_the_successors_outage(
    org, catalogue, make_staff
):
    # given an unknown caller's outage report taken in the sibling unit before it was merged into home
    home, sibling = org["home"], org["sibling"]
    dispatcher = make_staff(Role.DISPATCHER, [home])
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         caller_phone="0903 555 666", unit=sibling).ticket  # fmt: skip
    merge(sibling, home, timezone.localdate() - dt.timedelta(days=1))
    # and the outage entered in home, the only place it can go now
    incident = incident_open(actor=None, unit=Unit.objects.get(pk=home.pk), cause="Sự cố",
                             started_at=timezone.now() - dt.timedelta(minutes=30))  # fmt: skip
    ticket = Ticket.objects.get(pk=ticket.pk)
    # then home's dispatcher is offered it on the ticket's page, and links the report to it
    assert outages_to_link(ticket=ticket, user=dispatcher) == [incident]
    ticket_link_incident(actor=dispatcher, ticket=ticket, incident=incident)
    assert Ticket.objects.get(pk=ticket.pk).incident_id == incident.pk


def test_a_merge_dated_ahead_leaves_the_units_outages_and_calls_to_it_until_its_day(org, catalogue, make_customer):
    # given the sibling to be merged into home tomorrow, and an outage entered in home today
    home, sibling = org["home"], org["sibling"]
    customer = make_customer(sibling, phones=["0903 222 333"])
    merge(sibling, home, timezone.localdate() + dt.timedelta(days=1))
    incident_open(actor=None, unit=home, cause="Sự cố", started_at=timezone.now() - dt.timedelta(minutes=30))
    # then the sibling's customer is not covered by it, and their call stays with the sibling, unlinked
    customer = Customer.objects.get(pk=customer.pk)
    assert incidents_for_customer(customer) == []
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    assert (ticket.unit, ticket.incident_id) == (sibling, None)
