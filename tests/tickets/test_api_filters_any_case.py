"""The tickets API's filters read a code or a username in any case, as the body fields do (``crew`` reads a
username with ``username__iexact``); a username that names nobody the caller sees is refused as a username."""

from crm.models import Role
from tickets import services as ticket_services
from tickets.models import Ticket


def _assigned_order(staff, customer):
    order = Ticket.objects.get(customer=customer, category__code="billing").work_orders.get()
    ticket_services.work_order_assign(actor=staff[Role.DISPATCHER], order=order, crew=staff[Role.FIELD_CREW])
    return order


def test_the_crew_filter_finds_a_username_whatever_its_case_as_the_crew_field_does(client, staff, two_customers):
    crew = staff[Role.FIELD_CREW]
    order = _assigned_order(staff, two_customers[0])
    client.force_login(staff[Role.DISPATCHER])
    client.raise_request_exception = False
    for typed in (crew.username, crew.username.upper(), crew.username.swapcase()):
        response = client.get("/api/v1/work-orders/", {"crew": typed})
        assert response.status_code == 200, (typed, response.content[:300])
        assert [o["id"] for o in response.json()["results"]] == [order.pk]


def test_an_unknown_crew_is_refused_as_a_username(client, staff, two_customers):
    _assigned_order(staff, two_customers[0])
    client.force_login(staff[Role.DISPATCHER])
    response = client.get("/api/v1/work-orders/", {"crew": "NOBODY-HERE"})
    assert response.status_code == 400
    assert response.json() == {"crew": ["No crew member with the username NOBODY-HERE among those you may see."]}


def test_the_category_filter_reads_a_category_code_in_any_case(client, staff, two_customers):
    mine = two_customers[0]
    client.force_login(staff[Role.AGENT])
    expected = sorted(Ticket.objects.filter(customer=mine, category__code="billing").values_list("pk", flat=True))
    for typed in ("billing", "BILLING"):
        response = client.get("/api/v1/tickets/", {"category": typed, "customer": mine.code})
        assert sorted(t["id"] for t in response.json()["results"]) == expected, typed
