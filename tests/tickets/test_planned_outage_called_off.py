"""A planned outage called off before its start ("Power restored now" on an outage that has not begun) is closed:
it neither shows nor takes calls when its start comes, nobody is told the power is back, and the admin says it was
called off. An outage that has started is still restored as before, never before its start."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets.models import Incident
from tickets.selectors import incidents_for_customer
from tickets.services import incident_open, incident_restore, ticket_open


def _restore_now(client, incident):
    return client.post(
        "/admin/tickets/incident/", {"action": "restore_now", "_selected_action": [incident.pk]}, follow=True
    )


def test_a_planned_outage_called_off_before_it_starts_takes_no_calls_when_its_start_comes(
    client, org, make_customer, catalogue, staff
):
    # given planned maintenance entered for tomorrow morning (README: entered ahead of its start)
    start = timezone.now() + dt.timedelta(days=1)
    incident = incident_open(actor=staff[Role.DISPATCHER], unit=org["home"], cause="Bảo trì lưới điện",
                             started_at=start)  # fmt: skip
    customer = make_customer(phones=["0912 100 001"])
    messages_before = OutboxMessage.objects.count()
    # when the maintenance is called off today and the dispatcher closes the outage in the admin
    client.force_login(staff[Role.DISPATCHER])
    response = _restore_now(client, incident)
    # then the page says it was called off, not refused
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    at = timezone.localtime(start).strftime("%d/%m/%Y %H:%M")
    assert shown == [f"Planned outage “Bảo trì lưới điện” of PE0100 from {at} called off before its start: it takes "
                     "no calls and nobody is told the power is back."]  # fmt: skip
    # and the outage is closed at its start (it never began): no outage minutes, nobody told
    incident.refresh_from_db()
    assert (incident.restored_at, incident.restore_minutes) == (start, 0)
    assert OutboxMessage.objects.count() == messages_before
    # and tomorrow the outage does not show on the customer's card nor take their calls
    assert incidents_for_customer(customer, at=start + dt.timedelta(hours=1)) == []
    call = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=customer, at=start + dt.timedelta(hours=1)).ticket  # fmt: skip
    assert call.incident_id is None


def test_calling_off_twice_is_refused(org):
    incident = incident_open(actor=None, unit=org["home"], cause="Bảo trì",
                             started_at=timezone.now() + dt.timedelta(hours=3))  # fmt: skip
    assert incident_restore(actor=None, incident=incident) == {"resolved": 0, "notified": 0, "called_off": 1}
    with pytest.raises(ValidationError, match="already restored"):
        incident_restore(actor=None, incident=incident)


def test_a_planned_outage_restored_with_a_moment_before_its_start_is_called_off(org):
    # a restore time entered before the start of an outage that has not begun: it will not happen
    start = timezone.now() + dt.timedelta(hours=3)
    incident = incident_open(actor=None, unit=org["home"], cause="Bảo trì", started_at=start)
    result = incident_restore(actor=None, incident=incident, at=timezone.now())
    assert result == {"resolved": 0, "notified": 0, "called_off": 1}
    assert Incident.objects.get(pk=incident.pk).restored_at == start


def test_an_outage_that_has_started_is_not_restored_before_its_start(org, make_customer, catalogue):
    # given an outage that started an hour ago, with a call linked to it
    start = timezone.now() - dt.timedelta(hours=1)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=start)
    ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                customer=make_customer())  # fmt: skip
    # then a restore time before its start is refused, and changes nothing
    with pytest.raises(ValidationError, match="before it went"):
        incident_restore(actor=None, incident=incident, at=start - dt.timedelta(minutes=5))
    assert Incident.objects.get(pk=incident.pk).restored_at is None
    # and restored now, it resolves its call as before (no "called off")
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}


def test_the_admin_still_says_tickets_resolved_for_an_outage_that_started(client, org, staff):
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    client.force_login(staff[Role.DISPATCHER])
    shown = [str(m) for m in _restore_now(client, incident).context["messages"]]
    assert shown == ["0 ticket(s) resolved and their customers told."]
