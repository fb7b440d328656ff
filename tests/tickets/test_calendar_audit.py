"""How deadlines follow the calendar: the reference holidays reloaded, a day off declared for (or removed from)
the day a clock started, the deadlines missed before a pause that ends in a resolution, and how the ticket page
shows them (README, "Tickets and their clocks")."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm.models import OutboxMessage, Role
from tickets import reference
from tickets.calendar import add_working_days
from tickets.dashboard import sla_aggregates
from tickets.models import EventKind, Holiday, Status, Ticket
from tickets.selectors import ticket_clocks
from tickets.services import (
    catalogue_load_reference,
    holiday_delete,
    holiday_save,
    incident_open,
    incident_restore,
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
)
from tickets.sla import sla_sweep

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NEW_YEAR = dt.date(2027, 1, 1)  # a Friday, "Tết Dương lịch" in the reference holidays
MONDAY = dt.date(2027, 1, 11)
VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def local(*args):
    return dt.datetime(*args, tzinfo=HCM)


def taken(catalogue, make_customer, at, code="new-lv"):
    """A working-day request taken, acknowledged and the customer called at ``at``."""
    ticket = ticket_open(actor=None, category=catalogue[code], channel="phone", description="Cấp điện",
                         customer=make_customer(), at=at).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=at)
    return ticket_record_contact(actor=None, ticket=ticket, at=at)


def due(ticket):
    ticket.refresh_from_db()
    return timezone.localtime(ticket.resolve_due)


# 1: the catalogue reloaded ---------------------------------------------------------------------------------


def test_reloading_the_catalogue_keeps_a_day_off_removed_and_the_deadlines_it_moved(
    staff, catalogue, make_customer
):
    # given a new LV connection (5 working days) taken on Monday 28/12/2026 09:00: due Tuesday 05/01/2027 09:00
    at = local(2026, 12, 28, 9)
    ticket = taken(catalogue, make_customer, at)
    assert due(ticket) == local(2027, 1, 5, 9)
    # and the administrator removes 01/01 from the days off: the deadline moves to Monday 04/01 09:00
    holiday_delete(actor=staff[Role.ADMINISTRATOR], holiday=Holiday.objects.get(day=NEW_YEAR))
    assert due(ticket) == local(2027, 1, 4, 9)
    # when the catalogue is loaded again (make run, a redeploy)
    out = io.StringIO()
    call_command("load_catalogue", stdout=out)
    # then the removal stands, and the deadline still counts 5 working days over the days off kept
    assert not Holiday.objects.filter(day=NEW_YEAR).exists()
    assert "0 holidays new" in out.getvalue()
    assert ticket.resolve_due == add_working_days(at, 5)
    assert due(ticket) == local(2027, 1, 4, 9)


def test_reloading_the_catalogue_keeps_a_day_off_moved(staff, catalogue, make_customer):
    # given the 27/04/2026 "nghỉ bù" moved by the administrator to Tuesday 28/04/2026
    moved = holiday_save(actor=staff[Role.ADMINISTRATOR], day=dt.date(2026, 4, 28), name="Giỗ Tổ (nghỉ bù)",
                         holiday=Holiday.objects.get(day=dt.date(2026, 4, 27)))  # fmt: skip
    kept = sorted(Holiday.objects.values_list("day", "name"))
    # when the catalogue is loaded again
    assert catalogue_load_reference()["holidays"] == 0
    # then the day off stays where the administrator put it, and nothing else changed
    assert sorted(Holiday.objects.values_list("day", "name")) == kept
    assert not Holiday.objects.filter(day=dt.date(2026, 4, 27)).exists()
    assert Holiday.objects.get(day=dt.date(2026, 4, 28)).pk == moved.pk


def test_a_new_years_reference_days_move_the_open_deadlines(catalogue, make_customer):
    # given a database whose holidays stop at 2026 (loaded by an earlier release: none of 2027 kept)
    Holiday.objects.filter(day__year=2027).delete()
    at = local(2026, 12, 28, 9)
    ticket = taken(catalogue, make_customer, at)
    assert due(ticket) == local(2027, 1, 4, 9)  # 01/01/2027 a working day then
    # when the release that knows 2027 loads its catalogue
    created = catalogue_load_reference()
    # then 2027's days off are kept, and the open deadline running over 01/01 moved with an event
    days_2027 = [day for day, _name in reference.HOLIDAYS if day.year == 2027]
    assert created["holidays"] == len(days_2027)
    assert sorted(Holiday.objects.filter(day__year=2027).values_list("day", flat=True)) == sorted(days_2027)
    assert due(ticket) == local(2027, 1, 5, 9)
    assert ticket.resolve_due == add_working_days(at, 5)
    moved = ticket.events.get(kind=EventKind.DEADLINE)
    assert (moved.actor, moved.after["day"], moved.after["day_off"]) == (None, "2027-01-01", True)
    # and a second load adds nothing
    assert catalogue_load_reference()["holidays"] == 0


# 2: a day off declared for, or removed from, the day the clock started -----------------------------------


def test_a_day_off_declared_for_the_intake_day_counts_from_the_next_working_morning(
    staff, catalogue, make_customer
):
    # given a request taken on Monday 11/01/2027 10:00: due Monday 18/01 10:00
    ticket = taken(catalogue, make_customer, local(2027, 1, 11, 10))
    assert due(ticket) == local(2027, 1, 18, 10)
    # when Monday 11/01 is declared a day off (a typhoon, a "nghỉ bù")
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=MONDAY, name="Nghỉ bù")
    # then the request is counted as one taken on a day off: from Tuesday 12/01 07:30, due Tuesday 19/01 07:30
    assert due(ticket) == local(2027, 1, 19, 7, 30)
    assert ticket.resolve_due == add_working_days(local(2027, 1, 11, 10), 5)
    assert ticket.next_check_at == ticket.resolve_due
    event = ticket.events.get(kind=EventKind.DEADLINE)
    assert event.after["resolve_due"] == local(2027, 1, 19, 7, 30).astimezone(dt.UTC).isoformat()
    # and the sweep at 01:00 that night breaches nothing, nobody is woken
    sla_sweep(now=local(2027, 1, 19, 1))
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level) == (False, 0)


def test_a_day_off_removed_from_the_intake_day_gives_the_deadline_of_a_working_day(
    staff, catalogue, make_customer
):
    # given Monday 11/01/2027 a day off, and a request taken that day at 10:00: due Tuesday 19/01 07:30
    holiday = holiday_save(actor=staff[Role.ADMINISTRATOR], day=MONDAY, name="Nghỉ bù")
    ticket = taken(catalogue, make_customer, local(2027, 1, 11, 10))
    assert due(ticket) == local(2027, 1, 19, 7, 30)
    # when the day off is removed (entered by mistake)
    holiday_delete(actor=staff[Role.ADMINISTRATOR], holiday=holiday)
    # then the request is due as one taken on a working day: Monday 18/01 10:00 (not 17:30)
    assert due(ticket) == local(2027, 1, 18, 10)


def test_a_day_off_declared_for_the_eve_taken_late_counts_from_the_next_working_morning(
    staff, catalogue, make_customer
):
    # given a change of contract (3 working days) taken on Friday 08/01/2027 at 23:59: due Wednesday 13/01 23:59
    at = local(2027, 1, 8, 23, 59)
    ticket = taken(catalogue, make_customer, at, code="contract-change-free")
    assert due(ticket) == local(2027, 1, 13, 23, 59)
    # when that Friday is declared a day off
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=dt.date(2027, 1, 8), name="Nghỉ bù")
    # then it counts from Monday 07:30, as a request taken that day off: Thursday 14/01 07:30 (not 00:00)
    assert due(ticket) == local(2027, 1, 14, 7, 30)
    assert ticket.resolve_due == add_working_days(at, 3)


def test_a_day_off_declared_for_the_intake_day_keeps_the_pause_already_taken(staff, catalogue, make_customer):
    # given a request taken Monday 11/01/2027 10:00, waiting for the customer from Tuesday 10:00 to Wednesday
    # 10:00 (one working day): due Tuesday 19/01 10:00
    ticket = taken(catalogue, make_customer, local(2027, 1, 11, 10))
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=local(2027, 1, 12, 10))
    ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=local(2027, 1, 13, 10))
    assert due(ticket) == local(2027, 1, 19, 10)
    # when Monday 11/01 is declared a day off
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=MONDAY, name="Nghỉ bù")
    # then intake's deadline (Tuesday 19/01 07:30) plus the day waited: Wednesday 20/01 07:30
    assert due(ticket) == local(2027, 1, 20, 7, 30)
    # and removing it again gives back the deadline of a request taken on a working day, plus the pause
    holiday_delete(actor=staff[Role.ADMINISTRATOR], holiday=Holiday.objects.get(day=MONDAY))
    assert due(ticket) == local(2027, 1, 19, 10)


def test_a_day_off_declared_for_the_intake_day_while_pending_then_resumed(staff, catalogue, make_customer):
    # given a request taken Monday 11/01/2027 10:00, waiting for the customer since Tuesday 10:00
    ticket = taken(catalogue, make_customer, local(2027, 1, 11, 10))
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=local(2027, 1, 12, 10))
    # when Monday 11/01 is declared a day off during the pause, and the customer answers on Wednesday 10:00
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=MONDAY, name="Nghỉ bù")
    assert due(ticket) == local(2027, 1, 19, 7, 30)
    ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=local(2027, 1, 13, 10))
    # then the same deadline as when the day off was declared after the resume
    assert due(ticket) == local(2027, 1, 20, 7, 30)


def test_a_day_off_declared_for_the_day_of_a_reopen_counts_from_the_next_working_morning(
    staff, catalogue, make_customer
):
    # given a request resolved, then reopened on Monday 11/01/2027 at 10:00: its new cycle due Monday 18/01 10:00
    ticket = taken(catalogue, make_customer, local(2027, 1, 4, 9))
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=local(2027, 1, 5, 9))
    ticket_change_status(
        actor=None, ticket=ticket, to=Status.REOPENED, note="Chưa xong", at=local(2027, 1, 11, 10)
    )
    assert due(ticket) == local(2027, 1, 18, 10)
    # when the day of the reopen is declared a day off
    holiday_save(actor=staff[Role.ADMINISTRATOR], day=MONDAY, name="Nghỉ bù")
    # then the new cycle counts from Tuesday 07:30, as intake would
    assert due(ticket) == local(2027, 1, 19, 7, 30)


# 3: a deadline missed before the ticket leaves the open states --------------------------------------------


@pytest.mark.parametrize("way_out", ["resolved", "restored"])
def test_a_contact_missed_before_the_pause_counts_as_missed_when_the_pause_ends_in_a_resolution(
    org, catalogue, make_customer, dispatcher, way_out
):
    customer = make_customer()
    incident = incident_open(actor=None, unit=customer.unit, cause="Sự cố", started_at=T - H)
    # an outage call taken at T: call the customer by T+4 min
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer, at=T, incident=incident).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    # the call not made, set pending at T+4:30, before the sweep came
    ticket_change_status(
        actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 4 * MIN + dt.timedelta(seconds=30)
    )
    staff_told = OutboxMessage.objects.filter(recipient=dispatcher.email).count()
    # the pause ends in a resolution an hour later
    if way_out == "resolved":
        ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + H)
    else:
        incident_restore(actor=None, incident=incident, at=T + H)
    sla_sweep(now=T + H + MIN)
    ticket.refresh_from_db()
    assert ticket.contact_due == T + 4 * MIN and ticket.contacted_at is None  # its moment kept, never met
    # then the miss is marked once, with its event, at the resolution; the other deadlines were met in time
    assert (ticket.acknowledge_breached, ticket.contact_breached, ticket.resolve_breached) == (
        False,
        True,
        False,
    )
    breach = ticket.events.get(kind=EventKind.BREACH)
    missed = {"deadline": "contact_due", "due": (T + 4 * MIN).astimezone(dt.UTC).isoformat()}
    assert (breach.at, breach.after, breach.cycle) == (T + H, missed, 0)
    # and nobody is told, nothing escalates: the ticket is resolved
    assert ticket.escalation_level == 0 and not ticket.events.filter(kind=EventKind.ESCALATED).exists()
    assert OutboxMessage.objects.filter(recipient=dispatcher.email).count() == staff_told
    assert ticket.next_check_at is None
    # and the contact deadline counts as reached and missed in the SLA figures (dashboard, monthly report)
    figures = Ticket.objects.filter(pk=ticket.pk).aggregate(**sla_aggregates())
    assert (figures["contact_reached"], figures["contact_met"]) == (1, 0)


@pytest.mark.parametrize("way_out", ["resolved", "restored"])
def test_a_deadline_passed_in_the_minute_before_the_resolution_is_marked(
    org, catalogue, make_customer, dispatcher, way_out
):
    customer = make_customer()
    incident = incident_open(actor=None, unit=customer.unit, cause="Sự cố", started_at=T - H)
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer, at=T, incident=incident).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    sla_sweep(now=T + 3 * MIN)  # nothing missed yet
    # resolved at T+4:30, the call never made, before the next sweep
    if way_out == "resolved":
        ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 4 * MIN + MIN // 2)
    else:
        incident_restore(actor=None, incident=incident, at=T + 4 * MIN + MIN // 2)
    sla_sweep(now=T + 5 * MIN)
    ticket.refresh_from_db()
    assert (ticket.contact_breached, ticket.escalation_level) == (True, 0)
    assert ticket.events.filter(kind=EventKind.BREACH).count() == 1
    assert not OutboxMessage.objects.filter(
        recipient=dispatcher.email, subject__startswith="Escalation"
    ).exists()


def test_a_ticket_resolved_in_time_marks_nothing(catalogue, make_customer):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + H)
    ticket.refresh_from_db()
    assert (ticket.acknowledge_breached, ticket.contact_breached, ticket.resolve_breached) == (
        False,
        False,
        False,
    )
    assert not ticket.events.filter(kind=EventKind.BREACH).exists()


def test_a_resolution_late_marks_the_resolve_deadline_missed_before_the_pause(catalogue, make_customer):
    # an outage call (2 hours) taken at T, called in time, its resolve deadline passed at T+2h, set pending a
    # minute later before the sweep, and resolved the next day
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    ticket_change_status(
        actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 2 * H + 30 * dt.timedelta(seconds=1)
    )
    ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 24 * H)
    ticket.refresh_from_db()
    assert (ticket.resolve_due, ticket.resolve_breached, ticket.contact_breached) == (T + 2 * H, True, False)
    assert ticket.events.get(kind=EventKind.BREACH).after["deadline"] == "resolve_due"


# 4: the ticket page ---------------------------------------------------------------------------------------


def test_a_contact_missed_before_the_pause_shows_late_on_the_ticket_page(catalogue, make_customer):
    # an outage call taken at T (call the customer by T+4), acknowledged, never called, set pending at T+4:30
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=T).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + 1 * MIN)
    ticket = ticket_change_status(
        actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=T + 4 * MIN + MIN // 2
    )
    rows = {row["label"]: row for row in ticket_clocks(ticket=ticket, now=T + 30 * MIN)}
    # the missed call is late (it will be breached, whatever the customer does), not paused
    contact = rows["contact the customer by"]
    assert (contact["due"], contact["late"], contact["state"]) == (T + 4 * MIN, True, "overdue by 26 min")
    # and the resolve deadline, still ahead when the pause began, waits with the customer
    resolve = rows["resolve by"]
    assert (resolve["late"], str(resolve["state"])) == (False, "paused: waiting for the customer")
