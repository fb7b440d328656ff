import datetime as dt
import io
import re
import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import OperationalError, connection
from django.utils import timezone

from crm.models import OutboxMessage, OutboxStatus, Role
from crm.outbox import outbox_deliver, outbox_deliver_due, outbox_enqueue, outbox_worker
from crm.tasks import deliver_outbox
from tickets.models import EventKind, SlaPolicy, Status, Ticket, TicketEvent
from tickets.services import (
    callback_record,
    suspension_create,
    ticket_assign,
    ticket_change_status,
    ticket_open,
    ticket_record_contact,
    ticket_reroute,
    work_order_create,
)
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))


def at(y, m, d, hh=9, mm=0):
    return dt.datetime(y, m, d, hh, mm, tzinfo=VN)


def test_an_outage_call_is_routed_stamped_and_the_dispatcher_is_told(
    catalogue, make_customer, dispatcher, staff
):
    customer = make_customer(phones=["0903 123 456"])
    received = at(2026, 11, 20, 14, 0)
    intake = ticket_open(
        actor=staff[Role.AGENT], category=catalogue["outage"], channel="phone", description="Mất điện cả khu phố",
        customer=customer, at=received,
    )  # fmt: skip
    ticket = intake.ticket
    assert intake.created
    assert re.fullmatch(r"2026-\d{7}", ticket.number)
    assert ticket.unit == customer.unit
    assert ticket.acknowledge_due == received + dt.timedelta(minutes=3)
    assert ticket.contact_due == received + dt.timedelta(minutes=4)
    assert ticket.resolve_due == received + dt.timedelta(hours=2)
    assert ticket.next_check_at == ticket.acknowledge_due
    assert list(ticket.events.values_list("kind", flat=True)) == [EventKind.CREATED]
    # both dispatchers of the unit are told: by SMS when they have a work phone, else in the log
    assert sorted(OutboxMessage.objects.values_list("channel", "recipient")) == [
        ("log", staff[Role.DISPATCHER].username), ("sms", "+84903999888"),
    ]  # fmt: skip
    message = OutboxMessage.objects.get(channel="sms")
    assert "0903 123 456" in message.body and customer.street in message.body and "Mất điện" in message.body


def test_ticket_numbers_follow_each_other(catalogue, make_customer):
    customer = make_customer()
    numbers = [
        ticket_open(actor=None, category=catalogue["information"], channel="zalo", description=f"Hỏi {i}",
                    customer=customer, at=at(2026, 3, 1)).ticket.number
        for i in range(3)
    ]  # fmt: skip
    # Year, dash, seven digits; consecutive (PostgreSQL's sequence is not rolled back between tests).
    assert all(n[:5] == "2026-" and len(n) == 12 for n in numbers)
    first = int(numbers[0][5:])
    assert [int(n[5:]) for n in numbers] == [first, first + 1, first + 2]


def test_a_retried_request_with_the_same_key_returns_the_first_ticket(catalogue, make_customer, dispatcher):
    customer = make_customer()
    first = ticket_open(actor=None, category=catalogue["outage"], channel="app", description="x", customer=customer,
                        idempotency_key="app-123")  # fmt: skip
    again = ticket_open(actor=None, category=catalogue["outage"], channel="app", description="x", customer=customer,
                        idempotency_key="app-123")  # fmt: skip
    assert again.ticket.pk == first.ticket.pk
    assert not again.created
    assert Ticket.objects.count() == 1
    assert TicketEvent.objects.count() == 1
    assert OutboxMessage.objects.count() == 1


def test_a_second_open_ticket_of_the_same_category_warns(catalogue, make_customer):
    customer = make_customer()
    first = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="a", customer=customer
    )
    second = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="b", customer=customer
    )
    assert second.warnings and first.ticket.number in second.warnings[0]


def test_the_warning_names_the_customers_other_open_tickets_of_the_category_latest_first(catalogue, make_customer):
    customer, neighbour = make_customer(), make_customer()

    def take(category, who=customer):
        return ticket_open(actor=None, category=catalogue[category], channel="phone", description="x", customer=who)

    older, cancelled, newer = take("billing"), take("billing"), take("billing")
    ticket_change_status(actor=None, ticket=cancelled.ticket, to=Status.CANCELLED, note="Gọi nhầm")
    take("outage"), take("billing", who=neighbour)  # another category, another customer
    latest = take("billing")
    assert latest.warnings == [
        f"The customer already has an open ticket of this category: {newer.ticket.number}, {older.ticket.number}"
    ]
    assert take("information").warnings == []


