"""The supervisor's and dispatcher's day: a duplicate names the ticket it repeats (page, timeline event, API);
"breaching within 30 minutes" is any deadline neither met nor breached falling within the window, whatever the
escalation level; the breaches page's links open the unit of their row; only the roles that work tickets are
offered and given a ticket."""

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets import selectors
from tickets.models import EventKind, Status, Ticket, due_soon
from tickets.services import ticket_assign, ticket_change_status, ticket_open, ticket_record_contact
from tickets.sla import sla_sweep


def _open(catalogue, customer, description="Mất điện cả xóm", at=None):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description=description,
                       customer=customer, at=at).ticket  # fmt: skip


# -- 1. A duplicate names the ticket it repeats -----------------------------------------------------------------


def test_the_duplicate_s_page_names_the_ticket_it_repeats_as_a_link(client, staff, make_customer, catalogue):
    customer = make_customer()
    first = _open(catalogue, customer)
    second = _open(catalogue, customer, "Gọi lại: vẫn mất điện")
    client.force_login(staff[Role.AGENT])
    client.post(reverse("admin:tickets_ticket_move", args=[second.pk]),
                {"move": "duplicate", "duplicate_of": first.number})  # fmt: skip
    second.refresh_from_db()
    assert second.status == Status.DUPLICATE and second.duplicate_of_id == first.pk
    page = client.get(reverse("admin:tickets_ticket_change", args=[second.pk])).content.decode()
    master_url = reverse("admin:tickets_ticket_change", args=[first.pk])
    assert f'<a href="{master_url}">{first.number}</a>' in page
    # the status event records the number of the request that stays open
    marked = second.events.filter(kind=EventKind.STATUS).latest("id")
    assert marked.after == {"status": Status.DUPLICATE, "duplicate_of": first.number}
    # ... and the timeline's row of that move names it
    assert f"(of {first.number})" in page
    # a ticket that repeats none has no such line
    page = client.get(reverse("admin:tickets_ticket_change", args=[first.pk])).content.decode()
    assert "field-duplicate_of" not in page


def test_the_api_names_the_ticket_a_duplicate_repeats(client, staff, make_customer, catalogue):
    customer = make_customer()
    first = _open(catalogue, customer)
    second = _open(catalogue, customer, "Gọi lại: vẫn mất điện")
    client.force_login(staff[Role.AGENT])
    response = client.post(f"/api/v1/tickets/{second.pk}/status/",
                           {"status": "duplicate", "duplicate_of": first.number})  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["duplicate_of"] == first.number
    body = client.get(f"/api/v1/tickets/{second.pk}/").json()
    assert (body["status"], body["duplicate_of"]) == ("duplicate", first.number)
    assert client.get(f"/api/v1/tickets/{first.pk}/").json()["duplicate_of"] is None


def test_the_schema_declares_duplicate_of_nullable_and_read_only(client, staff):
    client.force_login(staff[Role.AGENT])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    declared = schema["components"]["schemas"]["Ticket"]["properties"]["duplicate_of"]
    assert (declared["type"], declared.get("nullable"), declared.get("readOnly")) == ("string", True, True)


def test_a_list_of_duplicates_reads_their_masters_in_one_query(client, staff, make_customer, catalogue):
    agent = staff[Role.AGENT]
    customer = make_customer()
    first = _open(catalogue, customer)
    client.force_login(agent)

    def listing():
        with CaptureQueriesContext(connection) as queries:
            rows = client.get("/api/v1/tickets/", {"status": "duplicate"}).json()["results"]
        return rows, len(queries)

    ticket_change_status(actor=agent, ticket=_open(catalogue, customer, "Lần 2"), to=Status.DUPLICATE,
                         duplicate_of=first)  # fmt: skip
    rows, one = listing()
    assert [r["duplicate_of"] for r in rows] == [first.number]
    for n in range(3):
        ticket_change_status(actor=agent, ticket=_open(catalogue, customer, f"Lần {n + 3}"), to=Status.DUPLICATE,
                             duplicate_of=first)  # fmt: skip
    rows, four = listing()
    assert [r["duplicate_of"] for r in rows] == [first.number] * 4
    assert four == one


# -- 2. Breaching soon, whatever the escalation level ----------------------------------------------------------


def _late_then_caught_up(catalogue, customer, supervisor, *, resolve_in=5):
    """An outage call acknowledged and called back late (escalated to level 2), whose resolve deadline is
    ``resolve_in`` minutes away."""
    now = timezone.now()
    ticket = _open(catalogue, customer, at=now - dt.timedelta(minutes=120 - resolve_in))
    sla_sweep(now=now)
    ticket_change_status(actor=supervisor, ticket=ticket, to=Status.ACKNOWLEDGED)
    ticket_record_contact(actor=supervisor, ticket=ticket)
    ticket.refresh_from_db()
    assert ticket.escalation_level == 2 and not ticket.resolve_breached
    assert dt.timedelta(0) < ticket.resolve_due - timezone.now() <= dt.timedelta(minutes=resolve_in + 1)
    return ticket


def test_a_ticket_escalated_once_is_in_the_breaching_soon_queue_before_its_next_deadline(
    client, staff, make_customer, catalogue
):
    supervisor = staff[Role.SUPERVISOR]
    ticket = _late_then_caught_up(catalogue, make_customer(), supervisor)
    later = _late_then_caught_up(catalogue, make_customer(phones=["0912 000 310"]), supervisor, resolve_in=45)
    client.force_login(supervisor)
    queue = client.get(reverse("admin:tickets_ticket_changelist"), {"queue": "breaching"})
    listed = [t.pk for t in queue.context["cl"].result_list]
    assert ticket.pk in listed and later.pk not in listed  # its resolve deadline is 45 minutes away


