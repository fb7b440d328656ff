"""Linking a call to an outage later keeps intake's rule on its start: an outage takes only calls made once it
had started (README: "linking a ticket later keeps the same rules"), by the API and by the ticket page alike,
with intake's refusal; a call made after the start (the outage entered after the fact) is linked."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket
from tickets.services import (
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


def _planned(org, start):
    return incident_open(actor=None, unit=org["home"], cause="Bảo trì lưới điện", started_at=start)


def _unchanged(ticket):
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert fresh.incident_id is None
    assert not fresh.events.filter(kind=EventKind.LINKED).exists()


def test_the_api_refuses_a_call_made_before_the_outage_started_as_intake_does(
    client, org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer(phones=["0912 100 001"])
    planned = _planned(org, now - dt.timedelta(minutes=30))  # maintenance started 30 minutes ago
    with pytest.raises(ValidationError) as at_intake:
        _call(catalogue, customer, at=now - dt.timedelta(hours=2), incident=planned)
    early = _call(catalogue, customer, at=now - dt.timedelta(hours=2))
    assert early.incident_id is None
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(f"/api/v1/tickets/{early.pk}/incident/", {"incident": planned.pk},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {"incident": at_intake.value.message_dict["incident"]}  # the same refusal
    assert REFUSAL in response.json()["incident"][0]
    _unchanged(early)
    # its restore then leaves the call alone and tells nobody
    assert incident_restore(actor=None, incident=planned) == {"resolved": 0, "notified": 0}
    assert Ticket.objects.get(pk=early.pk).status == Status.NEW
    assert not OutboxMessage.objects.filter(dedupe_key__endswith=":restored").exists()


def test_the_ticket_page_refuses_a_call_made_before_the_outage_started(client, org, make_customer, catalogue, staff):
    now = timezone.now()
    customer = make_customer()
    early = _call(catalogue, customer, at=now - dt.timedelta(hours=2))
    planned = _planned(org, now - dt.timedelta(minutes=30))
    # the page offers only an outage started by the call (one entered late), not the maintenance
    _planned(org, now - dt.timedelta(hours=3))
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(reverse("admin:tickets_ticket_move", args=[early.pk]),
                           {"move": "link_outage", "incident": str(planned.pk)}, follow=True)  # fmt: skip
    [shown] = [str(m) for m in response.context["messages"]]
    assert REFUSAL in shown
    _unchanged(early)


def test_a_call_made_after_the_start_of_an_outage_entered_later_is_linked(org, make_customer, catalogue, staff):
    now = timezone.now()
    customer = make_customer()
    early = _call(catalogue, customer, at=now - dt.timedelta(minutes=20))
    entered_late = _planned(org, now - dt.timedelta(minutes=45))  # entered now, started before the call
    linked = ticket_link_incident(actor=staff[Role.DISPATCHER], ticket=early, incident=entered_late)
    assert linked.incident_id == entered_late.pk


def test_a_call_made_at_the_very_start_is_linked_and_a_second_earlier_is_not(org, make_customer, catalogue, staff):
    start = timezone.now() - dt.timedelta(hours=1)
    customer = make_customer()
    at_start = _call(catalogue, customer, at=start)
    just_before = _call(catalogue, customer, at=start - dt.timedelta(seconds=1))
    incident = _planned(org, start)
    dispatcher = staff[Role.DISPATCHER]
    assert ticket_link_incident(actor=dispatcher, ticket=at_start, incident=incident).incident_id == incident.pk
    with pytest.raises(ValidationError, match=REFUSAL):
        ticket_link_incident(actor=dispatcher, ticket=just_before, incident=incident)
    _unchanged(just_before)


def test_a_restored_outage_is_refused_as_restored_before_its_start_is_looked_at(
    org, make_customer, catalogue, staff
):
    now = timezone.now()
    customer = make_customer()
    early = _call(catalogue, customer, at=now - dt.timedelta(hours=2))
    incident = _planned(org, now - dt.timedelta(minutes=30))
    incident_restore(actor=None, incident=incident)
    with pytest.raises(ValidationError, match=r"This outage is already restored\."):
        ticket_link_incident(actor=staff[Role.DISPATCHER], ticket=early, incident=incident)
    _unchanged(early)


def test_a_reopened_call_is_linked_by_the_time_of_its_reopen(org, make_customer, catalogue, staff):
    """A reopened ticket is a new call (the power gone again): an outage that had started by its reopen takes
    it, though the ticket was first taken long before; one starting after the reopen does not."""
    now = timezone.now()
    customer = make_customer()
    first = _planned(org, now - dt.timedelta(hours=6))
    ticket = _call(catalogue, customer, at=now - dt.timedelta(hours=5))
    assert ticket.incident_id == first.pk
    incident_restore(actor=None, incident=first, at=now - dt.timedelta(hours=4))
    ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện",
                         at=now - dt.timedelta(hours=2))  # fmt: skip
    dispatcher = staff[Role.DISPATCHER]
    after_reopen = _planned(org, now - dt.timedelta(hours=1))
    with pytest.raises(ValidationError, match=REFUSAL):
        ticket_link_incident(actor=dispatcher, ticket=ticket, incident=after_reopen)
    assert Ticket.objects.get(pk=ticket.pk).incident_id == first.pk  # unchanged
    before_reopen = _planned(org, now - dt.timedelta(hours=3))
    assert ticket_link_incident(actor=dispatcher, ticket=ticket, incident=before_reopen).incident_id == before_reopen.pk