def test_an_unknown_caller_needs_a_unit_and_a_phone_or_name_and_bad_input_writes_nothing(catalogue, org):
    with pytest.raises(ValidationError) as exc:
        ticket_open(
            actor=None, category=catalogue["outage"], channel="phone", description="x", caller_phone="12ab"
        )
    assert set(exc.value.message_dict) == {"caller_phone", "unit"}
    assert Ticket.objects.count() == 0
    intake = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Cháy dây",
                         caller_phone="0912 345 678", caller_address="5 Lê Lợi", unit=org["home"])  # fmt: skip
    assert intake.ticket.caller_phone == "+84912345678"


def test_work_for_a_merged_unit_goes_to_its_successor(catalogue, org):
    son_hoa = org["other_corporation"].predecessors.get(name="Điện lực Sơn Hòa")
    intake = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         caller_name="Anh Tư", unit=son_hoa)  # fmt: skip
    assert intake.ticket.unit == org["other_corporation"]


def test_a_suspended_category_is_refused_with_its_reason_but_outages_never_are(catalogue, make_customer, org):
    customer = make_customer()
    suspension_create(
        actor=None, category=catalogue["new-lv"], units=[org["home"]], starts_at=at(2021, 7, 9),
        ends_at=at(2021, 10, 1), reason="Giãn cách xã hội theo Chỉ thị 16",
    )  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="x", customer=customer,
                    at=at(2021, 8, 1))  # fmt: skip
    assert "Chỉ thị 16" in exc.value.messages[0]
    assert Ticket.objects.count() == 0
    ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="x", customer=customer,
                at=at(2021, 10, 2))  # fmt: skip
    with pytest.raises(ValidationError):
        suspension_create(actor=None, category=catalogue["outage"], units=[org["home"]], starts_at=at(2021, 7, 9),
                          ends_at=at(2021, 10, 1), reason="x")  # fmt: skip


def test_working_day_targets_skip_weekends_and_tet(catalogue, make_customer):
    customer = make_customer()
    # Thursday 12 Feb 2026; Tết Bính Ngọ runs 14–22 Feb: Fri 13, Mon 23, Tue 24, Wed 25, Thu 26 are the 5 days
    ticket = ticket_open(actor=None, category=catalogue["new-lv"], channel="portal", description="x",
                         customer=customer, at=at(2026, 2, 12, 10, 0)).ticket  # fmt: skip
    assert timezone.localtime(ticket.resolve_due) == at(2026, 2, 26, 10, 0)


def test_a_new_policy_does_not_move_open_deadlines(catalogue, make_customer):
    customer = make_customer()
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=customer, at=at(2026, 5, 1, 8)).ticket  # fmt: skip
    SlaPolicy.objects.create(
        category=catalogue["outage"], valid_from=at(2026, 5, 1, 8, 30), resolve_minutes=60
    )
    later = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="y",
                        customer=customer, at=at(2026, 5, 1, 9)).ticket  # fmt: skip
    ticket.refresh_from_db()
    assert ticket.resolve_due == at(2026, 5, 1, 10)
    assert later.resolve_due == at(2026, 5, 1, 10)


def test_the_clock_waits_while_the_ticket_is_pending_the_customer(catalogue, make_customer):
    customer = make_customer()
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="x",
                         customer=customer, at=at(2026, 5, 4, 8)).ticket  # fmt: skip
    due = ticket.resolve_due
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=at(2026, 5, 4, 8, 1))
    ticket_change_status(actor=None, ticket=ticket, to=Status.PENDING_CUSTOMER, at=at(2026, 5, 4, 9))
    assert Ticket.objects.get(pk=ticket.pk).next_check_at is None
    ticket_change_status(actor=None, ticket=ticket, to=Status.IN_PROGRESS, at=at(2026, 5, 4, 12))
    ticket.refresh_from_db()
    assert ticket.resolve_due == due + dt.timedelta(hours=3)


def test_transitions_are_guarded_and_a_refused_one_changes_nothing(catalogue, make_customer):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer()).ticket  # fmt: skip
    with pytest.raises(ValidationError):
        ticket_change_status(actor=None, ticket=ticket, to=Status.CLOSED)
    with pytest.raises(ValidationError):
        ticket_change_status(actor=None, ticket=ticket, to=Status.CANCELLED)  # needs a reason
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert ticket.events.count() == 1
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED)
    with pytest.raises(ValidationError, match="by sending a crew"):
        ticket_change_status(actor=None, ticket=ticket, to=Status.DISPATCHED)  # nobody would be sent
    work_order_create(actor=None, ticket=ticket)  # sending a crew dispatches it
    for status in (Status.IN_PROGRESS, Status.RESOLVED):
        ticket = ticket_change_status(actor=None, ticket=ticket, to=status)
    with pytest.raises(ValidationError, match="before its callback is recorded"):
        ticket_change_status(actor=None, ticket=ticket, to=Status.CLOSED)  # a resolved ticket waits for it
    for _attempt in range(3):
        callback_record(actor=None, ticket=ticket, reached=False)  # the third closes it
    ticket.refresh_from_db()
    assert ticket.callback_due == ticket.resolved_at + dt.timedelta(hours=24)
    assert ticket.next_check_at is None
    assert list(ticket.events.filter(kind=EventKind.STATUS).values_list("after__status", flat=True)) == [
        "acknowledged", "dispatched", "in_progress", "resolved", "closed",
    ]  # fmt: skip


