"""Idempotency-Key: each sender's own, bound to the request it came with; a lost race takes no ticket number."""

import threading

import pytest
from django.db import connection

from crm.models import OutboxMessage, Role
from tickets.models import IntakeKey, Ticket, TicketEvent
from tickets.services import IdempotencyKeyReused, ticket_open

URL = "/api/v1/tickets/"


def post(client, payload, key):
    return client.post(URL, payload, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def test_two_agents_with_the_same_key_each_get_their_own_ticket(
    client, staff, make_staff, make_customer, catalogue, org
):
    agent_a = staff[Role.AGENT]
    agent_b = make_staff(Role.AGENT, [org["home"]])
    customer_a = make_customer(name="Nguyễn Văn A", phones=["0903 111 111"])
    customer_b = make_customer(name="Trần Thị B", phones=["0903 222 222"])
    client.force_login(agent_a)
    first = post(client, {"category": "outage", "channel": "app", "description": "Mất điện A",
                          "customer_code": customer_a.code}, "k-1")  # fmt: skip
    client.force_login(agent_b)
    second = post(client, {"category": "billing", "channel": "app", "description": "Hoá đơn B",
                           "customer_code": customer_b.code}, "k-1")  # fmt: skip
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert second.json()["number"] != first.json()["number"]
    assert second.json()["customer_code"] == customer_b.code and "Mất điện A" not in second.content.decode()
    ticket_b = Ticket.objects.get(number=second.json()["number"])
    assert (ticket_b.customer, ticket_b.created_by, ticket_b.description) == (customer_b, agent_b, "Hoá đơn B")
    assert sorted(IntakeKey.objects.values_list("owner__username", "key")) == sorted(
        [(agent_a.username, "k-1"), (agent_b.username, "k-1")]
    )


def test_a_retry_with_the_same_body_returns_the_first_ticket_whatever_the_field_order(
    client, staff, make_customer, catalogue
):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    first = post(client, {"category": "outage", "channel": "zalo", "description": "Mất điện",
                          "customer_code": customer.code}, "zalo-77")  # fmt: skip
    again = client.post(
        URL,
        f'{{"customer_code": "{customer.code}", "description": "Mất điện",  "channel": "zalo", "category": "outage"}}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="zalo-77",
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert Ticket.objects.count() == 1 and TicketEvent.objects.count() == 1


def test_the_same_key_with_another_body_is_refused_with_the_reason_and_changes_nothing(
    client, staff, make_customer, catalogue, dispatcher
):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    payload = {"category": "outage", "channel": "app", "description": "Mất điện", "customer_code": customer.code}
    first = post(client, payload, "app-9")
    assert first.status_code == 201
    counts = (Ticket.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())
    refused = post(client, {**payload, "description": "Cột điện đổ"}, "app-9")
    assert refused.status_code == 422
    reason = refused.json()["Idempotency-Key"][0]
    assert "app-9" in reason and first.json()["number"] in reason
    assert (Ticket.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count()) == counts
    assert Ticket.objects.get().description == "Mất điện"


def test_the_service_refuses_a_key_reused_for_other_arguments(catalogue, make_customer, staff):
    customer = make_customer()
    agent = staff[Role.AGENT]
    first = ticket_open(actor=agent, category=catalogue["outage"], channel="app", description="x",
                        customer=customer, idempotency_key="s-1")  # fmt: skip
    again = ticket_open(actor=agent, category=catalogue["outage"], channel="app", description="x",
                        customer=customer, idempotency_key="s-1")  # fmt: skip
    assert (again.ticket.pk, again.created) == (first.ticket.pk, False)
    with pytest.raises(IdempotencyKeyReused):
        ticket_open(actor=agent, category=catalogue["outage"], channel="app", description="y",
                    customer=customer, idempotency_key="s-1")  # fmt: skip
    assert Ticket.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_requests_with_one_key_make_one_ticket_and_burn_no_number(catalogue, make_customer, staff):
    if connection.vendor != "postgresql":
        pytest.skip("a race for the key needs PostgreSQL's concurrent transactions")
    customer = make_customer()
    agent = staff[Role.AGENT]

    def intake(key, description="Mất điện"):
        return ticket_open(actor=agent, category=catalogue["outage"], channel="app", description=description,
                           customer=customer, idempotency_key=key)  # fmt: skip

    before = intake("warm-up").ticket.number
    barrier = threading.Barrier(6)
    results, errors = [], []

    def race():
        barrier.wait()
        try:
            results.append(intake("race-1"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.created for r in results) == 1
    assert len({r.ticket.pk for r in results}) == 1
    after = intake("after").ticket.number
    # Only the winner took a number: the warm-up's, the winner's and the next are consecutive.
    assert [int(n[5:]) for n in (before, results[0].ticket.number, after)] == [
        int(before[5:]), int(before[5:]) + 1, int(before[5:]) + 2
    ]
