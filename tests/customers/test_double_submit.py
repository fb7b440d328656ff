"""The new-customer form posted twice (a double click on "Save", a resubmit after a slow answer) registers one
customer: the form carries a one-time token drawn with the page; a form drawn again is another registration, and
a registration without a token (an import, a script) is taken as before."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from crm.models import Role
from customers import services
from customers.models import Customer, CustomerEvent


def _hidden_inputs(page: str) -> dict[str, str]:
    found = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) != "csrfmiddlewaretoken":
            found[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return found


@pytest.fixture
def form_data(org):
    return {
        "unit": org["home"].pk, "code": "", "full_name": "Võ Thị Sáu", "national_id": "079190000123",
        "email": "", "street": "7 Nguyễn Trãi", "ward": "Phường Bến Thành", "district": "", "province": "",
        "customer_type": "residential", "households": "1", "phones_text": "0903 555 666",
        "phones-TOTAL_FORMS": "0", "phones-INITIAL_FORMS": "0",
    }  # fmt: skip


def test_the_new_customer_form_posted_twice_registers_one_customer(client, staff, form_data):
    # given a clerk registering a new customer (the code left empty: the unit's next one) on the form as drawn
    client.force_login(staff[Role.BILLING_CLERK])
    url = reverse("admin:customers_customer_add")
    data = {**_hidden_inputs(client.get(url).content.decode()), **form_data}
    assert data.get("submission_token")
    # when the form is posted twice
    first = client.post(url, data)
    second = client.post(url, data, follow=True)
    assert first.status_code == 302, first.content.decode()[:2000]
    # then there is one customer, with one "created" event, and the second post names it
    customer = Customer.objects.get(national_id="079190000123")
    assert CustomerEvent.objects.filter(customer=customer, kind="created").count() == 1
    shown = [str(m) for m in second.context["messages"]]
    assert any(f"already registered customer {customer.code}" in m for m in shown), shown


def test_a_new_customer_form_drawn_again_is_another_registration(client, staff, form_data):
    client.force_login(staff[Role.BILLING_CLERK])
    url = reverse("admin:customers_customer_add")
    for _ in range(2):
        data = {**_hidden_inputs(client.get(url).content.decode()), **form_data}
        assert client.post(url, data).status_code == 302
    codes = sorted(Customer.objects.filter(national_id="079190000123").values_list("code", flat=True))
    assert len(codes) == 2 and codes[0] != codes[1]


def test_the_service_registers_a_token_once_and_without_one_as_before(staff, org):
    clerk = staff[Role.BILLING_CLERK]
    new = {"unit": org["home"], "full_name": "Võ Thị Sáu", "street": "7 Nguyễn Trãi", "ward": "Phường Bến Thành"}
    first = services.customer_create(actor=clerk, token="f1", **new)
    again = services.customer_create(actor=clerk, token="f1", **new)
    assert again.pk == first.pk
    assert Customer.objects.filter(full_name="Võ Thị Sáu").count() == 1
    services.customer_create(actor=clerk, **new)
    services.customer_create(actor=clerk, **new)
    assert Customer.objects.filter(full_name="Võ Thị Sáu").count() == 3