def test_the_sweep_marks_breaches_and_escalates_once_per_level(
    catalogue, make_customer, make_staff, org, dispatcher
):
    supervisor = make_staff(Role.SUPERVISOR, [org["sibling"]])  # same company
    manager = make_staff(Role.MANAGER, [org["other_company"]])  # same corporation
    make_staff(Role.SUPERVISOR, [org["other_company"]])  # another company: not told
    received = at(2026, 6, 1, 14)
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer(), at=received).ticket  # fmt: skip
    ticket_record_contact(actor=None, ticket=ticket, at=received + dt.timedelta(minutes=2))
    assert sla_sweep(now=received + dt.timedelta(minutes=2)) == {"handled": 0, "escalations": 0}
    # 3 minutes: not acknowledged → breach, level 1 (the dispatcher)
    assert sla_sweep(now=received + dt.timedelta(minutes=3))["escalations"] == 1
    assert sla_sweep(now=received + dt.timedelta(minutes=3))["escalations"] == 0
    ticket.refresh_from_db()
    assert (ticket.acknowledge_breached, ticket.contact_breached, ticket.escalation_level) == (True, False, 1)
    assert ticket.next_check_at == received + dt.timedelta(minutes=33)
    # a sweep late by hours does every level due, once
    assert sla_sweep(now=received + dt.timedelta(hours=5))["escalations"] == 2
    assert sla_sweep(now=received + dt.timedelta(hours=6))["escalations"] == 0
    ticket.refresh_from_db()
    assert (ticket.resolve_breached, ticket.escalation_level, ticket.next_check_at) == (True, 3, None)
    levels = list(
        ticket.events.filter(kind=EventKind.ESCALATED).order_by("level").values_list("level", flat=True)
    )
    assert levels == [1, 2, 3]
    told = {
        m.dedupe_key.split(":")[3]: m.recipient
        for m in OutboxMessage.objects.filter(dedupe_key__contains="escalation")
    }
    assert told == {"1": dispatcher.staff_profile.phone, "2": supervisor.username, "3": manager.username}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_escalate_each_level_exactly_once(catalogue, make_customer):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent sweeps need PostgreSQL's row locks")
    received = at(2026, 6, 1, 14)
    customer = make_customer()
    tickets = [
        ticket_open(actor=None, category=catalogue["outage"], channel="phone", description=f"x{i}",
                    customer=customer, at=received).ticket
        for i in range(40)
    ]  # fmt: skip
    barrier = threading.Barrier(3)
    results = []

    def sweep():
        barrier.wait()
        try:
            results.append(sla_sweep(now=received + dt.timedelta(hours=5), batch=7))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["escalations"] for r in results) == 3 * len(tickets)
    for ticket in tickets:
        assert list(
            ticket.events.filter(kind=EventKind.ESCALATED).order_by("level").values_list("level", flat=True)
        ) == [1, 2, 3]


def test_outbox_delivers_once_and_retries_a_failing_backend(catalogue, make_customer, dispatcher, settings):
    ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="x", customer=make_customer()
    )
    message = OutboxMessage.objects.get()
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS,
        "sms": "tests.tickets.test_services.Broken",
    }
    assert outbox_deliver(message_id=message.pk) is False
    message.refresh_from_db()
    assert (message.status, message.attempts, "gateway down" in message.last_error) == (
        OutboxStatus.PENDING,
        1,
        True,
    )
    assert message.next_attempt_at > timezone.now()
    assert outbox_deliver_due() == 0  # not due yet
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS,
        "sms": "crm.outbox.LoggingBackend",
    }
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver_due() == 1
    assert outbox_deliver(message_id=message.pk) is False  # already sent: nothing twice
    message.refresh_from_db()
    assert (message.status, message.attempts) == (OutboxStatus.SENT, 2)


class Broken:
    def send(self, message):
        raise ConnectionError("gateway down")


