"""A call logged today counts for the unit that works it today (``current_unit``), whichever way its unit was
found: its ticket kept in a unit merged away, the only unit of an agent whose profile still names the merged unit,
or the merged unit named. Calls logged before keep their unit; a merge entered ahead of its day changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import caches
from django.utils import timezone

from crm.dashboard_widgets import Board
from crm.models import Role, Unit
from tickets.dashboard import handling_time
from tickets.models import Interaction, Ticket
from tickets.services import interaction_log, interaction_record, interaction_unit, ticket_open


@pytest.fixture
def merged(org):
    unit = Unit.objects.get(name="Điện lực Sơn Hòa")
    assert unit.successor_id == org["other_corporation"].pk
    return unit


@pytest.fixture
def kept_ticket(org, merged, make_customer, catalogue):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(org["other_corporation"])).ticket  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(unit=merged)  # taken before the merge: it keeps its unit
    ticket.refresh_from_db()
    return ticket


def _call(actor, **kw):
    now = timezone.now()
    return interaction_record(actor=actor, channel="phone", disposition="information",
                              started_at=now - dt.timedelta(minutes=2), ended_at=now, **kw)  # fmt: skip


@pytest.mark.django_db
def test_a_call_about_a_ticket_kept_in_a_merged_unit_counts_for_the_successor(org, merged, kept_ticket, make_staff):
    successor = org["other_corporation"]
    agent = make_staff(Role.AGENT, [successor])
    call = _call(agent, ticket=kept_ticket)
    assert call.unit == successor, call.unit
    assert call.ticket == kept_ticket and call.customer == kept_ticket.customer
    kept_ticket.refresh_from_db()
    assert kept_ticket.unit == merged  # the ticket keeps the unit of its time
    supervisor = make_staff(Role.SUPERVISOR, [successor])
    today = timezone.localdate()
    assert handling_time(Board(supervisor, today, today, unit=successor))["count"] == 1
    # the same call about the ticket's customer counts for the same unit: the two paths agree
    assert _call(agent, customer=kept_ticket.customer).unit == successor


@pytest.mark.django_db
def test_an_unknown_callers_call_of_an_agent_of_a_merged_unit_counts_for_the_successor(org, merged, make_staff):
    agent = make_staff(Role.AGENT, [merged])  # the profile still names Sơn Hòa, merged away
    assert interaction_unit(actor=agent) == org["other_corporation"]  # the new-ticket form's unit, too
    call = _call(agent, caller_phone="0905 123 999")
    assert call.unit == org["other_corporation"], call.unit
    assert Interaction.objects.filter(unit=merged).count() == 0


@pytest.mark.django_db
def test_a_call_naming_the_merged_unit_counts_for_the_successor(org, merged, make_staff):
    agent = make_staff(Role.AGENT, [org["home"], org["other_corporation"]])  # several units: names one
    call = _call(agent, unit=merged, caller_phone="0905 123 999")
    assert call.unit == org["other_corporation"]
    assert Interaction.objects.filter(unit=merged).count() == 0


@pytest.mark.django_db
def test_the_merged_unit_named_with_its_ticket_is_not_refused(org, merged, kept_ticket, make_staff):
    agent = make_staff(Role.AGENT, [org["other_corporation"]])
    assert _call(agent, unit=merged, ticket=kept_ticket).unit == org["other_corporation"]
    assert _call(agent, unit=org["other_corporation"], ticket=kept_ticket).unit == org["other_corporation"]


@pytest.mark.django_db
def test_calls_logged_before_keep_their_unit(org, merged, kept_ticket, make_staff):
    agent = make_staff(Role.AGENT, [org["other_corporation"]])
    now = timezone.now()
    old = interaction_log(actor=agent, channel="phone", started_at=now - dt.timedelta(minutes=3), ended_at=now,
                          disposition="information", unit=merged, ticket=kept_ticket)  # fmt: skip
    _call(agent, ticket=kept_ticket)
    old.refresh_from_db()
    assert old.unit == merged
    assert Interaction.objects.filter(unit=org["other_corporation"]).count() == 1


@pytest.mark.django_db
def test_a_merge_entered_ahead_of_its_day_changes_nothing(org, merged, make_staff):
    Unit.objects.filter(pk=merged.pk).update(valid_to=timezone.localdate() + dt.timedelta(days=30))
    for cache in caches.all():
        cache.clear()
    agent = make_staff(Role.AGENT, [merged])
    call = _call(agent, caller_phone="0905 123 999")
    assert call.unit == merged  # the unit still takes its calls until its merge takes effect
