"""A customer's outage call linked to the outage, marked a duplicate of their earlier call taken before the outage
was entered: the earlier request joins the outage, so the restore resolves it and tells the customer once."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket
from tickets.services import incident_open, incident_restore, ticket_change_status, ticket_open


def _call(catalogue, customer, description="Mất điện", category="outage"):
    return ticket_open(actor=None, category=catalogue[category], channel="phone", description=description,
                       customer=customer).ticket  # fmt: skip


def _started_before_the_calls():
    """An outage entered after the calls, as one entered after the fact is: it started before them (an outage takes
    only calls made once it had started, the earlier call joining it as a duplicate's request too)."""
    return timezone.now() - dt.timedelta(minutes=5)


def test_an_outage_call_marked_a_duplicate_of_the_customers_earlier_call_is_still_told_the_power_is_back(
    org, make_customer, catalogue, staff
):
    # given a customer who called about no power before the outage was entered (an unlinked outage ticket)
    customer = make_customer(phones=["0912 100 001"])
    first = _call(catalogue, customer)
    # and called again once the dispatcher entered the outage: the second call is linked to it
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=_started_before_the_calls())
    second = _call(catalogue, customer, "Vẫn mất điện")
    assert second.incident_id == incident.pk
    # when the agent marks the second call a duplicate of the first (the customer's one request)
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    # then the first call is part of the outage, and both tickets' timelines say so
    first.refresh_from_db()
    assert first.incident_id == incident.pk
    linked = first.events.get(kind=EventKind.LINKED)
    assert (linked.before, linked.after, linked.actor) == ({"incident": None}, {"incident": incident.pk},
                                                           staff[Role.AGENT])  # fmt: skip
    assert second.number in linked.note
    marked = second.events.filter(kind=EventKind.STATUS).latest("id")
    assert marked.after == {"status": Status.DUPLICATE, "duplicate_of": first.number,
                            "outage_joined": {"ticket": first.number, "incident": incident.pk}}  # fmt: skip
    # and when the power comes back, the customer's request is resolved and they are told, once
    result = incident_restore(actor=None, incident=incident)
    first.refresh_from_db()
    assert first.status == Status.RESOLVED
    assert result == {"resolved": 1, "notified": 1}
    assert OutboxMessage.objects.filter(recipient="+84912100001", dedupe_key__endswith=":restored").count() == 1


def test_an_earlier_call_from_outside_the_outage_area_is_not_linked(org, make_customer, catalogue, staff):
    # given an earlier call from a customer of another ward, then an outage of one ward and a call from it
    # (the same household's two contracts, say: the agent takes them for one request)
    outside = make_customer(ward="Phường Đa Kao", phones=["0912 100 002"])
    inside = make_customer(ward="Phường Bến Nghé", phones=["0912 100 003"])
    first = _call(catalogue, outside)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", wards=["Phường Bến Nghé"],
                             started_at=_started_before_the_calls())  # fmt: skip
    second = _call(catalogue, inside)
    assert second.incident_id == incident.pk
    # when the later call is marked a duplicate of the earlier one
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    # then the duplicate is marked, but the earlier request is not part of an outage that does not cover it
    first.refresh_from_db()
    assert (Ticket.objects.get(pk=second.pk).status, first.incident_id) == (Status.DUPLICATE, None)
    assert not first.events.filter(kind=EventKind.LINKED).exists()
    assert "outage_joined" not in second.events.filter(kind=EventKind.STATUS).latest("id").after
    assert incident_restore(actor=None, incident=incident) == {"resolved": 0, "notified": 0}
    first.refresh_from_db()
    assert first.status == Status.NEW


def test_an_earlier_request_that_is_not_an_outage_report_is_not_linked(org, make_customer, catalogue, staff):
    # given a customer's earlier billing question, then their outage call linked to the outage
    customer = make_customer(phones=["0912 100 004"])
    first = _call(catalogue, customer, "Hỏi hóa đơn", category="billing")
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    second = _call(catalogue, customer)
    # when the outage call is marked a duplicate of the billing question
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    # then only an outage report joins an outage: the billing question stays as it was
    first.refresh_from_db()
    assert first.incident_id is None
    assert incident_restore(actor=None, incident=incident)["resolved"] == 0


def test_an_earlier_call_already_part_of_another_outage_keeps_it(org, make_customer, catalogue, staff):
    # given a customer's call linked to a first outage, and a later call linked to a second outage
    customer = make_customer(phones=["0912 100 005"])
    older = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    first = _call(catalogue, customer)
    newer = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    second = _call(catalogue, customer)
    assert (first.incident_id, second.incident_id) == (older.pk, newer.pk)
    # when the later call is marked a duplicate of the earlier one
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    # then the earlier request keeps its outage
    first.refresh_from_db()
    assert first.incident_id == older.pk


def test_marking_the_earlier_call_a_duplicate_of_the_linked_one_still_works(org, make_customer, catalogue, staff):
    # given the same two calls, the other way round: the earlier, unlinked call is the duplicate
    customer = make_customer(phones=["0912 100 006"])
    first = _call(catalogue, customer)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    second = _call(catalogue, customer)
    ticket_change_status(actor=staff[Role.AGENT], ticket=first, to=Status.DUPLICATE, duplicate_of=second)
    # then nothing is linked besides (the linked call is the request) and the restore resolves and tells
    assert Ticket.objects.get(pk=first.pk).incident_id is None
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    assert Ticket.objects.get(pk=second.pk).status == Status.RESOLVED