def test_a_committed_message_leaves_with_the_outbox_workers_next_pass_and_nothing_is_queued_at_commit(
    catalogue, make_customer, dispatcher, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *a, **kw: queued.append(func))
    with django_capture_on_commit_callbacks(execute=True):
        ticket_open(
            actor=None,
            category=catalogue["outage"],
            channel="phone",
            description="x",
            customer=make_customer(),
        )
    # The web process only writes rows: no task, no timer, no broker at commit (the callbacks ran).
    assert queued == []
    told = OutboxMessage.objects.get(recipient=dispatcher.staff_profile.phone)
    assert told.status == OutboxStatus.PENDING
    written = OutboxMessage.objects.count()
    out = io.StringIO()
    call_command("outbox_worker", "--once", stdout=out)
    assert out.getvalue().strip() == f"{written} message(s) sent"
    told.refresh_from_db()
    assert told.status == OutboxStatus.SENT
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.SENT).exists()
    assert deliver_outbox() == 0  # the minutely sweep finds nothing left


class Stop:
    """Stands for the worker's stop event: counts the waits and stops after ``waits`` of them."""

    def __init__(self, waits):
        self.waits, self.waited = waits, []

    def is_set(self):
        return len(self.waited) >= self.waits

    def wait(self, seconds):
        self.waited.append(seconds)


def test_the_outbox_worker_waits_only_when_nothing_was_due(db, monkeypatch):
    for i in range(3):
        outbox_enqueue(channel="log", recipient="dispatcher", body=f"m{i}", dedupe_key=f"worker-test:{i}")
    passes = []
    real = outbox_deliver_due

    def counted():
        passes.append(1)
        sent = real()
        if len(passes) == 2:  # a message written while the worker runs, after its pass found nothing
            outbox_enqueue(channel="log", recipient="dispatcher", body="late", dedupe_key="worker-test:late")
        return sent

    monkeypatch.setattr("crm.outbox.outbox_deliver_due", counted)
    stop = Stop(waits=2)
    assert outbox_worker(poll=0.5, stop=stop) == 4
    # pass 1 sends three (no wait), pass 2 finds none due (wait), pass 3 sends the late one, pass 4 none (wait)
    assert len(passes) == 4 and stop.waited == [0.5, 0.5]
    assert not OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists()


def test_the_outbox_worker_outlives_a_database_that_went_away(db, monkeypatch, caplog):
    outbox_enqueue(channel="log", recipient="dispatcher", body="m", dedupe_key="worker-test:down")
    calls = []
    real = outbox_deliver_due

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real()

    monkeypatch.setattr("crm.outbox.outbox_deliver_due", flaky)
    stop = Stop(waits=2)
    assert outbox_worker(poll=1, stop=stop) == 1
    assert "the database is unavailable" in caplog.text
    assert OutboxMessage.objects.get(dedupe_key="worker-test:down").status == OutboxStatus.SENT


def test_the_delivery_sweep_goes_on_until_nothing_is_due(db):
    for i in range(7):
        outbox_enqueue(channel="log", recipient="dispatcher", body=f"m{i}", dedupe_key=f"sweep-test:{i}")
    assert outbox_deliver_due(limit=3) == 7
    assert set(
        OutboxMessage.objects.filter(dedupe_key__startswith="sweep-test:").values_list("status", flat=True)
    ) == {OutboxStatus.SENT}


def test_a_supervisor_reroutes_with_a_reason_and_the_new_units_dispatcher_is_told(
    catalogue, make_customer, make_staff, org, staff
):
    other_dispatcher = make_staff(Role.DISPATCHER, [org["sibling"]])
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer()).ticket  # fmt: skip
    with pytest.raises(ValidationError):
        ticket_reroute(actor=staff[Role.SUPERVISOR], ticket=ticket, unit=org["sibling"], reason=" ")
    assert Ticket.objects.get(pk=ticket.pk).unit == org["home"]
    ticket_reroute(
        actor=staff[Role.SUPERVISOR], ticket=ticket, unit=org["sibling"], reason="Địa chỉ thuộc Quận 3"
    )
    ticket.refresh_from_db()
    assert ticket.unit == org["sibling"]
    routed = ticket.events.get(kind=EventKind.ROUTED)
    assert (routed.before, routed.after, routed.note) == (
        {"unit": org["home"].code}, {"unit": org["sibling"].code}, "Địa chỉ thuộc Quận 3",
    )  # fmt: skip
    assert OutboxMessage.objects.filter(recipient=other_dispatcher.username).count() == 1


def test_an_assignee_must_serve_the_tickets_unit(catalogue, make_customer, make_staff, org, staff):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer()).ticket  # fmt: skip
    with pytest.raises(ValidationError):
        ticket_assign(actor=None, ticket=ticket, assignee=make_staff(Role.FIELD_CREW, [org["other_company"]]))
    assert Ticket.objects.get(pk=ticket.pk).assignee is None
    ticket_assign(actor=None, ticket=ticket, assignee=staff[Role.FIELD_CREW])
    assert Ticket.objects.get(pk=ticket.pk).assignee == staff[Role.FIELD_CREW]
