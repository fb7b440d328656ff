"""A public holiday added or removed after intake moves the open tickets' working-day resolve deadlines (audit
sla 2): working days skip the holidays kept as data, whenever they were entered."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets.models import EventKind, Holiday, Status
from tickets.services import (
    holiday_delete,
    holiday_save,
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
)
from tickets.sla import sla_sweep

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
FRIDAY = dt.date(2027, 1, 8)


def local(*args):
    return dt.datetime(*args, tzinfo=HCM)


def taken(catalogue, make_customer, code="new-lv", at=None):
    """A request taken on Monday 4 January 2027 at 09:00 (new-lv: due in 5 working days), acknowledged and its
    customer called at once."""
    at = at or local(2027, 1, 4, 9)
    ticket = ticket_open(actor=None, category=catalogue[code], channel="phone", description="Cấp điện",
                         customer=make_customer(), at=at).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=at)
    return ticket_record_contact(actor=None, ticket=ticket, at=at)


def due(ticket):
    ticket.refresh_from_db()
    return timezone.localtime(ticket.resolve_due)


def test_a_holiday_declared_after_intake_moves_the_open_working_day_deadlines(
    client, staff, catalogue, make_customer
):
    # given a request due on Monday 11th 09:00
    ticket = taken(catalogue, make_customer)
    assert due(ticket) == local(2027, 1, 11, 9)
    # when the government declares Friday 8th a day off and the administrator adds it to the holidays
    client.force_login(staff[Role.ADMINISTRATOR])
    answer = client.post(reverse("admin:tickets_holiday_add"), {"day": "08/01/2027", "name": "Nghỉ bù"})
    assert answer.status_code == 302 and Holiday.objects.filter(day=FRIDAY).exists()
    # then the request still has 5 working days, the sweep checks it then, and its history says why
    assert due(ticket) == local(2027, 1, 12, 9)
    assert ticket.next_check_at == ticket.resolve_due
    event = ticket.events.get(kind=EventKind.DEADLINE)
    assert (event.actor, event.before, event.after) == (
        staff[Role.ADMINISTRATOR],
        {"resolve_due": local(2027, 1, 11, 9).astimezone(dt.UTC).isoformat()},
        {"resolve_due": local(2027, 1, 12, 9).astimezone(dt.UTC).isoformat(), "day": "2027-01-08", "day_off": True},
    )  # fmt: skip
    # and the sweep on Monday 11th 10:00 does not breach it
    sla_sweep(now=local(2027, 1, 11, 10))
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level) == (False, 0)


def test_a_holiday_removed_moves_the_deadline_back(client, staff, catalogue, make_customer):
    # given a request taken while Friday 8th was a day off: due Tuesday 12th 09:00
    holiday = Holiday.objects.create(day=FRIDAY, name="Nghỉ bù")
    ticket = taken(catalogue, make_customer)
    assert due(ticket) == local(2027, 1, 12, 9)
    # when the administrator removes the day off
    client.force_login(staff[Role.ADMINISTRATOR])
    answer = client.post(reverse("admin:tickets_holiday_delete", args=[holiday.pk]), {"post": "yes"})
    # then the deadline is 5 working days again, counting Friday
    assert answer.status_code == 302 and not Holiday.objects.filter(day=FRIDAY).exists()
    assert due(ticket) == local(2027, 1, 11, 9)
    assert ticket.events.get(kind=EventKind.DEADLINE).after["day_off"] is False


def test_saving_or_removing_the_same_day_twice_moves_once(staff, catalogue, make_customer):
    ticket = taken(catalogue, make_customer)
    admin = staff[Role.ADMINISTRATOR]
    holiday_save(actor=admin, day=FRIDAY, name="Nghỉ bù")
    holiday = holiday_save(actor=admin, day=FRIDAY, name="Nghỉ bù Tết dương lịch")  # a repeat: a new name only
    assert (due(ticket), Holiday.objects.get(day=FRIDAY).name) == (local(2027, 1, 12, 9), "Nghỉ bù Tết dương lịch")
    holiday_delete(actor=admin, holiday=holiday)
    holiday_delete(actor=admin, holiday=holiday)
    assert due(ticket) == local(2027, 1, 11, 9)
    assert ticket.events.filter(kind=EventKind.DEADLINE).count() == 2


def test_moving_a_holiday_to_another_day_moves_the_deadlines_accordingly(client, staff, catalogue, make_customer):
    ticket = taken(catalogue, make_customer)
    admin = staff[Role.ADMINISTRATOR]
    holiday = holiday_save(actor=admin, day=FRIDAY, name="Nghỉ bù")
    assert due(ticket) == local(2027, 1, 12, 9)
    # the day off moves to Monday 11th, inside the clock: still one day off, the deadline stays Tuesday 12th
    client.force_login(admin)
    answer = client.post(reverse("admin:tickets_holiday_change", args=[holiday.pk]),
                         {"day": "11/01/2027", "name": "Nghỉ bù"})  # fmt: skip
    assert answer.status_code == 302
    assert due(ticket) == local(2027, 1, 12, 9)
    # then to Monday 18th, after the deadline: the request is due as if there were none
    holiday = Holiday.objects.get(day=dt.date(2027, 1, 11))
    holiday_save(actor=admin, day=dt.date(2027, 1, 18), name="Nghỉ bù", holiday=holiday)
    assert due(ticket) == local(2027, 1, 11, 9)
    assert not Holiday.objects.filter(day__in=[FRIDAY, dt.date(2027, 1, 11)]).exists()


def test_a_ticket_waiting_for_the_customer_keeps_its_working_time(staff, catalogue, make_customer):
    # given a request that waited for the customer from Tuesday 5th 09:00 (one working day used)
    ticket = taken(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=local(2027, 1, 5, 9))
    # when Friday 8th becomes a day off during the wait
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=FRIDAY, name="Nghỉ bù")
    # and the customer answers on Wednesday 13th 09:00
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=local(2027, 1, 13, 9))
    # then the 4 working days left count from the answer: Thursday, Friday, Monday, Tuesday 19th 09:00
    assert due(ticket) == local(2027, 1, 19, 9)


def test_deadlines_in_minutes_and_those_already_met_or_breached_stay(staff, catalogue, make_customer):
    billing = taken(catalogue, make_customer, code="billing", at=local(2027, 1, 7, 12))  # 24 hours: Fri 8th 12:00
    resolved = taken(catalogue, make_customer)
    ticket_change_status(actor=None, ticket=resolved, to=Status.RESOLVED, at=local(2027, 1, 6, 9))
    before = (due(billing), due(resolved))
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=FRIDAY, name="Nghỉ bù")
    assert (due(billing), due(resolved)) == before
    assert not billing.events.filter(kind=EventKind.DEADLINE).exists()
    assert not resolved.events.filter(kind=EventKind.DEADLINE).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweep_skips_the_tickets_a_holiday_is_moving_then_reads_their_new_deadline(
    staff, catalogue, make_customer
):
    if connection.vendor != "postgresql":
        pytest.skip("two writers at once need PostgreSQL's row locks")
    ticket = taken(catalogue, make_customer)
    locked, swept = threading.Event(), threading.Event()

    def add_the_holiday():
        try:
            with transaction.atomic():
                holiday_save(actor=staff[Role.ADMINISTRATOR], day=FRIDAY, name="Nghỉ bù")
                locked.set()  # the ticket's row stays locked until this transaction commits
                swept.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=add_the_holiday)
    thread.start()
    assert locked.wait(timeout=30)
    # a sweep due on Monday 11th 10:00 (the old deadline) skips the row being moved
    assert sla_sweep(now=local(2027, 1, 11, 10)) == {"handled": 0, "escalations": 0}
    swept.set()
    thread.join()
    # and once the move is committed, the ticket is not due before its new deadline
    assert due(ticket) == local(2027, 1, 12, 9)
    assert sla_sweep(now=local(2027, 1, 11, 10)) == {"handled": 0, "escalations": 0}
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level) == (False, 0)


def test_a_holiday_on_a_weekend_moves_nothing(staff, catalogue, make_customer):
    # given a request due on Monday 11th 09:00, whose clock runs over Saturday 9th, no working day anyway
    ticket = taken(catalogue, make_customer)
    # when a holiday falls on that Saturday, then is removed
    holiday = holiday_save(actor=staff[Role.ADMINISTRATOR], day=dt.date(2027, 1, 9), name="Ngày lễ")
    assert due(ticket) == local(2027, 1, 11, 9)
    holiday_delete(actor=staff[Role.ADMINISTRATOR], holiday=holiday)
    # then the deadline never moved and the ticket's history has nothing to say
    assert due(ticket) == local(2027, 1, 11, 9)
    assert not ticket.events.filter(kind=EventKind.DEADLINE).exists()
