"""A column shown masked (``customers.privacy.ShownField``) is not sortable for who sees it masked: sorting
by the hidden digits would tell their order (a shared prefix, a carrier). Who sees it whole still sorts by it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from crm.models import Role

PHONES = ("0987 000 111", "0903 000 222", "0912 000 333")  # made in this order: the newest first by default


@pytest.fixture
def phones(make_customer, org):
    for phone in PHONES:
        make_customer(org["home"], phones=[phone])


def listed(client, query: str = "") -> tuple[list[str], str]:
    page = client.get(reverse("admin:customers_customerphone_changelist") + query)
    assert page.status_code == 200
    html = page.content.decode()
    return re.findall(r"(?:\*\*\*\* \*\*\* |\+84\d{6})(\d{3})<", html), html


@pytest.mark.parametrize("query", ["?o=0", "?o=-0", "?o=0.2"])
def test_a_manager_cannot_sort_the_phones_by_their_hidden_digits(client, staff, phones, query):
    # given a manager, who sees phones masked
    client.force_login(staff[Role.MANAGER])
    unsorted, html = listed(client)
    assert unsorted == ["333", "222", "111"]
    assert "column-number" in html and not re.search(r'class="[^"]*sortable[^"]*column-number', html)

    # when the list is asked to sort by the number
    shown, _html = listed(client, query)

    # then the order is the list's own (newest first), whatever the hidden numbers
    assert shown == unsorted


def test_who_sees_phones_whole_still_sorts_by_them(client, staff, phones):
    client.force_login(staff[Role.AGENT])

    ascending, html = listed(client, "?o=0")
    descending, _html = listed(client, "?o=-0")

    assert re.search(r'class="[^"]*sortable[^"]*column-number', html)
    assert ascending == ["222", "333", "111"]
    assert descending == ["111", "333", "222"]
