"""A unit merged into a unit of another company (or corporation) while its tickets are open: level 2 (and the
callback-overdue notice) reach the supervisors of the company of the unit serving it today, level 3 the
managers of that company's corporation, as level 1 reaches the successor's dispatchers."""

from __future__ import annotations

import datetime as dt

from crm import shared_cache
from crm.models import OutboxMessage, Role, Unit
from crm.reference_data import wards
from tickets.models import Status, Ticket
from tickets.services import ticket_change_status, ticket_open, ticket_record_contact
from tickets.sla import callback_sweep, sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def _with_phone(user, phone):
    user.staff_profile.phone = phone
    user.staff_profile.save()
    return user


def _open(catalogue, make_customer, unit):
    customer = make_customer(unit=unit, ward=wards()[unit.code][0])
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer, at=T).ticket  # fmt: skip
    ticket_record_contact(actor=None, ticket=ticket, at=T + 2 * MIN)
    return ticket


def _merge(unit, successor, *, last_day=dt.date(2026, 1, 1)):
    Unit.objects.filter(pk=unit.pk).update(valid_to=last_day, successor=successor)
    shared_cache.changed(shared_cache.ORGANISATION)


def _told(ticket, kind: str) -> list[str]:
    return sorted(
        OutboxMessage.objects.filter(
            dedupe_key__startswith=f"ticket:{ticket.pk}:", dedupe_key__contains=kind
        ).values_list("recipient", flat=True)
    )


def test_level_two_of_a_merged_units_ticket_reaches_the_successors_company_not_the_old_one(
    org, catalogue, make_customer, make_staff
):
    # given a unit of another company (PE02) with an open ticket, then merged into the home unit (PE01)
    merged = org["other_company"]
    assert merged.company_id != org["home"].company_id
    _with_phone(make_staff(Role.SUPERVISOR, [merged]), "+84903000031")
    _with_phone(make_staff(Role.SUPERVISOR, [org["home"]]), "+84903000032")
    _with_phone(make_staff(Role.SUPERVISOR, [org["sibling"]]), "+84903000033")  # the successor's company too
    ticket = _open(catalogue, make_customer, merged)
    _merge(merged, org["home"])
    # when the ticket breaches and climbs to level 2
    sla_sweep(now=T + H)
    # then the successor's company's supervisors are told, not the old company's
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 2
    assert _told(ticket, ":escalation:2:") == ["+84903000032", "+84903000033"]


def test_a_merge_entered_ahead_of_its_day_changes_nobody_told(org, catalogue, make_customer, make_staff):
    # given the same merge, entered with a last day still to come
    merged = org["other_company"]
    _with_phone(make_staff(Role.SUPERVISOR, [merged]), "+84903000041")
    _with_phone(make_staff(Role.SUPERVISOR, [org["home"]]), "+84903000042")
    ticket = _open(catalogue, make_customer, merged)
    _merge(merged, org["home"], last_day=dt.date(2999, 1, 1))
    # when the ticket climbs to level 2
    sla_sweep(now=T + H)
    # then its own company's supervisors are told: the unit still serves itself
    assert _told(ticket, ":escalation:2:") == ["+84903000041"]


def test_level_three_across_corporations_reaches_the_managers_of_the_successors_corporation(
    org, catalogue, make_customer, make_staff
):
    # given a unit of EVNCPC merged into the home unit (EVNHCMC) while its ticket is open
    merged = org["other_corporation"]
    assert merged.company.corporation_id != org["home"].company.corporation_id
    _with_phone(make_staff(Role.MANAGER, [merged]), "+84903000051")
    _with_phone(make_staff(Role.MANAGER, [org["other_company"]]), "+84903000052")  # EVNHCMC, another company
    _with_phone(make_staff(Role.SUPERVISOR, [merged]), "+84903000053")
    _with_phone(make_staff(Role.SUPERVISOR, [org["home"]]), "+84903000054")
    ticket = _open(catalogue, make_customer, merged)
    _merge(merged, org["home"])
    # when it climbs the whole ladder
    sla_sweep(now=T + 24 * H)
    # then level 2 goes to the home company's supervisors and level 3 to EVNHCMC's managers
    assert Ticket.objects.get(pk=ticket.pk).escalation_level == 3
    assert _told(ticket, ":escalation:2:") == ["+84903000054"]
    assert _told(ticket, ":escalation:3:") == ["+84903000052"]


def test_a_merged_units_overdue_callback_reaches_the_successors_supervisors(
    org, catalogue, make_customer, make_staff
):
    # given a resolved ticket of PE02's unit whose callback is not made, the unit merged into PE01's meanwhile
    merged = org["other_company"]
    _with_phone(make_staff(Role.SUPERVISOR, [merged]), "+84903000061")
    _with_phone(make_staff(Role.SUPERVISOR, [org["home"]]), "+84903000062")
    customer = make_customer(unit=merged, ward=wards()[merged.code][0])
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer, at=T).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=T + MIN)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=T + 20 * MIN)
    _merge(merged, org["home"])
    # when the callback's deadline passes
    assert callback_sweep(now=ticket.callback_due) == {"overdue": 1}
    # then the successor's company's supervisors are told
    assert _told(ticket, "callback-overdue") == ["+84903000062"]
