"""The callback clock: a resolved ticket whose callback is not finished by ``callback_due`` is found overdue by
the callback sweep, once per resolution, and the supervisors of its unit's company are told; the ticket stays
resolved until its callback is recorded. Orderings: the survey before the deadline, an unanswered attempt
before it, the survey after it, a reopen after it, two sweeps."""

import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, Ticket, TicketEvent
from tickets.selectors import ticket_clocks
from tickets.services import callback_record, ticket_change_status, ticket_open
from tickets.sla import callback_sweep, sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))
T = dt.datetime(2026, 6, 1, 14, 0, tzinfo=VN)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


@pytest.fixture
def supervisors(org, make_staff):
    """Two working supervisors of the home unit's company (one serving a sibling unit), one who has left, and
    one of another company."""
    return {
        "home": make_staff(Role.SUPERVISOR, [org["home"]]),
        "sibling": make_staff(Role.SUPERVISOR, [org["sibling"]]),
        "left": make_staff(Role.SUPERVISOR, [org["home"]]),
        "other": make_staff(Role.SUPERVISOR, [org["other_company"]]),
    }


def resolved(catalogue, make_customer, *, at=T):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=at).ticket  # fmt: skip
    ticket_change_status(actor=None, ticket=ticket, to=Status.ACKNOWLEDGED, at=at + MIN)
    return ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=at + 20 * MIN)


def told(ticket) -> list[tuple[str, str]]:
    return sorted(
        OutboxMessage.objects.filter(dedupe_key__contains=f"ticket:{ticket.pk}:").filter(
            dedupe_key__contains="callback-overdue"
        ).values_list("recipient", "subject")
    )


def test_a_callback_not_made_by_its_deadline_is_overdue_once_and_the_companys_supervisors_are_told(
    catalogue, make_customer, supervisors
):
    supervisors["left"].is_active = False  # has left: deactivated
    supervisors["left"].save(update_fields=["is_active"])
    ticket = resolved(catalogue, make_customer)
    due = T + 20 * MIN + 24 * H
    assert ticket.callback_due == due
    assert callback_sweep(now=due - MIN) == {"overdue": 0}
    assert Ticket.objects.get(pk=ticket.pk).callback_overdue_at is None
    # when the deadline comes
    assert callback_sweep(now=due) == {"overdue": 1}
    # then
    ticket.refresh_from_db()
    assert (ticket.status, ticket.callback_overdue_at) == (Status.RESOLVED, due)
    event = ticket.events.get(kind=EventKind.CALLBACK_OVERDUE)
    assert (event.at, event.cycle, event.actor) == (due, 0, None)
    assert dt.datetime.fromisoformat(event.after["callback_due"]) == due
    subject = f"Callback overdue: {ticket.number}"
    expected = sorted(
        (OutboxMessage.objects.filter(dedupe_key__endswith=f":{u.staff_profile.pk}").get().recipient, subject)
        for u in (supervisors["home"], supervisors["sibling"])
    )
    assert told(ticket) == expected  # the working supervisors of the company: not the one who left, nor others
    body = OutboxMessage.objects.filter(subject=subject).first().body
    assert ticket.number in body and "PE0100" in body and "21/06" not in body
    assert "02/06/2026 14:20" in body  # the deadline, in the centre's time
    assert ticket.customer.full_name not in body and ticket.customer.code not in body  # no customer data
    # A second sweep, and a later one, find nothing more.
    assert callback_sweep(now=due) == {"overdue": 0}
    assert callback_sweep(now=due + 48 * H) == {"overdue": 0}
    assert ticket.events.filter(kind=EventKind.CALLBACK_OVERDUE).count() == 1
    assert len(told(ticket)) == 2
    # The SLA sweep has nothing to do with it (a resolved ticket has no SLA clock left).
    assert sla_sweep(now=due + 48 * H) == {"handled": 0, "escalations": 0}


def test_a_survey_before_the_deadline_closes_the_ticket_and_nothing_is_overdue(
    catalogue, make_customer, supervisors
):
    ticket = resolved(catalogue, make_customer)
    callback_record(actor=None, ticket=ticket, reached=True, fix_score=5, attitude_score=5, at=T + 2 * H)
    assert callback_sweep(now=T + 72 * H) == {"overdue": 0}
    ticket.refresh_from_db()
    assert (ticket.status, ticket.callback_overdue_at) == (Status.CLOSED, None)
    assert told(ticket) == []


