"""An outage call taken before the outage was entered is linked to it later, by the API
(``POST /api/v1/tickets/<id>/incident/``) or by the ticket page's "Part of an outage", with intake's rules and
the right to change tickets of the outage's unit; its restore then resolves it and tells the customer."""

from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket
from tickets.selectors import ticket_moves
from tickets.services import incident_open, incident_restore, ticket_change_status, ticket_open


def _call(catalogue, customer, category="outage"):
    return ticket_open(actor=None, category=catalogue[category], channel="phone", description="Mất điện",
                       customer=customer).ticket  # fmt: skip


def _started_before_the_calls():
    """An outage entered after the calls, as one entered after the fact is: it started before them (an outage takes
    only calls made once it had started, linked later as at intake)."""
    return timezone.now() - timezone.timedelta(minutes=5)


def _link(client, ticket, incident):
    return client.post(f"/api/v1/tickets/{ticket.pk}/incident/", {"incident": getattr(incident, "pk", incident)},
                       content_type="application/json")  # fmt: skip


def test_an_outage_call_taken_before_the_outage_was_entered_can_be_linked_to_it_later(
    client, org, make_customer, catalogue, staff
):
    # given a customer's outage call taken before the dispatcher entered the outage (so it is not linked)
    customer = make_customer(phones=["0912 100 001"])
    early = _call(catalogue, customer)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    assert early.incident_id is None
    # when the dispatcher links it to the outage through the API
    client.force_login(staff[Role.DISPATCHER])
    response = _link(client, early, incident)
    # then it is part of the outage, its timeline says who linked it
    assert response.status_code == 200
    assert (response.json()["number"], response.json()["incident"]) == (early.number, incident.pk)
    event = Ticket.objects.get(pk=early.pk).events.get(kind=EventKind.LINKED)
    assert (event.before, event.after, event.actor) == ({"incident": None}, {"incident": incident.pk},
                                                        staff[Role.DISPATCHER])  # fmt: skip
    # and restoring the outage resolves it and tells the customer
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    early.refresh_from_db()
    assert early.status == Status.RESOLVED
    assert OutboxMessage.objects.filter(recipient="+84912100001", dedupe_key__endswith=":restored").count() == 1


def test_linking_again_to_the_same_outage_changes_nothing(client, org, make_customer, catalogue, staff):
    early = _call(catalogue, make_customer())
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    client.force_login(staff[Role.DISPATCHER])
    assert _link(client, early, incident).status_code == 200
    assert _link(client, early, incident).status_code == 200  # a retried request
    assert Ticket.objects.get(pk=early.pk).events.filter(kind=EventKind.LINKED).count() == 1


def test_the_api_refuses_a_link_the_rules_do_not_allow_and_changes_nothing(
    client, org, make_customer, catalogue, staff
):
    # given outages of the home unit (one of another ward, one not started, one restored) and one elsewhere
    customer = make_customer(ward="Phường Bến Nghé")
    early = _call(catalogue, customer)
    billing = _call(catalogue, customer, category="billing")
    now = _started_before_the_calls()
    whole_unit = incident_open(actor=None, unit=org["home"], cause="Cắt điện", started_at=now)
    elsewhere = incident_open(actor=None, unit=org["home"], cause="Đứt dây", wards=["Phường Đa Kao"],
                              started_at=now)  # fmt: skip
    planned = incident_open(actor=None, unit=org["home"], cause="Bảo trì", started_at=now + timezone.timedelta(days=1))
    restored = incident_open(actor=None, unit=org["home"], cause="Cũ", started_at=now)
    incident_restore(actor=None, incident=restored)
    other_unit = incident_open(actor=None, unit=org["other_company"], cause="Xa", started_at=now)
    client.force_login(staff[Role.DISPATCHER])
    refusals = {
        "another ward": (early, elsewhere, {"incident": ["This outage does not cover the caller's address."]}),
        "restored": (early, restored, {"incident": ["This outage is already restored."]}),
        "not an outage call": (billing, whole_unit, {"incident": ["Only an outage report is linked to an outage."]}),
        "another unit's": (early, other_unit, {"incident": ["No such outage in your units."]}),
        "no such number": (early, 987654, {"incident": ["No such outage in your units."]}),
    }
    for why, (ticket, incident, said) in refusals.items():
        response = _link(client, ticket, incident)
        assert (why, response.status_code, response.json()) == (why, 400, said)
    garbled = _link(client, early, "10.000")
    assert (garbled.status_code, list(garbled.json())) == (400, ["incident"])
    not_started = _link(client, early, planned)
    assert not_started.status_code == 400
    assert "a call before then is not part of it" in not_started.json()["incident"][0]
    # then nothing was linked
    assert set(Ticket.objects.filter(pk__in=[early.pk, billing.pk]).values_list("incident_id", flat=True)) == {None}
    assert not Ticket.objects.get(pk=early.pk).events.filter(kind=EventKind.LINKED).exists()


