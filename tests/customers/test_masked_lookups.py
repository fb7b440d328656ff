"""A list page refuses a filter typed into its URL on a value its user sees masked: the rows matching a prefix
would tell the hidden national ID or phone number digit by digit. Who sees the value whole filters as before."""

import pytest
from django.urls import reverse

from crm.models import Role


@pytest.mark.parametrize(
    ("url_name", "lookup", "role"),
    [
        ("admin:customers_customer_changelist", "national_id__startswith", Role.AGENT),
        ("admin:customers_customerevent_changelist", "after__icontains", Role.AGENT),
        ("admin:customers_customerphone_changelist", "number__startswith", Role.MANAGER),
        ("admin:tickets_ticket_changelist", "caller_phone__startswith", Role.MANAGER),
        ("admin:tickets_interaction_changelist", "caller_phone__contains", Role.MANAGER),
    ],
)
def test_a_filter_on_a_masked_value_is_refused(client, staff, make_customer, url_name, lookup, role):
    customer = make_customer(national_id="079123456789")
    client.force_login(staff[role])
    response = client.get(reverse(url_name), {lookup: "0791"})
    assert response.status_code == 400
    assert customer.code not in response.content.decode()


def test_who_sees_the_value_whole_filters_by_it(client, staff, make_customer):
    customer = make_customer(national_id="079123456789")
    other = make_customer(national_id="001122334455")
    client.force_login(staff[Role.BILLING_CLERK])  # sees national IDs whole
    url = reverse("admin:customers_customer_changelist")
    listed = client.get(url, {"national_id__startswith": "0791"})
    assert listed.status_code == 200
    assert [c.pk for c in listed.context["cl"].result_list] == [customer.pk]
    client.force_login(staff[Role.AGENT])  # sees phones whole, national IDs masked
    phones = client.get(reverse("admin:customers_customerphone_changelist"), {"number__startswith": "+8490"})
    assert phones.status_code == 200
    assert {p.customer_id for p in phones.context["cl"].result_list} == {customer.pk, other.pk}
    # The list's own filters are not affected.
    assert client.get(url, {"customer_type": "residential"}).status_code == 200
