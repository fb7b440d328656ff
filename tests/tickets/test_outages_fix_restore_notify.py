"""Who is told the power is back: only an open call linked to another outage not restored holds the message
back (README), never an open ticket linked to no outage (a bill complaint, a call taken before the outage was
entered and left unlinked)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from crm.models import OutboxMessage
from tickets.models import Status, Ticket
from tickets.services import incident_open, incident_restore, ticket_open


def _call(catalogue, customer=None, category="outage", **kw):
    return ticket_open(actor=None, category=catalogue[category], channel="phone", description="Mất điện",
                       customer=customer, **kw).ticket  # fmt: skip


def _told(phone: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(recipient=phone, dedupe_key__endswith=":restored").order_by("id"))


def test_a_customer_with_an_open_bill_complaint_is_told_the_power_is_back(org, make_customer, catalogue):
    customer = make_customer(phones=["0912 100 001"])
    bill = _call(catalogue, customer, category="billing")
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    call = _call(catalogue, customer)
    assert (bill.incident_id, call.incident_id) == (None, incident.pk)
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    [message] = _told("+84912100001")
    assert message.dedupe_key == f"incident:{incident.pk}:ticket:{call.pk}:restored"
    assert call.number in message.body and bill.number not in message.body
    # the bill complaint is not the outage's: it stays open
    assert Ticket.objects.get(pk=bill.pk).status == Status.NEW


def test_a_customer_who_called_before_the_outage_was_entered_and_again_is_told(org, make_customer, catalogue):
    customer = make_customer(phones=["0912 100 002"])
    early = _call(catalogue, customer)
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây", started_at=timezone.now())
    later = _call(catalogue, customer)
    assert (early.incident_id, later.incident_id) == (None, incident.pk)
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    [message] = _told("+84912100002")
    assert later.number in message.body
    assert Ticket.objects.get(pk=early.pk).status == Status.NEW  # unlinked: the restore leaves it


def test_an_unknown_caller_with_another_open_call_is_told_the_power_is_back(org, catalogue):
    unit = org["home"]
    other = _call(catalogue, caller_phone="0912 555 666", unit=unit, category="billing")
    incident = incident_open(actor=None, unit=unit, cause="Đứt dây", started_at=timezone.now())
    call = _call(catalogue, caller_phone="0912 555 666", unit=unit, incident=incident)
    assert incident_restore(actor=None, incident=incident) == {"resolved": 1, "notified": 1}
    [message] = _told("+84912555666")
    assert call.number in message.body and other.number not in message.body


def _two_outages(org, make_customer, catalogue, phone):
    """A customer (with an open bill complaint besides) holding a call on each of two overlapping outages."""
    customer = make_customer(ward="Phường Bến Nghé", phones=[phone])
    bill = _call(catalogue, customer, category="billing")
    now = timezone.now()
    whole = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=now - dt.timedelta(hours=1))
    ward = incident_open(actor=None, unit=org["home"], cause="Đứt dây", wards=["Phường Bến Nghé"],
                         started_at=now - dt.timedelta(minutes=30))  # fmt: skip
    first = _call(catalogue, customer, incident=whole)
    second = _call(catalogue, customer)  # the latest started covering outage
    assert (first.incident_id, second.incident_id) == (whole.pk, ward.pk)
    return bill, (whole, first), (ward, second)


def test_two_outages_restored_in_order_tell_the_customer_once_by_the_last_restore(org, make_customer, catalogue):
    bill, (whole, first), (ward, second) = _two_outages(org, make_customer, catalogue, "0912 100 003")
    # the first restore: the call on the other outage (not restored) holds the message back, the bill does not
    assert incident_restore(actor=None, incident=whole) == {"resolved": 1, "notified": 0}
    assert _told("+84912100003") == []
    # the second restore tells them once, naming both calls, not the bill complaint
    assert incident_restore(actor=None, incident=ward) == {"resolved": 1, "notified": 1}
    [message] = _told("+84912100003")
    assert message.dedupe_key == f"incident:{ward.pk}:ticket:{second.pk}:restored"  # the last restore's
    assert first.number in message.body and second.number in message.body and bill.number not in message.body
    assert Ticket.objects.get(pk=bill.pk).status == Status.NEW


def test_two_outages_restored_in_the_other_order_tell_the_customer_once_by_the_last_restore(
    org, make_customer, catalogue
):
    bill, (whole, first), (ward, second) = _two_outages(org, make_customer, catalogue, "0912 100 004")
    assert incident_restore(actor=None, incident=ward) == {"resolved": 1, "notified": 0}
    assert _told("+84912100004") == []
    assert incident_restore(actor=None, incident=whole) == {"resolved": 1, "notified": 1}
    [message] = _told("+84912100004")
    assert message.dedupe_key == f"incident:{whole.pk}:ticket:{first.pk}:restored"
    assert first.number in message.body and second.number in message.body and bill.number not in message.body
    assert Ticket.objects.get(pk=bill.pk).status == Status.NEW


def test_an_unknown_callers_call_on_another_open_outage_still_holds_the_message_back(org, catalogue):
    unit = org["home"]
    now = timezone.now()
    whole = incident_open(actor=None, unit=unit, cause="Sự cố trạm", started_at=now - dt.timedelta(hours=1))
    other = incident_open(actor=None, unit=unit, cause="Đứt dây", started_at=now - dt.timedelta(minutes=30))
    _call(catalogue, caller_phone="0912 555 777", unit=unit, category="billing")
    _call(catalogue, caller_phone="0912 555 777", unit=unit, incident=whole)
    _call(catalogue, caller_phone="0912 555 777", unit=unit, incident=other)
    assert incident_restore(actor=None, incident=whole) == {"resolved": 1, "notified": 0}
    assert incident_restore(actor=None, incident=other) == {"resolved": 1, "notified": 1}
    assert len(_told("+84912555777")) == 1
