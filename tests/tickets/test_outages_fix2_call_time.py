"""Every path that links a call to an outage after intake judges it by the time of the call, as intake does: the
ticket page offers (``outages_to_link``), linking later accepts (``ticket_link_incident``) and a duplicate's
earlier request joins (``_join_duplicates_outage``) only an outage that had started by the call, or by its last
reopen for a reopened ticket (``current_call_at``, README: "the outage must have started by the time of the call,
or of its last reopen for a reopened ticket"). The page never offers an outage the service would refuse."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket
from tickets.selectors import outages_to_link, ticket_moves
from tickets.services import (
    current_call_at,
    incident_open,
    incident_restore,
    ticket_change_status,
    ticket_link_incident,
    ticket_open,
)

REFUSAL = "a call before then is not part of it"


def _call(catalogue, customer, *, at=None, incident=None):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, at=at, incident=incident).ticket  # fmt: skip


def _outage(org, start, cause="Đứt dây"):
    return incident_open(actor=None, unit=org["home"], cause=cause, started_at=start)


def _reopen(ticket, *, taken, reopened):
    """``ticket`` resolved soon after ``taken``, and reopened at ``reopened`` (the power gone again)."""
    if ticket.status == Status.NEW:
        ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=taken + dt.timedelta(minutes=1))
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, note="Đã có điện",
                         at=taken + dt.timedelta(minutes=10))  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện", at=reopened)
    return Ticket.objects.get(pk=ticket.pk)


# The auditor's test (defect 3), moved -------------------------------------------------------------------


def test_a_call_made_before_a_planned_outage_started_is_neither_offered_nor_linked_later(
    client, org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer(phones=["0912 100 001"])
    planned = _outage(org, now - dt.timedelta(minutes=30), cause="Bảo trì lưới điện")
    # intake's rule for a call made at 08:00 when the maintenance starts at 09:30: not part of it
    with pytest.raises(ValidationError, match=REFUSAL):
        _call(catalogue, customer, at=now - dt.timedelta(hours=2), incident=planned)
    early = _call(catalogue, customer, at=now - dt.timedelta(hours=2))
    assert early.incident_id is None
    dispatcher = staff[Role.DISPATCHER]
    # linking it later "keeps the same rules": neither offered nor accepted
    assert planned not in outages_to_link(ticket=early, user=dispatcher)
    assert "link_outage" not in {m.key for m in ticket_moves(ticket=early, user=dispatcher)}
    client.force_login(dispatcher)
    response = client.post(f"/api/v1/tickets/{early.pk}/incident/", {"incident": planned.pk},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 400, response.json()
    fresh = Ticket.objects.get(pk=early.pk)
    assert fresh.incident_id is None
    assert not fresh.events.filter(kind=EventKind.LINKED).exists()


# The ticket page's offer --------------------------------------------------------------------------------


def test_the_page_offers_the_outages_started_by_the_call_and_each_one_offered_is_linked(
    org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer()
    call = _call(catalogue, customer, at=now - dt.timedelta(hours=2))
    # entered after the call: one started before it (entered late), one at its very moment, one after it
    before = _outage(org, now - dt.timedelta(hours=3), cause="Sự cố trạm")
    at_the_call = _outage(org, call.created_at, cause="Đứt dây")
    after = _outage(org, now - dt.timedelta(hours=1), cause="Bảo trì")
    dispatcher = staff[Role.DISPATCHER]
    offered = outages_to_link(ticket=call, user=dispatcher)
    assert offered == [at_the_call, before]  # the latest started first; the one started after the call is not
    [move] = [m for m in ticket_moves(ticket=call, user=dispatcher) if m.key == "link_outage"]
    assert [pk for pk, _label in move.incident_choices] == [str(at_the_call.pk), str(before.pk)]
    # what is offered is accepted (the other offered one stays offered, besides the one it is now part of)
    assert ticket_link_incident(actor=dispatcher, ticket=call, incident=before).incident_id == before.pk
    call = Ticket.objects.get(pk=call.pk)
    assert outages_to_link(ticket=call, user=dispatcher) == [at_the_call]
    with pytest.raises(ValidationError, match=REFUSAL):
        ticket_link_incident(actor=dispatcher, ticket=call, incident=after)
    assert Ticket.objects.get(pk=call.pk).incident_id == before.pk


def test_an_unknown_callers_report_is_offered_the_outages_started_by_the_call(org, catalogue, staff):
    now = timezone.now()
    call = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       caller_phone="0903 555 666", unit=org["home"], at=now - dt.timedelta(hours=2)).ticket  # fmt: skip
    assert call.incident_id is None
    before = _outage(org, now - dt.timedelta(hours=3))
    after = _outage(org, now - dt.timedelta(minutes=30), cause="Bảo trì")
    dispatcher = staff[Role.DISPATCHER]
    assert outages_to_link(ticket=call, user=dispatcher) == [before]
    with pytest.raises(ValidationError, match=REFUSAL):
        ticket_link_incident(actor=dispatcher, ticket=call, incident=after)
    assert Ticket.objects.get(pk=call.pk).incident_id is None
    assert ticket_link_incident(actor=dispatcher, ticket=call, incident=before).incident_id == before.pk


def test_a_reopened_call_is_offered_the_outages_started_by_its_reopen(org, make_customer, catalogue, staff):
    now = timezone.now()
    customer = make_customer()
    taken = now - dt.timedelta(hours=6)
    call = _reopen(_call(catalogue, customer, at=taken), taken=taken, reopened=now - dt.timedelta(hours=2))
    assert current_call_at(call) == now - dt.timedelta(hours=2)
    # started after the first call but before the reopen: the reopened call (the power gone again) is part of it
    between = _outage(org, now - dt.timedelta(hours=4))
    after_reopen = _outage(org, now - dt.timedelta(hours=1), cause="Bảo trì")
    dispatcher = staff[Role.DISPATCHER]
    assert outages_to_link(ticket=call, user=dispatcher) == [between]
    assert ticket_link_incident(actor=dispatcher, ticket=call, incident=between).incident_id == between.pk
    assert after_reopen.pk not in {i.pk for i in outages_to_link(ticket=Ticket.objects.get(pk=call.pk), user=dispatcher)}


def test_the_call_time_of_a_ticket_reopened_twice_is_its_last_reopen(org, make_customer, catalogue):
    now = timezone.now()
    taken = now - dt.timedelta(hours=8)
    call = _reopen(_call(catalogue, make_customer(), at=taken), taken=taken, reopened=now - dt.timedelta(hours=6))
    assert current_call_at(_call(catalogue, make_customer(), at=taken)) == taken  # never reopened: when taken
    second = now - dt.timedelta(hours=3)
    call = _reopen(call, taken=now - dt.timedelta(hours=5), reopened=second)
    assert call.cycle == 2
    assert current_call_at(call) == second


# A duplicate's earlier request ---------------------------------------------------------------------------


def test_an_earlier_call_made_before_the_outage_started_does_not_join_it_as_a_duplicates_request(
    org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer(phones=["0912 100 007"])
    first = _call(catalogue, customer, at=now - dt.timedelta(hours=2))  # about something else
    planned = _outage(org, now - dt.timedelta(minutes=30), cause="Bảo trì lưới điện")
    second = _call(catalogue, customer)
    assert second.incident_id == planned.pk
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    # the duplicate is marked, the earlier request is left as it was
    first = Ticket.objects.get(pk=first.pk)
    assert (Ticket.objects.get(pk=second.pk).status, first.incident_id) == (Status.DUPLICATE, None)
    assert not first.events.filter(kind=EventKind.LINKED).exists()
    assert "outage_joined" not in second.events.filter(kind=EventKind.STATUS).latest("id").after
    # and the maintenance's end neither resolves it nor tells the customer the power is back
    assert incident_restore(actor=None, incident=planned) == {"resolved": 0, "notified": 0}
    assert Ticket.objects.get(pk=first.pk).status == Status.NEW
    assert not OutboxMessage.objects.filter(recipient="+84912100007", dedupe_key__endswith=":restored").exists()


def test_a_reopened_earlier_call_joins_an_outage_started_by_its_reopen_as_a_duplicates_request(
    org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer(phones=["0912 100 008"])
    taken = now - dt.timedelta(hours=6)
    first = _reopen(_call(catalogue, customer, at=taken), taken=taken, reopened=now - dt.timedelta(hours=1))
    incident = _outage(org, now - dt.timedelta(hours=2))  # after the first call, before its reopen
    second = _call(catalogue, customer)
    assert second.incident_id == incident.pk
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    first = Ticket.objects.get(pk=first.pk)
    assert first.incident_id == incident.pk
    assert second.events.filter(kind=EventKind.STATUS).latest("id").after["outage_joined"] == {
        "ticket": first.number, "incident": incident.pk
    }  # fmt: skip


def test_a_reopened_earlier_call_does_not_join_an_outage_started_after_its_reopen(
    org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer(phones=["0912 100 009"])
    taken = now - dt.timedelta(hours=6)
    first = _reopen(_call(catalogue, customer, at=taken), taken=taken, reopened=now - dt.timedelta(hours=3))
    incident = _outage(org, now - dt.timedelta(hours=2))
    second = _call(catalogue, customer)
    assert second.incident_id == incident.pk
    ticket_change_status(actor=staff[Role.AGENT], ticket=second, to=Status.DUPLICATE, duplicate_of=first)
    first = Ticket.objects.get(pk=first.pk)
    assert (first.incident_id, first.status) == (None, Status.REOPENED)
    assert not first.events.filter(kind=EventKind.LINKED).exists()