def test_a_closed_ticket_or_another_units_ticket_is_refused(client, org, make_customer, catalogue, staff):
    customer = make_customer()
    done = _call(catalogue, customer)
    ticket_change_status(actor=None, ticket=done, to=Status.CANCELLED, note="Gọi nhầm")
    theirs = _call(catalogue, make_customer(org["other_company"]))
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(staff[Role.DISPATCHER])
    response = _link(client, done, incident)
    assert (response.status_code, response.json()) == (400, {"detail": ["The ticket is no longer open."]})
    assert _link(client, theirs, incident).status_code == 404  # outside the dispatcher's units
    # a manager sees the ticket but does not change tickets
    client.force_login(staff[Role.MANAGER])
    assert _link(client, _call(catalogue, customer), incident).status_code == 403


def test_the_ticket_page_offers_the_outages_covering_the_customer_and_links_one(
    client, org, make_customer, catalogue, staff
):
    # given an early call, an outage covering the customer and one of another ward
    customer = make_customer(ward="Phường Bến Nghé")
    early = _call(catalogue, customer)
    covering = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    incident_open(actor=None, unit=org["home"], cause="Sự cố khác", wards=["Phường Đa Kao"],
                  started_at=_started_before_the_calls())  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    # then its page offers "Part of an outage" with the covering outage only
    moves = {m.key: m for m in ticket_moves(ticket=early, user=dispatcher)}
    assert [value for value, _label in moves["link_outage"].incident_choices] == [str(covering.pk)]
    assert moves["link_outage"].incident_choices[0][1].startswith(f"#{covering.pk} Đứt dây (")
    client.force_login(dispatcher)
    page = client.get(reverse("admin:tickets_ticket_change", args=[early.pk])).content.decode()
    form = re.search(r'<form[^>]*id="move-link_outage".*?</form>', page, re.S).group(0)
    assert re.findall(r'<option value="(\d+)">', form) == [str(covering.pk)]
    # when the dispatcher links it there
    response = client.post(reverse("admin:tickets_ticket_move", args=[early.pk]),
                           {"move": "link_outage", "incident": str(covering.pk)}, follow=True)  # fmt: skip
    assert response.status_code == 200
    early.refresh_from_db()
    assert early.incident_id == covering.pk
    # and the move is no longer offered for the outage it is part of
    assert "link_outage" not in {m.key for m in ticket_moves(ticket=early, user=dispatcher)}
    assert incident_restore(actor=None, incident=covering)["resolved"] == 1
    assert Ticket.objects.get(pk=early.pk).status == Status.RESOLVED


def test_the_ticket_page_refuses_an_outage_it_does_not_offer_and_changes_nothing(
    client, org, make_customer, catalogue, staff
):
    customer = make_customer(ward="Phường Bến Nghé")
    early = _call(catalogue, customer)
    incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    elsewhere = incident_open(actor=None, unit=org["home"], cause="Khác", wards=["Phường Đa Kao"],
                              started_at=_started_before_the_calls())  # fmt: skip
    far = incident_open(actor=None, unit=org["other_company"], cause="Xa", started_at=timezone.now())
    client.force_login(staff[Role.DISPATCHER])
    refusals = {
        str(elsewhere.pk): "This outage does not cover the caller's address.",
        str(far.pk): "No such outage in your units.",  # another company's: not among the dispatcher's
        "": "No such outage in your units.",
        "x1": "No such outage in your units.",
    }
    for value, said in refusals.items():
        response = client.post(reverse("admin:tickets_ticket_move", args=[early.pk]),
                               {"move": "link_outage", "incident": value}, follow=True)  # fmt: skip
        assert (value, [str(m) for m in response.context["messages"]]) == (value, [said])
    assert Ticket.objects.get(pk=early.pk).incident_id is None


def test_no_outage_move_without_an_outage_to_link_or_for_another_category(
    org, make_customer, catalogue, staff
):
    customer = make_customer()
    early = _call(catalogue, customer)
    billing = _call(catalogue, customer, category="billing")
    dispatcher = staff[Role.DISPATCHER]
    assert "link_outage" not in {m.key for m in ticket_moves(ticket=early, user=dispatcher)}  # none entered
    incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    assert "link_outage" in {m.key for m in ticket_moves(ticket=early, user=dispatcher)}
    assert "link_outage" not in {m.key for m in ticket_moves(ticket=billing, user=dispatcher)}
    assert ticket_moves(ticket=early, user=staff[Role.MANAGER]) == []  # no right to change tickets
