"""A softphone pops the card with ``?phone=<caller id>``: the card says "Call from …" and its "New ticket" carries
the number calling (README). Flagging the caller as a nuisance from that card, or clearing the flag, answers with
the same popped card: the number calling is kept, as the card's outage click keeps it."""

from __future__ import annotations

import pytest

from crm.models import Role
from customers.services import customer_flag_nuisance

CARD = "/admin/customers/customer/{pk}/card/"


@pytest.mark.django_db
def test_flagging_a_caller_from_the_popped_card_keeps_the_number_calling(client, staff, make_customer):
    customer = make_customer(phones=["0903 123 456", "0912 345 678"])
    client.force_login(staff[Role.AGENT])
    url = CARD.format(pk=customer.pk) + "?phone=0912345678"
    assert client.get(url).status_code == 200
    response = client.post(url, {"action": "flag", "reason": "Gọi quấy rối"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.is_nuisance and customer.nuisance_set_by == staff[Role.AGENT]
    assert response["Location"] == CARD.format(pk=customer.pk) + "?phone=%2B84912345678"
    card = client.get(response["Location"])
    assert card.context["calling"] == "+84912345678"  # "Call from …", and its "New ticket" carries it
    assert 'id="card-calling"' in card.content.decode()


@pytest.mark.django_db
def test_clearing_the_flag_from_the_popped_card_keeps_the_number_calling(client, staff, make_customer):
    customer = make_customer(phones=["0903 123 456", "0912 345 678"])
    customer_flag_nuisance(actor=staff[Role.AGENT], customer=customer, reason="Gọi quấy rối")
    client.force_login(staff[Role.SUPERVISOR])
    url = CARD.format(pk=customer.pk) + "?phone=0912 345 678"
    response = client.post(url, {"action": "clear", "reason": "Đã xác minh"})
    customer.refresh_from_db()
    assert not customer.is_nuisance
    assert response["Location"] == CARD.format(pk=customer.pk) + "?phone=%2B84912345678"


@pytest.mark.django_db
def test_a_refused_flag_keeps_the_number_and_changes_nothing(client, staff, make_customer):
    customer = make_customer(phones=["0903 123 456", "0912 345 678"])
    client.force_login(staff[Role.AGENT])
    url = CARD.format(pk=customer.pk) + "?phone=0912345678"
    response = client.post(url, {"action": "flag", "reason": ""})  # a reason is required
    customer.refresh_from_db()
    assert not customer.is_nuisance and customer.nuisance_set_at is None
    assert response["Location"] == CARD.format(pk=customer.pk) + "?phone=%2B84912345678"


@pytest.mark.django_db
def test_a_card_not_popped_by_a_call_stays_without_a_number(client, staff, make_customer):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    for query in ("", "?phone=not-a-phone"):  # a number that is not one is not carried on either
        response = client.post(CARD.format(pk=customer.pk) + query, {"action": "flag", "reason": "Gọi quấy rối"})
        assert response["Location"] == CARD.format(pk=customer.pk)
    customer.refresh_from_db()
    assert customer.is_nuisance  # flagged by the first post; the second is refused (flagged already)