def test_an_unanswered_call_before_the_deadline_does_not_finish_the_callback(catalogue, make_customer, supervisors):
    ticket = resolved(catalogue, make_customer)
    callback_record(actor=None, ticket=ticket, reached=False, at=T + 2 * H)
    assert callback_sweep(now=ticket.callback_due) == {"overdue": 1}
    # The survey made after the deadline still closes the ticket; its clock says it was done late.
    callback_record(actor=None, ticket=ticket, reached=True, fix_score=3, attitude_score=4,
                    at=ticket.callback_due + H)  # fmt: skip
    ticket.refresh_from_db()
    assert (ticket.status, ticket.callback_overdue_at) == (Status.CLOSED, ticket.callback_due)
    row = ticket_clocks(ticket=ticket, now=ticket.callback_due + 2 * H)[-1]
    assert row["late"] is True


def test_a_reopened_ticket_gets_a_fresh_callback_clock_and_is_found_overdue_again(
    catalogue, make_customer, supervisors
):
    ticket = resolved(catalogue, make_customer)
    first_due = ticket.callback_due
    callback_sweep(now=first_due)
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.REOPENED, note="Lại mất điện",
                                  at=first_due + H)  # fmt: skip
    assert (ticket.callback_due, ticket.callback_overdue_at) == (None, None)
    reopen = ticket.events.filter(kind=EventKind.STATUS, after__status=Status.REOPENED).get()
    assert dt.datetime.fromisoformat(reopen.before["earlier_cycle"]["callback_overdue_at"]) == first_due
    ticket = ticket_change_status(actor=None, ticket=ticket, to=Status.RESOLVED, at=first_due + 2 * H)
    assert ticket.callback_due == first_due + 26 * H
    assert callback_sweep(now=first_due + 25 * H) == {"overdue": 0}
    assert callback_sweep(now=ticket.callback_due) == {"overdue": 1}
    assert list(ticket.events.filter(kind=EventKind.CALLBACK_OVERDUE).values_list("cycle", flat=True)) == [0, 1]
    assert len(told(ticket)) == 6  # the company's three working supervisors, once per resolution


def test_the_sweep_takes_every_due_ticket_in_batches(catalogue, make_customer, supervisors):
    tickets = [resolved(catalogue, make_customer, at=T + i * MIN) for i in range(5)]
    not_yet = resolved(catalogue, make_customer, at=T + 2 * H)
    assert callback_sweep(now=tickets[-1].callback_due, batch=2) == {"overdue": 5}
    overdue = set(Ticket.objects.filter(callback_overdue_at__isnull=False).values_list("pk", flat=True))
    assert overdue == {t.pk for t in tickets}
    assert Ticket.objects.get(pk=not_yet.pk).callback_overdue_at is None


def test_the_database_keeps_one_overdue_event_per_resolution(catalogue, make_customer, supervisors):
    ticket = resolved(catalogue, make_customer)
    callback_sweep(now=ticket.callback_due)
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketEvent.objects.create(ticket=ticket, kind=EventKind.CALLBACK_OVERDUE, at=ticket.callback_due, cycle=0)
    assert ticket.events.filter(kind=EventKind.CALLBACK_OVERDUE).count() == 1


def test_the_callback_sweep_is_scheduled_with_the_task_cluster(db):
    import io

    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("setup_schedules", stdout=io.StringIO())
    schedule = Schedule.objects.get(func="tickets.tasks.sweep_callbacks")
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 5)


def test_the_ticket_page_shows_the_overdue_callback_in_vietnamese(client, catalogue, make_customer, supervisors):
    ticket = resolved(catalogue, make_customer)
    callback_sweep(now=ticket.callback_due)
    client.force_login(supervisors["home"])
    page = client.get(reverse("admin:tickets_ticket_change", args=[ticket.pk]), HTTP_ACCEPT_LANGUAGE="vi")
    assert page.status_code == 200
    assert "Quá hạn gọi lại khảo sát" in page.content.decode()


def test_the_sweep_reads_the_due_callbacks_through_their_partial_index(db):
    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    query = Ticket.objects.filter(status=Status.RESOLVED, callback_overdue_at__isnull=True, callback_due__lte=T)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.order_by("callback_due", "id").explain()
    assert "tickets_callback_due_idx" in plan, plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_sweeps_at_once_find_each_callback_overdue_exactly_once(catalogue, make_customer, supervisors):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent sweeps need PostgreSQL's row locks")
    tickets = [resolved(catalogue, make_customer, at=T + i * MIN) for i in range(30)]
    barrier = threading.Barrier(3)
    results = []

    def sweep():
        barrier.wait()
        try:
            results.append(callback_sweep(now=T + 48 * H, batch=4))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["overdue"] for r in results) == len(tickets)
    assert TicketEvent.objects.filter(kind=EventKind.CALLBACK_OVERDUE).count() == len(tickets)
    assert OutboxMessage.objects.filter(dedupe_key__contains="callback-overdue").count() == 3 * len(tickets)
