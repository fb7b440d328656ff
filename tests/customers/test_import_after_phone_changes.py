"""A change of a customer's phones is a change of the customer: a customers file exported before it is refused
on import (it would put a removed number back), and a customer page opened before it is stale."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from customers import services
from customers.models import Customer, CustomerEventKind, CustomerPhone
from tests.customers.test_import_export import confirm, export, preview, problems
from tests.customers.test_privacy import submitted


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    return client


def _exported_an_hour_after_the_last_change(clerk_client, customer) -> bytes:
    Customer.objects.filter(pk=customer.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    return b"".join(export(clerk_client).streaming_content)


def _numbers(customer) -> dict[str, bool]:
    return dict(CustomerPhone.objects.filter(customer=customer).values_list("number", "is_primary"))


def test_a_file_exported_before_a_phone_was_removed_does_not_put_the_phone_back(clerk_client, staff, org,
                                                                                make_customer):  # fmt: skip
    customer = make_customer(org["home"], phones=["0903 111 222", "0903 999 888"])
    exported = _exported_an_hour_after_the_last_change(clerk_client, customer)
    wrong = CustomerPhone.objects.get(customer=customer, number="+84903999888")
    # another clerk removes a number the customer no longer has
    services.customer_remove_phone(actor=staff[Role.ADMINISTRATOR], phone=wrong, reason="Số cũ, khách báo")
    customer.refresh_from_db()
    removed_at = customer.updated_at
    assert removed_at > timezone.now() - dt.timedelta(minutes=1)

    previewed = preview(clerk_client, "customer", exported)
    ((row, messages),) = problems(previewed)
    assert row == 2
    assert messages == [
        f"Updated at: Somebody changed this customer at {timezone.localtime(removed_at):%d/%m/%Y %H:%M:%S}, after "
        "the file was exported; nothing of this row was written. Export the customer again and make the change "
        "there."
    ]
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)  # the refused row is skipped
    assert _numbers(customer) == {"+84903111222": True}
    assert customer.events.filter(kind=CustomerEventKind.PHONE_ADDED).count() == 0


def test_adding_a_primary_phone_moves_the_customers_updated_at(staff, org, make_customer):
    customer = make_customer(org["home"], phones=["0903 111 222"])
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    Customer.objects.filter(pk=customer.pk).update(updated_at=an_hour_ago)
    services.customer_add_phone(actor=staff[Role.BILLING_CLERK], customer=customer, number="0903 999 888",
                                primary=True)  # fmt: skip
    customer.refresh_from_db()
    assert customer.updated_at > an_hour_ago + dt.timedelta(minutes=59)
    assert _numbers(customer) == {"+84903111222": False, "+84903999888": True}


def test_a_file_adding_a_phone_to_a_customer_it_also_changes_is_not_refused_as_stale(clerk_client, org,
                                                                                      make_customer):  # fmt: skip
    """The import's own phone added on the first row of a customer does not make its second row stale."""
    from tests.customers.test_import_export import csv_bytes, read_csv

    customer = make_customer(org["home"], phones=["0903 111 222"])
    Customer.objects.filter(pk=customer.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    (row,) = read_csv(export(clerk_client))
    first = dict(row, phones="0903 111 222, 0903 555 666")
    second = dict(first, street="1 Lê Lợi")
    previewed = preview(clerk_client, "customer", csv_bytes([first, second]))
    assert problems(previewed) == []
    confirm(clerk_client, "customer", previewed)
    customer.refresh_from_db()
    assert customer.street == "1 Lê Lợi"
    assert _numbers(customer) == {"+84903111222": True, "+84903555666": False}


def test_the_customer_page_after_a_phone_change_saves_and_one_opened_before_is_stale(clerk_client, staff, org,
                                                                                     make_customer):  # fmt: skip
    customer = make_customer(org["home"], street="12 Lê Lợi", phones=["0903 111 222"])
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    before = submitted(clerk_client.get(url))
    services.customer_add_phone(actor=staff[Role.ADMINISTRATOR], customer=customer, number="0903 999 888")

    stale = clerk_client.post(url, {**before, "street": "14 Lê Lợi"}, follow=True)
    assert [str(m) for m in stale.context["messages"]] == [
        "Somebody else changed this customer after you opened the page; nothing was saved. Reload the page to "
        "see their change, then make yours again."
    ]
    customer.refresh_from_db()
    assert customer.street == "12 Lê Lợi"

    reloaded = submitted(clerk_client.get(url))
    assert clerk_client.post(url, {**reloaded, "street": "14 Lê Lợi"}).status_code == 302
    customer.refresh_from_db()
    assert customer.street == "14 Lê Lợi"
    assert _numbers(customer) == {"+84903111222": True, "+84903999888": False}
