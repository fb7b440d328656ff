"""The agent's card and lookup: a nuisance flag's reason with a NUL character, and the screen pop of a number that
several customers share."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from crm.models import Role
from customers.models import Customer, CustomerEventKind


@pytest.fixture
def agent_client(client, staff):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    client.force_login(staff[Role.AGENT])
    return client


def test_a_nul_character_in_the_nuisance_reason_is_refused_and_changes_nothing(agent_client, make_customer):
    customer = make_customer()
    url = reverse("admin:customers_customer_card", args=[customer.pk])
    # PostgreSQL answered 500 (it takes no NUL in a text); SQLite stored the NUL in the reason
    response = agent_client.post(url, {"action": "flag", "reason": "Chửi bới\x00 nhân viên"}, follow=True)
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Không được chứa ký tự rỗng (null)."]
    customer = Customer.objects.get(pk=customer.pk)
    assert (customer.is_nuisance, customer.nuisance_reason) == (False, "")
    assert not customer.events.filter(kind=CustomerEventKind.NUISANCE_FLAGGED).exists()


def test_the_screen_pop_of_a_shared_number_keeps_the_number_calling_on_the_card_picked(
    agent_client, make_customer
):
    # two customers of one household share the number calling; the second has another primary phone
    make_customer(name="Lê Văn Một", phones=["0903 123 456"])
    second = make_customer(name="Lê Văn Hai", phones=["0912 000 111", "0903 123 456"])
    response = agent_client.get(reverse("admin:customers_customer_lookup"), {"phone": "0903 123 456"})
    assert response.status_code == 200 and len(response.context["found"].customers) == 2
    # the agent picks the second customer from the candidates
    page = response.content.decode()
    card = reverse("admin:customers_customer_card", args=[second.pk])
    link = re.search(rf'href="({re.escape(card)}[^"]*)"', page).group(1).replace("&amp;", "&")
    opened = agent_client.get(link).content.decode()
    # then the card says who calls and its "New ticket" carries the number calling, as a one-match screen pop
    assert "Cuộc gọi từ số 0903 123 456" in opened
    new_ticket = re.search(r'href="(/admin/tickets/ticket/add/\?[^"]+)"', opened).group(1)
    assert "caller_phone=%2B84903123456" in new_ticket  # today: the primary phone, %2B84912000111


def test_a_nul_character_in_the_reason_for_clearing_the_flag_keeps_the_flag(agent_client, make_customer, staff):
    from customers import services

    customer = services.customer_flag_nuisance(
        actor=staff[Role.AGENT], customer=make_customer(), reason="Chửi bới nhân viên"
    )
    url = reverse("admin:customers_customer_card", args=[customer.pk])
    response = agent_client.post(url, {"action": "clear", "reason": "Đã xin lỗi\x00"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Không được chứa ký tự rỗng (null)."]
    customer = Customer.objects.get(pk=customer.pk)
    assert (customer.is_nuisance, customer.nuisance_reason) == (True, "Chửi bới nhân viên")


def test_candidates_found_by_name_open_the_bare_card(agent_client, make_customer):
    # two customers of the same name: found by their name, not by a number calling
    first = make_customer(name="Lê Văn Một", phones=["0903 123 456"])
    make_customer(name="Lê Văn Một", phones=["0912 000 111"])
    response = agent_client.get(reverse("admin:customers_customer_lookup"), {"q": "le van mot"})
    assert response.status_code == 200 and len(response.context["found"].customers) == 2
    card = reverse("admin:customers_customer_card", args=[first.pk])
    assert f'href="{card}"' in response.content.decode()
    assert "?phone=" not in response.content.decode()


def test_the_one_match_screen_pop_still_opens_the_card_with_the_number_calling(agent_client, make_customer):
    customer = make_customer(name="Lê Văn Một", phones=["0903 123 456"])
    response = agent_client.get(reverse("admin:customers_customer_lookup"), {"phone": "0903123456"})
    card = reverse("admin:customers_customer_card", args=[customer.pk])
    assert (response.status_code, response["Location"]) == (302, f"{card}?phone=%2B84903123456")
