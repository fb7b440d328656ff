"""What customers are told when the power comes back: nobody still inside another outage is told it is back, the
last restore of an outage episode tells them once, naming every call of it, and the restore SMS names each
ticket once, never a number cut short."""

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone, translation

from crm.models import OutboxMessage
from crm.outbox import sms_text
from tickets.models import Status, Ticket
from tickets.services import incident_open, incident_restore, ticket_change_status, ticket_open

RESTORED = "Power is restored in your area (%s). Thank you for your patience."


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"), override_settings(LANGUAGE_CODE="en"):
        yield


def _restored(recipient):
    return list(
        OutboxMessage.objects.filter(recipient=recipient, dedupe_key__endswith=":restored")
        .order_by("pk")
        .values_list("dedupe_key", "subject", "body")
    )


def _numbers(*tickets):
    return ", ".join(t.number for t in sorted(tickets, key=lambda t: t.pk))


@pytest.fixture
def overlap(org, make_customer, catalogue):
    """A ward's outage and the customer's call about it, then a wider outage of the whole unit and their second
    call (linked to it: the latest started)."""
    now = timezone.now()
    customer = make_customer(ward="Phường Bến Nghé", phones=["0912 100 001"])
    ward = incident_open(actor=None, unit=org["home"], cause="Đứt dây hạ thế", wards=["Phường Bến Nghé"],
                         started_at=now - dt.timedelta(hours=2))  # fmt: skip
    first = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                        customer=customer).ticket  # fmt: skip
    unit = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm 110 kV", started_at=now - dt.timedelta(hours=1))
    second = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Vẫn mất điện",
                         customer=customer).ticket  # fmt: skip
    assert (first.incident_id, second.incident_id) == (ward.pk, unit.pk)
    return ward, unit, first, second


def test_a_customer_still_in_an_overlapping_outage_is_not_told_the_power_is_back(overlap):
    ward, _unit, first, second = overlap
    # when the ward's outage is restored while the unit's is not
    answer = incident_restore(actor=None, incident=ward)
    # then their call about the ward is resolved, but the customer, whose power is still off (their second call
    # is open on the unit's outage), is not sent "Power is restored in your area"
    assert answer == {"resolved": 1, "notified": 0}
    assert Ticket.objects.get(pk=first.pk).status == Status.RESOLVED
    assert Ticket.objects.get(pk=second.pk).status not in (Status.RESOLVED, Status.CLOSED)
    assert _restored("+84912100001") == []


def test_the_last_restore_tells_them_once_naming_every_call_of_the_episode(overlap):
    ward, unit, first, second = overlap
    incident_restore(actor=None, incident=ward)
    # when the unit's outage is restored too
    answer = incident_restore(actor=None, incident=unit)
    # then they get one message, keyed by the last incident, naming both their calls once
    assert answer == {"resolved": 1, "notified": 1}
    numbers = _numbers(first, second)
    assert _restored("+84912100001") == [
        (f"incident:{unit.pk}:ticket:{second.pk}:restored", numbers, RESTORED % numbers)
    ]


def test_restored_in_the_other_order_the_customer_is_told_once_by_the_last(overlap):
    ward, unit, first, second = overlap
    # when the wider outage comes back first, while the ward's is still off
    assert incident_restore(actor=None, incident=unit) == {"resolved": 1, "notified": 0}
    # then they are told only when the ward's is restored, naming both calls
    assert incident_restore(actor=None, incident=ward) == {"resolved": 1, "notified": 1}
    numbers = _numbers(first, second)
    assert _restored("+84912100001") == [
        (f"incident:{ward.pk}:ticket:{first.pk}:restored", numbers, RESTORED % numbers)
    ]


def test_a_chain_of_three_outages_is_told_once_at_its_end(org, make_customer, catalogue):
    # given three outages over one customer, a call about each, the third made after the first was restored
    now = timezone.now()
    customer = make_customer(phones=["0912 100 002"])
    outages = [incident_open(actor=None, unit=org["home"], cause=f"Sự cố {i}", started_at=now - dt.timedelta(hours=3 - i))
               for i in range(3)]  # fmt: skip

    def call(incident):
        return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                           customer=customer, incident=incident).ticket  # fmt: skip

    calls = [call(outages[0]), call(outages[1])]
    notified = [incident_restore(actor=None, incident=outages[0])["notified"]]
    calls.append(call(outages[2]))
    # when the second and then the third are restored
    notified += [incident_restore(actor=None, incident=o)["notified"] for o in outages[1:]]
    # then only the last restore told them, naming the three calls
    assert notified == [0, 0, 1]
    numbers = _numbers(*calls)
    assert _restored("+84912100002") == [
        (f"incident:{outages[2].pk}:ticket:{calls[2].pk}:restored", numbers, RESTORED % numbers)
    ]


