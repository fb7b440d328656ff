"""The billing lists' filters read as the POSTs do: a customer's code in any case, a period as a month's first
day (anything else is a 400 on ``period``, not an empty list)."""

import pytest

from billing.models import Invoice
from crm.models import Role


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    client.raise_request_exception = False
    return client


def test_the_invoices_customer_code_filter_reads_a_code_in_any_case(clerk_client, two_customers):
    mine = two_customers[0]
    expected = sorted(Invoice.objects.filter(customer=mine).values_list("number", flat=True))
    assert expected
    for typed in (mine.code, mine.code.lower()):
        response = clerk_client.get("/api/v1/invoices/", {"customer_code": typed})
        assert sorted(i["number"] for i in response.json()["results"]) == expected, typed
    theirs = two_customers[1]
    refused = clerk_client.get("/api/v1/invoices/", {"customer_code": theirs.code})
    assert refused.status_code == 400
    assert refused.json() == {
        "customer_code": [f"No customer with the code {theirs.code} among those you may see."]
    }


@pytest.mark.parametrize("lst", ["invoices", "readings"])
def test_a_period_filter_that_is_not_the_first_of_a_month_is_a_400_as_the_posts_say_not_an_empty_list(
    clerk_client, two_customers, lst
):
    first = clerk_client.get(f"/api/v1/{lst}/", {"period": "2025-10-01"})
    assert first.status_code == 200
    assert {row["period"] for row in first.json()["results"]} == {"2025-10-01"}
    mid_month = clerk_client.get(f"/api/v1/{lst}/", {"period": "2025-10-15"})
    assert mid_month.status_code == 400
    assert mid_month.json() == {"period": ["A billing period is the first day of a month (YYYY-MM-01)."]}
    not_a_day = clerk_client.get(f"/api/v1/{lst}/", {"period": "October"})
    assert not_a_day.status_code == 400
    assert list(not_a_day.json()) == ["period"]
