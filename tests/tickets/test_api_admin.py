from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import OutboxMessage, Role
from tickets.models import Status, Ticket, TicketEvent
from tickets.services import ticket_open


def test_api_intake_honours_the_idempotency_key(client, staff, make_customer, catalogue, dispatcher):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    payload = {
        "category": "outage",
        "channel": "zalo",
        "description": "Mất điện",
        "customer_code": customer.code,
    }
    first = client.post(
        "/api/v1/tickets/", payload, content_type="application/json", HTTP_IDEMPOTENCY_KEY="zalo-77"
    )
    again = client.post(
        "/api/v1/tickets/", payload, content_type="application/json", HTTP_IDEMPOTENCY_KEY="zalo-77"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["number"] == again.json()["number"]
    assert Ticket.objects.count() == 1
    assert TicketEvent.objects.count() == 1
    assert OutboxMessage.objects.filter(channel="sms").count() == 1
    assert first.json()["unit_code"] == customer.unit.code


def test_api_intake_bad_input_is_a_400_and_writes_nothing(client, staff, catalogue, two_customers):
    _mine, theirs = two_customers
    client.force_login(staff[Role.AGENT])
    before = Ticket.objects.count()
    for payload, field in [
        ({"category": "nope", "channel": "phone", "description": "x"}, "category"),
        ({"category": "outage", "channel": "fax", "description": "x"}, "channel"),
        ({"category": "outage", "channel": "phone", "description": "x", "customer_code": theirs.code}, "customer_code"),
        ({"category": "outage", "channel": "phone", "description": "x", "caller_phone": "abc", "unit_code": "PE0100"},
         "caller_phone"),
    ]:  # fmt: skip
        response = client.post("/api/v1/tickets/", payload, content_type="application/json")
        assert response.status_code == 400, (payload, response.content)
        assert field in response.json()
    assert Ticket.objects.count() == before


def test_api_moves_a_ticket_and_a_role_without_change_permission_cannot(
    client, staff, make_customer, catalogue
):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer()).ticket  # fmt: skip
    client.force_login(staff[Role.MANAGER])
    assert client.post(f"/api/v1/tickets/{ticket.pk}/status/", {"status": "acknowledged"}).status_code == 403
    client.force_login(staff[Role.DISPATCHER])
    moved = client.post(f"/api/v1/tickets/{ticket.pk}/status/", {"status": "acknowledged"})
    assert moved.status_code == 200 and moved.json()["status"] == "acknowledged"
    assert client.post(f"/api/v1/tickets/{ticket.pk}/contact/").json()["contacted_at"] is not None
    refused = client.post(f"/api/v1/tickets/{ticket.pk}/status/", {"status": "closed"})
    assert refused.status_code == 400
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED


def test_the_card_lists_open_tickets_and_links_a_prefilled_new_ticket(
    client, staff, make_customer, catalogue
):
    customer = make_customer()
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="x", customer=customer
    ).ticket
    client.force_login(staff[Role.AGENT])
    card = client.get(reverse("admin:customers_customer_card", args=[customer.pk]))
    section = next(s for s in card.context["card"].sections if s.key == "tickets")
    assert [row[0] for row in section.rows] == [ticket.number]
    new_url = section.actions[0][1]
    assert new_url.endswith(f"?customer={customer.pk}")
    form = client.get(new_url)
    assert form.status_code == 200
    assert form.context["adminform"].form.initial["customer"] == str(customer.pk)


def test_an_agent_takes_a_ticket_in_the_admin(client, staff, make_customer, catalogue):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_ticket_add"),
        {"customer": customer.pk, "category": catalogue["outage"].pk, "channel": "phone", "priority": "normal",
         "description": "Mất điện từ 14h"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket = Ticket.objects.get()
    assert (ticket.customer, ticket.unit, ticket.created_by) == (customer, customer.unit, staff[Role.AGENT])
    queue = client.get(reverse("admin:tickets_ticket_changelist"), {"queue": "open"})
    assert [t.pk for t in queue.context["cl"].result_list] == [ticket.pk]


def test_ticket_changelist_queries_do_not_grow_with_rows(client, staff, make_customer, catalogue):
    customer = make_customer()
    client.force_login(staff[Role.SUPERVISOR])
    url = reverse("admin:tickets_ticket_changelist")
    ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x", customer=customer)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for _ in range(6):
        ticket_open(
            actor=None, category=catalogue["billing"], channel="app", description="y", customer=customer
        )
    with CaptureQueriesContext(connection) as many:
        assert client.get(url, {"queue": "open"}).status_code == 200
    assert len(few) == len(many)


def test_breaches_by_unit_counts_the_supervisors_scope(
    client, staff, make_customer, catalogue, org, two_customers
):
    import datetime as dt

    from django.utils import timezone

    from tickets.sla import sla_sweep

    received = timezone.now() - dt.timedelta(hours=1)
    home = make_customer(name="Một", phones=["0912 000 201"])
    sibling = make_customer(org["sibling"], name="Hai", phones=["0912 000 202"])
    for customer in (home, home, sibling):
        ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x", customer=customer,
                    at=received)  # fmt: skip
    sla_sweep()
    client.force_login(staff[Role.SUPERVISOR])
    page = client.get(reverse("admin:tickets_ticket_breaches"))
    assert page.status_code == 200
    rows = {r["unit__code"]: (r["open"], r["breached"], r["level2"]) for r in page.context["rows"]}
    # the home unit also has the fixture's open billing ticket (not breached); another corporation is not shown
    assert rows == {org["home"].code: (3, 2, 2), org["sibling"].code: (1, 1, 1)}


def test_only_a_supervisor_reroutes_through_the_api(client, staff, make_customer, catalogue, org):
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                         customer=make_customer()).ticket  # fmt: skip
    url = f"/api/v1/tickets/{ticket.pk}/reroute/"
    client.force_login(staff[Role.AGENT])
    assert client.post(url, {"unit_code": org["sibling"].code, "reason": "Sai địa bàn"}).status_code == 403
    client.force_login(staff[Role.SUPERVISOR])
    assert client.post(url, {"unit_code": org["other_corporation"].code, "reason": "x"}).status_code == 400
    assert client.post(url, {"unit_code": org["sibling"].code, "reason": " "}).status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).unit == org["home"]
    moved = client.post(url, {"unit_code": org["sibling"].code, "reason": "Sai địa bàn"})
    assert moved.status_code == 200 and moved.json()["unit_code"] == org["sibling"].code
