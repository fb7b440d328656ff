"""What clerks type in the admin: phones in any spelling on every page, two clerks on one customer at once, and
new records only in the units of today."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import Role, Unit
from customers import services
from customers.models import Customer, CustomerEventKind, Meter, MeterKind
from tests.customers.test_privacy import submitted


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


# Phones ------------------------------------------------------------------------------------------------------


def test_the_phones_admin_takes_a_number_in_any_spelling(clerk_client, org, make_customer):
    customer = make_customer(phones=["0903 123 456"])
    response = clerk_client.post(
        reverse("admin:customers_customerphone_add"),
        {"customer": customer.pk, "number": "+84 903 999 888", "label": "nhà", "is_primary": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert dict(customer.phones.values_list("number", "is_primary")) == {
        "+84903123456": False,
        "+84903999888": True,
    }
    assert customer.events.filter(kind=CustomerEventKind.PHONE_ADDED).count() == 1


def test_the_phones_admin_refuses_what_is_not_a_number_with_its_reason(clerk_client, org, make_customer):
    customer = make_customer(phones=["0903 123 456"])
    response = clerk_client.post(
        reverse("admin:customers_customerphone_add"), {"customer": customer.pk, "number": "12ab", "label": ""}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["number"] and errors["number"][0]
    assert list(customer.phones.values_list("number", flat=True)) == ["+84903123456"]
    assert not customer.events.filter(kind=CustomerEventKind.PHONE_ADDED).exists()


# Two clerks on one customer -------------------------------------------------------------------------------


def test_a_clerks_save_over_a_page_gone_stale_is_refused_and_changes_nothing(
    client, org, make_staff, make_customer
):
    """Both clerks open the customer's page; the first corrects the street and saves. The second, whose page
    still shows the old street, changes the e-mail: the save is refused (it would put the old street back),
    the clerk is told to reload, and the record keeps the first clerk's change."""
    customer = make_customer(street="12 Lê Lợi")
    first = make_staff(Role.BILLING_CLERK, [org["home"]])
    second = make_staff(Role.BILLING_CLERK, [org["home"]])
    url = reverse("admin:customers_customer_change", args=[customer.pk])

    client.force_login(second)
    second_page = submitted(client.get(url))
    client.force_login(first)
    first_page = submitted(client.get(url))
    assert client.post(url, {**first_page, "street": "14 Lê Lợi"}).status_code == 302

    client.force_login(second)
    response = client.post(url, {**second_page, "email": "an@example.vn"}, follow=True)
    assert [str(m) for m in response.context["messages"]][-1:] == [  # after the first clerk's, same browser
        "Somebody else changed this customer after you opened the page; nothing was saved. Reload the page to "
        "see their change, then make yours again."
    ]
    customer.refresh_from_db()
    assert (customer.street, customer.email) == ("14 Lê Lợi", "")
    assert customer.events.filter(kind=CustomerEventKind.UPDATED).count() == 1

    reloaded = submitted(client.get(url))
    assert client.post(url, {**reloaded, "email": "an@example.vn"}).status_code == 302
    customer.refresh_from_db()
    assert (customer.street, customer.email) == ("14 Lê Lợi", "an@example.vn")


