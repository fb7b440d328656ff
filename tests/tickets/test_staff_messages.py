"""What the outbox tells staff about a ticket: an escalation names the ticket, its unit and the deadlines
passed, never the customer; the notice that sends a dispatcher or a crew to call the customer and go there
carries the phone and address it needs, with the customer's code and never their name."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import OutboxMessage, Role
from tickets.services import ticket_open, ticket_record_contact, work_order_create
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
RECEIVED = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)


@pytest.fixture
def people(org, make_staff, dispatcher):
    return {
        "dispatcher": dispatcher,
        "supervisor": make_staff(Role.SUPERVISOR, [org["sibling"]]),
        "manager": make_staff(Role.MANAGER, [org["other_company"]]),
        "crew": make_staff(Role.FIELD_CREW, [org["home"]]),
    }


@pytest.fixture
def ticket(make_customer, catalogue, org):
    customer = make_customer(
        org["home"],
        name="Nguyễn Thị Mai",
        street="77 Đồng Khởi",
        phones=["0903 765 432"],
        national_id="079123456789",
    )
    return ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", at=RECEIVED,
        description="Mất điện, nhà chị Mai ở 77 Đồng Khởi, gọi 0903765432", customer=customer,
    ).ticket  # fmt: skip


PERSONAL = ("Nguyễn Thị Mai", "Mai", "Đồng Khởi", "765 432", "765432", "079123456789")


def test_each_escalation_names_the_ticket_its_unit_and_the_deadlines_passed_and_nothing_personal(
    people, ticket, org
):
    ticket_record_contact(actor=None, ticket=ticket, at=RECEIVED + dt.timedelta(minutes=2))
    sla_sweep(now=RECEIVED + dt.timedelta(minutes=3))  # not acknowledged: level 1
    sla_sweep(now=RECEIVED + dt.timedelta(hours=5))  # not resolved either: levels 2 and 3

    sent = {
        m.dedupe_key.split(":")[3]: (m.subject, m.body)
        for m in OutboxMessage.objects.filter(dedupe_key__contains=":escalation:")
    }
    unit = f"unit {org['home'].code} – {org['home'].name}"
    category = ticket.category.name
    assert sent == {
        "1": (f"Escalation 1: {ticket.number}", f"{ticket.number} [{category}] {unit}; overdue: acknowledge"),
        "2": (
            f"Escalation 2: {ticket.number}",
            f"{ticket.number} [{category}] {unit}; overdue: acknowledge, resolve",
        ),
        "3": (
            f"Escalation 3: {ticket.number}",
            f"{ticket.number} [{category}] {unit}; overdue: acknowledge, resolve",
        ),
    }
    for _subject, body in sent.values():
        assert not [word for word in PERSONAL if word in body], body


def test_the_dispatcher_and_the_crew_get_the_phone_and_address_to_call_and_go_but_not_the_name(
    people, ticket
):
    work_order_create(actor=None, ticket=ticket, crew=people["crew"])

    routed = OutboxMessage.objects.get(dedupe_key__startswith=f"ticket:{ticket.pk}:routed:")
    sent_crew = OutboxMessage.objects.get(dedupe_key__startswith="workorder:")
    expected = (
        f"{ticket.number} [{ticket.category.name}] {ticket.customer.code}; phone: 0903 765 432; "
        f"address: {ticket.customer.address}; {ticket.description}"
    )
    assert routed.body == sent_crew.body == expected
    assert "Nguyễn Thị Mai" not in expected and "079123456789" not in expected
