"""The card says who flagged a nuisance caller and when, in the admin ("(who, when)") and in the API's card a
softphone pops (``nuisance_set_by``, the username, as ``nuisance_set_at``): none when the customer is not flagged."""

from __future__ import annotations

import pytest

from crm.models import Role
from customers.services import customer_clear_nuisance, customer_flag_nuisance


@pytest.mark.django_db
def test_the_api_card_says_who_flagged_the_nuisance_caller(client, staff, make_customer):
    agent = staff[Role.AGENT]
    customer = make_customer()
    customer_flag_nuisance(actor=agent, customer=customer, reason="Gọi quấy rối nhiều lần")
    client.force_login(staff[Role.SUPERVISOR])
    admin_card = client.get(f"/admin/customers/customer/{customer.pk}/card/").content.decode()
    assert agent.username in admin_card  # the admin's card names who flagged
    body = client.get(f"/api/v1/customers/{customer.pk}/card/").json()
    assert body["customer"]["is_nuisance"] is True and body["nuisance_set_at"]
    assert body["nuisance_set_by"] == agent.username, sorted(body)


@pytest.mark.django_db
def test_the_api_card_of_a_caller_not_flagged_names_nobody(client, staff, make_customer):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    body = client.get(f"/api/v1/customers/{customer.pk}/card/").json()
    assert (body["nuisance_set_by"], body["nuisance_set_at"], body["nuisance_reason"]) == (None, None, "")
    customer_flag_nuisance(actor=staff[Role.AGENT], customer=customer, reason="Gọi quấy rối")
    customer_clear_nuisance(actor=staff[Role.SUPERVISOR], customer=customer, reason="Đã xác minh")
    body = client.get(f"/api/v1/customers/{customer.pk}/card/").json()
    assert body["customer"]["is_nuisance"] is False
    assert (body["nuisance_set_by"], body["nuisance_set_at"]) == (None, None)