def test_a_later_separate_outage_does_not_name_the_calls_already_told(org, make_customer, catalogue):
    # given a customer told the power is back after one outage
    now = timezone.now()
    customer = make_customer(phones=["0912 100 003"])
    before = incident_open(actor=None, unit=org["home"], cause="Sự cố", started_at=now - dt.timedelta(hours=3))
    old = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                      customer=customer, incident=before).ticket  # fmt: skip
    assert incident_restore(actor=None, incident=before) == {"resolved": 1, "notified": 1}
    # when a new outage starts afterwards, they call and it is restored
    after = incident_open(actor=None, unit=org["home"], cause="Sự cố mới", started_at=timezone.now())
    new = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Lại mất điện",
                      customer=customer, incident=after).ticket  # fmt: skip
    assert incident_restore(actor=None, incident=after) == {"resolved": 1, "notified": 1}
    # then each restore named its own call
    assert [body for _key, _subject, body in _restored("+84912100003")] == [
        RESTORED % old.number, RESTORED % new.number,
    ]  # fmt: skip


def test_a_call_resolved_by_hand_does_not_hold_back_nor_join_the_message(overlap):
    ward, _unit, first, second = overlap
    # given the customer's call on the wider outage resolved by an agent (not by a restore), while it is not back
    for to in (Status.ACKNOWLEDGED, Status.RESOLVED):
        ticket_change_status(actor=None, ticket=second, to=to, note="Khách báo đã có điện")
    # when the ward's outage is restored
    assert incident_restore(actor=None, incident=ward) == {"resolved": 1, "notified": 1}
    # then they are told about their ward's call only
    assert [body for _key, _subject, body in _restored("+84912100001")] == [RESTORED % first.number]


def test_an_unknown_caller_still_in_another_outage_is_told_at_the_last_restore(org, catalogue):
    # given an unknown caller who called about two overlapping outages from the same mobile
    now = timezone.now()
    outages = [incident_open(actor=None, unit=org["home"], cause=f"Sự cố {i}", started_at=now - dt.timedelta(hours=2 - i))
               for i in range(2)]  # fmt: skip
    calls = [ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         caller_phone="0912 100 004", unit=org["home"], incident=o).ticket for o in outages]  # fmt: skip
    # when the first outage is restored, then the second
    notified = [incident_restore(actor=None, incident=o)["notified"] for o in outages]
    # then the number is told once, at the last restore, naming both calls
    assert notified == [0, 1]
    numbers = _numbers(*calls)
    assert _restored("+84912100004") == [
        (f"incident:{outages[1].pk}:ticket:{calls[1].pk}:restored", numbers, RESTORED % numbers)
    ]


def _outage_calls(org, make_customer, catalogue, n):
    incident = incident_open(actor=None, unit=org["home"], cause="Đứt dây",
                             started_at=timezone.now() - dt.timedelta(hours=2))  # fmt: skip
    customer = make_customer(phones=["0912 100 001"])
    tickets = [ticket_open(actor=None, category=catalogue["outage"], channel="phone", description=f"Gọi lần {i}",
                           customer=customer, incident=incident).ticket for i in range(n)]  # fmt: skip
    return incident, tickets


def test_the_restore_sms_names_each_ticket_once(org, make_customer, catalogue):
    # given a customer who called twice about the same outage (the centre speaks Vietnamese)
    with override_settings(LANGUAGE_CODE="vi"), translation.override("vi"):
        incident, tickets = _outage_calls(org, make_customer, catalogue, 2)
        # when the power comes back
        incident_restore(actor=None, incident=incident)
        # then the one SMS they get is the Vietnamese notice alone, naming each of their tickets once (the
        # subject line repeated the numbers the body names: an SMS in Vietnamese costs a part per 67 letters)
        message = OutboxMessage.objects.get(dedupe_key__endswith=":restored")
    numbers = _numbers(*tickets)
    assert message.subject == numbers
    assert sms_text(message) == message.body
    assert message.body.startswith("Khu vực của Quý khách đã có điện trở lại")
    assert [message.body.count(t.number) for t in tickets] == [1, 1]


def test_the_restore_sms_never_carries_a_ticket_number_cut_short(org, make_customer, catalogue):
    # given a customer (a business with many meters) who called 16 times about one outage
    incident, tickets = _outage_calls(org, make_customer, catalogue, 16)
    # when the power comes back
    incident_restore(actor=None, incident=incident)
    message = OutboxMessage.objects.get(dedupe_key__endswith=":restored")
    # then the subject (an e-mail's) is cut to its column after a whole number, marked "…"
    numbers = [t.number for t in tickets]
    assert len(", ".join(numbers)) > 200
    kept = next(k for k in range(len(numbers), 0, -1) if len(", ".join(numbers[:k])) + 1 <= 200)
    assert message.subject == ", ".join(numbers[:kept]) + "…"
    # and the SMS is the body alone, naming every number whole, once
    assert sms_text(message) == message.body == RESTORED % ", ".join(numbers)