def test_the_breaches_page_counts_it_as_breaching_within_30_minutes(
    client, staff, make_customer, catalogue, org
):
    supervisor = staff[Role.SUPERVISOR]
    _late_then_caught_up(catalogue, make_customer(), supervisor)
    client.force_login(supervisor)
    rows = client.get(reverse("admin:tickets_ticket_breaches")).context["rows"]
    home = next(r for r in rows if r["unit__code"] == org["home"].code)
    assert (home["open"], home["breached"], home["level2"], home["due_soon"]) == (1, 1, 1, 1), home


def test_breaching_soon_is_a_deadline_neither_met_nor_breached_nor_waiting(staff, make_customer, catalogue):
    agent = staff[Role.AGENT]
    now = timezone.now()
    fresh = _open(catalogue, make_customer())  # acknowledge due in 3 minutes
    # still not acknowledged nor called, both breached and escalated; its resolve deadline is 5 minutes away
    late = _open(catalogue, make_customer(phones=["0912 000 311"]), at=now - dt.timedelta(minutes=115))
    # acknowledged, then waiting for the customer: its clocks stand still
    waiting = _open(catalogue, make_customer(phones=["0912 000 312"]))
    ticket_change_status(actor=agent, ticket=waiting, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=agent, ticket=waiting, to=Status.PENDING_CUSTOMER)
    # acknowledged and called back: the resolve deadline is 2 hours away
    on_time = _open(catalogue, make_customer(phones=["0912 000 313"]))
    ticket_change_status(actor=agent, ticket=on_time, to=Status.ACKNOWLEDGED)
    ticket_record_contact(actor=agent, ticket=on_time)
    sla_sweep(now=now)
    late.refresh_from_db()
    assert late.acknowledge_breached and late.escalation_level > 0 and not late.resolve_breached
    soon = set(Ticket.objects.open().filter(due_soon(timezone.now())).values_list("pk", flat=True))
    assert soon == {fresh.pk, late.pk}


# -- 3. The breaches page's links open their unit ---------------------------------------------------------------


def test_each_unit_s_links_open_that_unit_s_tickets(client, staff, make_customer, catalogue, org):
    received = timezone.now() - dt.timedelta(hours=1)
    home = make_customer(name="Một", phones=["0912 000 301"])
    sibling = make_customer(org["sibling"], name="Hai", phones=["0912 000 302"])
    for customer in (home, sibling):
        _open(catalogue, customer, at=received)
    sla_sweep()
    for customer in (home, sibling):  # and one more each, breaching within minutes
        _open(catalogue, customer)
    client.force_login(staff[Role.SUPERVISOR])
    page = client.get(reverse("admin:tickets_ticket_breaches")).content.decode()
    for unit in (org["home"], org["sibling"]):
        row = page.split(f"{unit.code} – ")[1].split("</tr>")[0]
        for queue, count in (("breached", 1), ("breaching", 1)):
            link = re.search(rf'href="([^"]*queue={queue}[^"]*)"', row).group(1).replace("&amp;", "&")
            listed = client.get(link).context["cl"].result_list
            assert {t.unit_id for t in listed} == {unit.pk} and len(listed) == count, link


# -- 4. Only the roles that work tickets are given one --------------------------------------------------------


def test_a_local_administrator_is_not_offered_nor_given_a_ticket(
    staff, make_staff, make_customer, catalogue, org
):
    local_admin = make_staff(Role.ADMINISTRATOR, [org["home"]])
    ticket = _open(catalogue, make_customer())
    offered = set(selectors.eligible_assignees([org["home"].pk]))
    assert offered == {staff[r] for r in (Role.AGENT, Role.SUPERVISOR, Role.DISPATCHER, Role.FIELD_CREW)}
    with pytest.raises(ValidationError):
        ticket_assign(actor=staff[Role.SUPERVISOR], ticket=ticket, assignee=local_admin)
    with pytest.raises(ValidationError):  # nor may they take it themselves
        ticket_assign(actor=local_admin, ticket=ticket, assignee=local_admin)
    ticket.refresh_from_db()
    assert ticket.assignee_id is None and not ticket.events.filter(kind=EventKind.ASSIGNED).exists()
    ticket_assign(actor=staff[Role.SUPERVISOR], ticket=ticket, assignee=staff[Role.FIELD_CREW])
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == staff[Role.FIELD_CREW].pk


def test_the_assign_to_page_offers_only_the_roles_that_work_tickets(client, staff, make_staff, make_customer,
                                                                     catalogue, org):  # fmt: skip
    make_staff(Role.ADMINISTRATOR, [org["home"]])
    ticket = _open(catalogue, make_customer())
    client.force_login(staff[Role.SUPERVISOR])
    page = client.post(
        reverse("admin:tickets_ticket_changelist"), {"action": "assign", "_selected_action": [ticket.pk]}
    )
    offered = set(page.context["form"].fields["assignee"].queryset)
    assert offered == {staff[r] for r in (Role.AGENT, Role.SUPERVISOR, Role.DISPATCHER, Role.FIELD_CREW)}