def test_a_change_form_posted_without_the_pages_version_is_refused(clerk_client, org, make_customer):
    customer = make_customer(street="12 Lê Lợi")
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    data = {key: value for key, value in submitted(clerk_client.get(url)).items() if key != "seen_updated_at"}
    response = clerk_client.post(url, {**data, "street": "16 Lê Lợi"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["seen_updated_at"] == [
        "This page is out of date; reload it and make your change again."
    ]
    customer.refresh_from_db()
    assert customer.street == "12 Lê Lợi"


def test_customer_update_refuses_changes_made_on_an_older_version(org, make_customer, clerk):
    customer = make_customer(street="12 Lê Lợi")
    seen = customer.updated_at
    services.customer_update(actor=clerk, customer=customer, changes={"street": "14 Lê Lợi"})
    with pytest.raises(ValidationError):
        services.customer_update(
            actor=clerk, customer=customer, changes={"street": "12 Lê Lợi"}, seen_updated_at=seen
        )
    customer.refresh_from_db()
    assert customer.street == "14 Lê Lợi"


# Units of today ---------------------------------------------------------------------------------------------


@pytest.fixture
def merged(org):
    """Điện lực Sơn Hòa (PC0808), merged into Sông Hinh - Sơn Hòa (PC0809) in 2025."""
    old = Unit.objects.get(code="PC0808")
    assert old.successor == org["other_corporation"] and old.valid_to < timezone.localdate()
    return old


def test_no_customer_or_meter_is_registered_in_a_unit_merged_away(org, merged):
    successor = merged.successor.code
    message = f"Unit PC0808 was merged into {successor}; register new records in {successor}."
    with pytest.raises(ValidationError) as refused:
        services.customer_create(actor=None, unit=merged, full_name="Võ Thị Mới", street="3 Trần Hưng Đạo",
                                 ward="Thị trấn Củng Sơn")  # fmt: skip
    assert refused.value.message_dict == {"unit": [message]}
    with pytest.raises(ValidationError) as refused:
        services.meter_register(actor=None, unit=merged, serial="OLD-0001", kind=MeterKind.MECHANICAL)
    assert refused.value.message_dict == {"unit": [message]}
    assert (
        not Customer.objects.filter(unit=merged).exists() and not Meter.objects.filter(unit=merged).exists()
    )


def test_the_admin_offers_and_takes_only_units_of_today_for_a_new_customer(client, org, make_staff, merged):
    successor = org["other_corporation"]
    client.force_login(make_staff(Role.BILLING_CLERK, [successor]))
    response = client.post(
        reverse("admin:customers_customer_add"),
        {
            "unit": merged.pk, "code": "", "full_name": "Võ Thị Mới", "national_id": "", "email": "",
            "street": "3 Trần Hưng Đạo", "ward": "Thị trấn Củng Sơn", "district": "", "province": "",
            "customer_type": "residential", "households": "1", "phones_text": "",
        },
    )  # fmt: skip
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["unit"]
    assert not Customer.objects.filter(unit=merged).exists()

    for model in ("customer", "meter"):
        offered = client.get(
            reverse("admin:customers_current_units"),
            {"app_label": "customers", "model_name": model, "field_name": "unit", "term": ""},
        ).json()
        assert [row["id"] for row in offered["results"]] == [str(successor.pk)]
        page = client.get(reverse(f"admin:customers_{model}_add")).content.decode()
        assert reverse("admin:customers_current_units") in page


@pytest.mark.parametrize(
    "source",
    [
        {"app_label": "tickets", "model_name": "ticket", "field_name": "customer"},
        {"app_label": "tickets", "model_name": "interaction", "field_name": "customer"},
        {"app_label": "customers", "model_name": "meter", "field_name": "customer"},
        {"app_label": "customers", "model_name": "customer", "field_name": "no_such_field"},
    ],
)
def test_the_current_units_autocomplete_refuses_a_field_that_is_not_a_unit(staff, two_customers, source):
    # given: an agent signed in (a client that answers a server error as the site would, with a 500)
    client = Client(raise_request_exception=False)
    client.force_login(staff[Role.AGENT])
    # when: the units' autocomplete address is given another model's field (edited by hand, or a stale widget)
    response = client.get(reverse("admin:customers_current_units"), {**source, "term": ""})
    # then: refused as the admin's own autocomplete refuses a mismatched field, and nothing listed
    assert response.status_code == 403
    assert b"results" not in response.content


def test_the_current_units_autocomplete_answers_any_field_that_chooses_a_unit(client, org, make_staff, merged):
    # given: a clerk of the unit that took over a merged one (whose scope keeps the merged unit's records)
    successor = org["other_corporation"]
    client.force_login(make_staff(Role.BILLING_CLERK, [successor]))
    # when: the address names a ticket's responsible unit, a field that chooses a unit too
    offered = client.get(
        reverse("admin:customers_current_units"),
        {"app_label": "tickets", "model_name": "ticket", "field_name": "unit", "term": ""},
    )
    # then: the units of today of their scope, as for a new customer (not the unit merged away)
    assert offered.status_code == 200
    assert [row["id"] for row in offered.json()["results"]] == [str(successor.pk)]
